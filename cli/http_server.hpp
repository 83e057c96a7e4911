// The HTTP door of a node (`troupe node --http`): the OpenAI-compatible API, /health, /mesh,
// /metrics and the chat page at /. It runs in the node's process on cpp-httplib's threads and
// enters the mesh exactly as `troupe generate` does, through a MeshClient connected to the node's
// own --listen address: one client per request, so a dropped HTTP stream drops its client and
// the node ends the session as for any client that went away.
#pragma once

#include <memory>
#include <string>

#include "openai_api.hpp"

namespace troupe::cli {

struct HttpOptions {
  std::string address;       // HOST:PORT to listen on
  std::string node_address;  // the node's --listen address
  openai::ModelInfo model;
  std::string chat_template;  // the template chat requests get (for /v1/models)
  // The node's tokenizer (outlives the server): requests that cannot fit in the context are
  // refused here with OpenAI's error code, before they reach the mesh.
  const Tokenizer* tokenizer = nullptr;
};

class HttpServer {
 public:
  // Binds at once: RuntimeFailure naming --http when it cannot listen there.
  explicit HttpServer(HttpOptions options);
  ~HttpServer();  // stop()s
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Stops taking connections; requests in flight end once the node they talk to stops.
  void stop();
  // Waits for the server's threads (after stop(), and after the node has stopped).
  void join();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe::cli
