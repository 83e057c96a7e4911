// A small HTTP/1.1 client over a raw socket, for testing `troupe node --http`: it reads the
// response exactly as it comes off the wire (status line, headers, chunked transfer encoding),
// so the tests see the server's real framing rather than a library's interpretation of it.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace troupe::test {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;                            // de-chunked
  std::vector<std::string> chunks;             // the transfer chunks, when chunked
};

// Header lines a request adds; a "Host" among them replaces the default (127.0.0.1:PORT).
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// One request on a fresh connection ("Connection: close"); throws std::runtime_error when the
// connection fails or the response is not well-formed HTTP.
HttpResponse http_request(int port, const std::string& method, const std::string& path,
                          const std::string& body = "",
                          const std::string& content_type = "application/json",
                          const HttpHeaders& headers = {});

// Waits until GET /health answers 200; false on timeout.
bool wait_healthy(int port, std::chrono::milliseconds timeout = std::chrono::seconds(15));

// The "data: ..." payloads of a text/event-stream body; throws std::runtime_error when the body
// is not a sequence of "data: X\n\n" events.
std::vector<std::string> sse_events(const std::string& body);

// The events of a text/event-stream body whose every event is named ("event: NAME\ndata: X\n\n",
// as the Responses API sends them): pairs of name and data; throws std::runtime_error otherwise.
std::vector<std::pair<std::string, std::string>> named_sse_events(const std::string& body);

// An open connection to which a request was sent, for tests that drop it part-way.
class HttpStream {
 public:
  HttpStream(int port, const std::string& path, const std::string& body);
  ~HttpStream();  // closes the connection, whatever was read
  HttpStream(const HttpStream&) = delete;
  HttpStream& operator=(const HttpStream&) = delete;
  // Reads until `text` has been received (or EOF); returns everything read so far.
  std::string read_until(const std::string& text);

 private:
  int fd_ = -1;
  std::string received_;
};

// Connections that each send the start of a request and then one more header line every half
// second, never ending it (a "slowloris" client), until destroyed.
class HalfSentRequests {
 public:
  HalfSentRequests(int port, std::size_t count);
  ~HalfSentRequests();  // stops sending, closes them all
  HalfSentRequests(const HalfSentRequests&) = delete;
  HalfSentRequests& operator=(const HalfSentRequests&) = delete;

  std::size_t size() const;
  // Reads what has come without waiting; returns how many the server has closed so far.
  std::size_t closed_by_server();
  // What connection i has received.
  std::string received(std::size_t i) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace troupe::test
