// The HTTP door of a node (`troupe node --http`): the OpenAI-compatible API, /health, /mesh,
// /metrics and the chat page at /. It runs in the node's process on its own threads (one per
// connection, see guarded_http_server.hpp) and enters the mesh exactly as `troupe generate`
// does, through a MeshClient connected to the node's own --listen address: one client per
// request, so a dropped HTTP stream drops its client and the node ends the session as for any
// client that went away. Who may use it: http_access.hpp.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "http_access.hpp"
#include "openai_api.hpp"
#include "troupe/net/mesh_key.hpp"

namespace CLI {
class App;
}

namespace troupe::cli {

// `troupe node`'s flags for the door.
struct HttpFlags {
  std::string address;        // --http [HOST:]PORT
  std::string api_key;        // --api-key KEY, or $TROUPE_API_KEY
  bool insecure = false;      // --http-insecure
  std::string allowed_hosts;  // --allowed-hosts H1,H2
  std::string cors;           // --cors ORIGIN1,ORIGIN2
};

void add_http_flags(CLI::App& command, HttpFlags& flags);

struct HttpOptions {
  std::string address;  // HOST:PORT to listen on
  http_access::Policy access;
  std::string node_address;  // the node's --listen address
  // How the node's connections are secured: the door connects as any client of the mesh does.
  net::MeshSecurity security = net::MeshSecurity::insecure();
  openai::ModelInfo model;
  std::string chat_template;  // the template chat requests get (for /v1/models)
  // The node's tokenizer (outlives the server): requests that cannot fit in the context are
  // refused here with OpenAI's error code, before they reach the mesh.
  const Tokenizer* tokenizer = nullptr;
};

// The door the flags ask for, checked (InputError naming the flag at fault); nullopt without
// --http. A bare port means 127.0.0.1. An address other than a loopback one needs an API key,
// or --http-insecure to serve the API to whoever reaches the port.
std::optional<HttpOptions> http_options(const HttpFlags& flags);

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
