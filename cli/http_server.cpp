#include "http_server.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <semaphore>
#include <thread>

#include "commands.hpp"
#include "guarded_http_server.hpp"
#include "http_metrics.hpp"
#include "mesh_status.hpp"
#include "troupe/model/error.hpp"
#include "troupe/net/client.hpp"
#include "troupe/text/completion.hpp"

namespace troupe::cli {

namespace web {
extern const char* const kIndexHtml;  // web/index.html, compiled in (web_page.cpp)
}

namespace {

using nlohmann::json;
using openai::ApiError;
using openai::Endpoint;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxBodyBytes = std::size_t(1) << 20;
// Completions this door runs at once; more wait for a place (kReplyTimeout at most). Below the
// sessions a node takes (wire::kMaxSessions), so that a burst through one door leaves room for
// other doors and clients, and its waiting requests queue here instead of failing as busy.
constexpr std::ptrdiff_t kMaxCompletions = 48;
// Status queries (/health, /mesh, /metrics) at once: each opens a mesh client (a ZeroMQ context
// and its descriptors), which a flood of health checks must not multiply without bound.
constexpr std::ptrdiff_t kMaxStatusQueries = 16;
// A stage that does not answer within this shows in /mesh's pipeline as not answering.
constexpr std::chrono::milliseconds kStageStatusTimeout{1500};
// As `troupe generate`: a working mesh sends something at least this often.
constexpr auto kReplyTimeout = std::chrono::seconds(300);
// How often a stream waiting for the mesh looks whether its HTTP client is still there.
constexpr auto kPollInterval = std::chrono::milliseconds(200);

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(openai::dump(j), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) { send_json(res, e.http_status, e.to_json()); }

ApiError mesh_error(const std::string& message, int code) {
  ApiError e;
  e.message = message;
  if (code == 2) return e;  // the request was at fault (prompt too long, bad conversation, ...)
  e.http_status = 503;
  e.type = "server_error";
  e.code = "mesh_unavailable";
  return e;
}

ApiError busy_error() {
  ApiError e = mesh_error("this node's HTTP API has run " + std::to_string(kMaxCompletions) +
                              " completions at once for " + std::to_string(kReplyTimeout.count()) +
                              " s: try again later",
                          1);
  e.code = "server_busy";
  return e;
}

// One completion in flight: its place among the door's completions, the connection to the
// node, and what has come back so far.
struct Call {
  Call(HttpMetrics& m, std::counting_semaphore<>& slots, Endpoint endpoint)
      : metrics(m), slots(slots), endpoint(endpoint) {
    metrics.active++;
  }
  ~Call() {
    metrics.active--;
    slots.release();
  }
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  HttpMetrics& metrics;
  std::counting_semaphore<>& slots;
  Endpoint endpoint;
  std::unique_ptr<net::MeshClient> client;
  openai::Answer answer;
  std::optional<openai::EventStream> events;  // when it streams
  openai::Utf8Joiner utf8;
  std::optional<wire::Message> first;  // received before the answer's status was chosen
  Clock::time_point last_heard = Clock::now();
  bool started = false, over = false;
  int prompt_tokens = 0;
};

std::string answer_id(Endpoint endpoint) {
  static std::atomic<uint64_t> counter{0};
  const char* prefix = endpoint == Endpoint::chat ? "chatcmpl-" : endpoint == Endpoint::responses ? "resp_" : "cmpl-";
  return prefix + std::to_string(std::time(nullptr)) + "-" + std::to_string(++counter);
}

openai::Usage usage_of(const wire::Done& d) {
  return {d.stats.prompt_tokens, d.stats.generated_tokens};
}

std::optional<std::string_view> header(const httplib::Request& req, const char* name) {
  const auto it = req.headers.find(name);
  if (it == req.headers.end()) return std::nullopt;
  return std::string_view(it->second);
}

// Each connection holds a descriptor, and each completion and status query a mesh client's
// (a ZeroMQ context: about ten); at the door's limits that is close to the usual soft limit of
// 1024, past which ZeroMQ aborts the process. The hard limit is the one that matters.
void raise_descriptor_limit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur >= r.rlim_max) return;
  r.rlim_cur = std::min<rlim_t>(r.rlim_max, 65536);
  setrlimit(RLIMIT_NOFILE, &r);
}

}  // namespace

struct HttpServer::Impl {
  HttpOptions options;
  GuardedHttpServer server;
  HttpMetrics metrics;
  std::counting_semaphore<> completion_slots{kMaxCompletions};
  std::counting_semaphore<> status_slots{kMaxStatusQueries};
  std::thread thread;

  // What the entry node would refuse for its length, refused here with the error code OpenAI
  // clients look for. Everything else (a bad conversation, ...) the node reports itself.
  std::optional<ApiError> check_context(const openai::ParsedRequest& p) {
    if (!options.tokenizer) return std::nullopt;
    const int seq_len = options.model.seq_len;
    try {
      const PreparedCompletion c = prepare_completion(p.request, *options.tokenizer, seq_len);
      const int n = static_cast<int>(c.prompt.size());
      if (n + c.options.max_tokens <= seq_len) return std::nullopt;
      const bool prompt_alone = n > seq_len;
      ApiError e;
      e.code = "context_length_exceeded";
      const std::string input = openai::input_field(p.endpoint), max = openai::max_tokens_field(p.endpoint);
      e.param = prompt_alone ? input : max;
      e.message = "the model's context is " + std::to_string(seq_len) + " tokens, but the " + input + " take " +
                  std::to_string(n) +
                  (prompt_alone ? "" : " and " + max + " asks for " + std::to_string(c.options.max_tokens) + " more");
      return e;
    } catch (const InputError&) {
      return std::nullopt;
    }
  }

  // A fresh connection to this node, as `troupe generate` makes one.
  std::unique_ptr<net::MeshClient> connect() {
    return std::make_unique<net::MeshClient>(options.node_address, options.security, std::chrono::seconds(5));
  }

  std::optional<wire::Status> status() { return status_of(options.node_address, std::chrono::seconds(5)); }

  // The status of the node at `address` (this node's, or another member's: the mesh's secret
  // opens every member's door).
  std::optional<wire::Status> status_of(const std::string& address, std::chrono::milliseconds timeout) {
    if (!status_slots.try_acquire_for(std::chrono::seconds(5))) {
      spdlog::warn("http: no status from the node: {} status queries in flight for 5 s", kMaxStatusQueries);
      return std::nullopt;
    }
    struct Release {
      std::counting_semaphore<>& slots;
      ~Release() { slots.release(); }
    } release{status_slots};
    try {
      net::MeshClient client(address, options.security, timeout);
      return query_status(client, address, timeout);
    } catch (const RuntimeFailure& e) {
      spdlog::warn("http: no status from {}: {}", address, e.what());
      return std::nullopt;
    }
  }

  void generate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
    auto parsed = openai::parse_request(endpoint, req.body, options.model, fresh_seed());
    if (const auto* e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
    const openai::ParsedRequest& p = std::get<openai::ParsedRequest>(parsed);
    if (auto e = check_context(p)) return send_error(res, *e);

    if (!completion_slots.try_acquire_for(kReplyTimeout)) return send_error(res, busy_error());
    auto call = std::make_shared<Call>(metrics, completion_slots, endpoint);
    call->answer = {answer_id(endpoint), static_cast<int64_t>(std::time(nullptr)), options.model.id};
    try {
      call->client = connect();
      call->client->send(wire::Message{0, 1, p.request});
      // The first reply decides the status: an error before any text is the request's error.
      call->first = call->client->receive(kReplyTimeout);
    } catch (const std::exception& e) {
      return send_error(res, mesh_error(e.what(), 1));
    }
    if (const auto* error = std::get_if<wire::Error>(&call->first->body)) {
      return send_error(res, mesh_error(error->message, error->code));
    }
    if (p.stream) return stream(res, call, p.include_usage);

    std::string text;
    try {
      while (true) {
        std::optional<wire::Message> next = std::exchange(call->first, std::nullopt);
        if (!next) next = next_whole_reply(*call);
        if (!next) return;  // the client went away: the Call's mesh client goes, and the session ends
        wire::Message& m = *next;
        if (const auto* t = std::get_if<wire::Text>(&m.body)) {
          text += t->text;
        } else if (const auto* done = std::get_if<wire::Done>(&m.body)) {
          metrics.completed(done->stats, done->finish_reason);
          return send_json(res, 200,
                           openai::completion_json(endpoint, call->answer, text, done->finish_reason,
                                                   usage_of(*done)));
        } else if (const auto* error = std::get_if<wire::Error>(&m.body)) {
          return send_error(res, mesh_error(error->message, error->code));
        }
      }
    } catch (const std::exception& e) {
      return send_error(res, mesh_error(e.what(), 1));
    }
  }

  // The next reply of a whole (non-streamed) answer; none once the HTTP client has closed its
  // connection, which is looked at every kPollInterval while the mesh works.
  static std::optional<wire::Message> next_whole_reply(Call& call) {
    const auto deadline = Clock::now() + kReplyTimeout;
    while (!GuardedHttpServer::client_gone()) {
      if (auto m = call.client->poll(kPollInterval)) return m;
      if (Clock::now() > deadline) {
        throw RuntimeFailure("no answer from the mesh within " +
                             std::to_string(std::chrono::seconds(kReplyTimeout).count()) + " s");
      }
    }
    return std::nullopt;
  }

  // Server-sent events (openai::EventStream): one per piece of text as the mesh sends it, then the
  // end of the answer. When the HTTP client goes away, writing fails, the provider returns
  // false, and the Call (with its net::MeshClient) is destroyed.
  void stream(httplib::Response& res, std::shared_ptr<Call> call, bool include_usage) {
    res.set_header("Cache-Control", "no-cache");
    call->events.emplace(call->endpoint, call->answer, include_usage);
    res.set_chunked_content_provider("text/event-stream", [call](std::size_t, httplib::DataSink& sink) {
      Call& c = *call;
      std::string out;
      if (!c.started) out += c.events->start();
      c.started = true;
      std::optional<wire::Message> m = std::exchange(c.first, std::nullopt);
      try {
        if (!m) m = c.client->poll(kPollInterval);
        if (!m && Clock::now() - c.last_heard > kReplyTimeout) {
          throw RuntimeFailure("no answer from the mesh within " +
                               std::to_string(std::chrono::seconds(kReplyTimeout).count()) + " s");
        }
      } catch (const RuntimeFailure& e) {
        m = wire::Message{0, 0, wire::Error{1, e.what()}};
      }
      if (m) {
        c.last_heard = Clock::now();
        if (const auto* t = std::get_if<wire::Text>(&m->body)) {
          const std::string piece = c.utf8.take(t->text);
          if (!piece.empty()) out += c.events->text(piece);
        } else if (const auto* done = std::get_if<wire::Done>(&m->body)) {
          const std::string rest = c.utf8.finish();
          if (!rest.empty()) out += c.events->text(rest);
          out += c.events->finish(done->finish_reason, usage_of(*done));
          c.metrics.completed(done->stats, done->finish_reason);
          c.over = true;
        } else if (const auto* error = std::get_if<wire::Error>(&m->body)) {
          out += c.events->error(mesh_error(error->message, error->code));
          c.over = true;
        }
      }
      if (!out.empty() && !sink.write(out.data(), out.size())) return false;
      if (c.over) {
        sink.done();
        return true;
      }
      return sink.is_writable();
    });
  }

  // CORS: a request from a page of a --cors origin gets the headers that let the page read the
  // answer (refusals included, so that it can show them). Whether it is such a request.
  bool allow_cross_origin(const httplib::Request& req, httplib::Response& res) const {
    const auto origin = header(req, "Origin");
    if (!origin || !http_access::cors_allowed(options.access, *origin)) return false;
    res.set_header("Access-Control-Allow-Origin", std::string(*origin));
    res.set_header("Vary", "Origin");
    return true;
  }

  // Before any route (after the headers, before the body): the Host, Origin and key checks.
  void guard() {
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      const bool preflight = allow_cross_origin(req, res) && req.method == "OPTIONS";
      const http_access::Request seen{req.path, header(req, "Host"), header(req, "Origin"),
                                      header(req, "Authorization"), req.local_addr, preflight};
      const std::optional<ApiError> refusal = http_access::check(options.access, seen);
      if (!refusal && preflight) {
        res.status = 204;
        res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        const auto asked = header(req, "Access-Control-Request-Headers");
        res.set_header("Access-Control-Allow-Headers", asked ? std::string(*asked) : "Authorization, Content-Type");
        res.set_header("Access-Control-Max-Age", "600");
        return httplib::Server::HandlerResponse::Handled;
      }
      if (!refusal) return httplib::Server::HandlerResponse::Unhandled;
      send_error(res, *refusal);
      if (refusal->http_status == 401) res.set_header("WWW-Authenticate", "Bearer");
      // Its body, if any, stays unread: the connection ends with this answer.
      res.set_header("Connection", "close");
      GuardedHttpServer::close_after_response();
      return httplib::Server::HandlerResponse::Handled;
    });
    // cpp-httplib announces Keep-Alive on a response that closes its connection too.
    server.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
      if (res.get_header_value("Connection") == "close") res.headers.erase("Keep-Alive");
    });
  }

  void routes() {
    server.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(web::kIndexHtml, "text/html; charset=utf-8");
    });
    server.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      const auto s = status();
      if (s && s->serving) return send_json(res, 200, {{"status", "ok"}, {"serving", true}});
      send_json(res, 503, {{"status", "unavailable"},
                           {"serving", false},
                           {"problem", s ? s->problem : "the node does not answer"}});
    });
    server.Get("/mesh", [this](const httplib::Request&, httplib::Response& res) {
      const auto s = status();
      if (!s) return send_error(res, mesh_error("the node does not answer a status request", 1));
      json j = status_json(*s, options.security.is_insecure());
      // Each stage's own figures, for the page's pipeline view: its node answers for itself.
      j["pipeline"] = pipeline_json(*s, [&](const std::string& address) {
        return address == options.node_address ? s : status_of(address, kStageStatusTimeout);
      });
      send_json(res, 200, j);
    });
    server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      const ConnectionCounts connections{server.open_connections(), server.refused_connections()};
      res.set_content(metrics.render(status(), connections), "text/plain; version=0.0.4");
    });
    server.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      json model = {{"id", options.model.id}, {"object", "model"}, {"created", options.model.created}, {"owned_by", "troupe"},
                    {"context_length", options.model.seq_len}, {"chat_template", options.chat_template}};
      send_json(res, 200, {{"object", "list"}, {"data", json::array({model})}});
    });
    server.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      generate(req, res, Endpoint::completions);
    });
    server.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      generate(req, res, Endpoint::chat);
    });
    server.Post("/v1/responses", [this](const httplib::Request& req, httplib::Response& res) {
      generate(req, res, Endpoint::responses);
    });
    server.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      metrics.request(req.path, res.status);
    });
  }

  // cpp-httplib's own refusals (no route, body over the limit, malformed HTTP) and exceptions in
  // the API's error shape; the handlers' own errors already have a body and pass through.
  void errors() {
    server.set_error_handler(httplib::Server::HandlerWithResponse(
        [](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      ApiError e;
      e.http_status = res.status;
      if (res.status == 404) {
        e.message = "no such endpoint: " + req.method + " " + req.path;
        e.code = "not_found";
      } else if (res.status == 413) {
        e.message = "the request body is over the limit of " + std::to_string(kMaxBodyBytes) + " bytes";
        e.code = "request_too_large";
      } else {
        e.message = "the request could not be read (HTTP status " + std::to_string(res.status) + ")";
      }
      send_error(res, e);
      return httplib::Server::HandlerResponse::Handled;
    }));
    server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      ApiError e;
      e.http_status = 500;
      e.type = "server_error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& x) {
        e.message = x.what();
      } catch (...) {
        e.message = "internal error";
      }
      send_error(res, e);
    });
  }
};

void add_http_flags(CLI::App& command, HttpFlags& flags) {
  command.add_option("--http", flags.address, "HOST:PORT (or PORT, on 127.0.0.1) for the HTTP API and chat page");
  command.add_option("--api-key", flags.api_key,
                     "Key the HTTP API asks for (Authorization: Bearer KEY) on /v1/*, /mesh and /metrics")
      ->envname("TROUPE_API_KEY");
  command.add_flag("--http-insecure", flags.insecure,
                   "Serve the HTTP API without a key on an address other than a loopback one");
  command.add_option("--allowed-hosts", flags.allowed_hosts,
                     "Host names the HTTP API answers to beyond the address it is reached at (H1,H2; * for any)");
  command.add_option("--cors", flags.cors,
                     "Let web pages of these origins call the HTTP API (https://app.example.com,...; * for any)");
}

std::optional<HttpOptions> http_options(const HttpFlags& flags) {
  if (flags.address.empty()) {
    if (flags.insecure) throw InputError("--http-insecure: there is no --http to apply it to");
    if (!flags.allowed_hosts.empty()) throw InputError("--allowed-hosts: there is no --http to apply it to");
    if (!flags.cors.empty()) throw InputError("--cors: there is no --http to apply it to");
    return std::nullopt;
  }
  HttpOptions o;
  const bool port_only = flags.address.find_first_not_of("0123456789") == std::string::npos;
  o.address = port_only ? "127.0.0.1:" + flags.address : flags.address;
  check_address(o.address, "--http");
  for (const char c : flags.api_key) {
    if (c <= ' ' || c > '~') {
      throw InputError("--api-key: use printable ASCII characters without spaces (the key travels in an HTTP header)");
    }
  }
  o.access.api_key = flags.api_key;
  if (!flags.allowed_hosts.empty()) {
    const auto hosts = http_access::parse_host_list(flags.allowed_hosts);
    if (!hosts) {
      throw InputError("--allowed-hosts " + flags.allowed_hosts +
                       ": expected host names or addresses separated by commas (without ports), or *");
    }
    o.access.allowed_hosts = *hosts;
  }
  if (!flags.cors.empty()) {
    const auto origins = http_access::parse_origin_list(flags.cors);
    if (!origins) {
      throw InputError("--cors " + flags.cors +
                       ": expected origins such as https://app.example.com separated by commas, or *");
    }
    o.access.cors_origins = *origins;
  }
  std::string host = o.address.substr(0, o.address.rfind(':'));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (!http_access::is_loopback(host) && o.access.api_key.empty() && !flags.insecure) {
    throw InputError("--http " + o.address +
                     ": not a loopback address, and the API has no key: pass --api-key KEY (or set "
                     "TROUPE_API_KEY), or --http-insecure to serve it to anyone who reaches the port");
  }
  return o;
}

HttpServer::HttpServer(HttpOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.options = std::move(options);
  raise_descriptor_limit();
  s.server.set_payload_max_length(kMaxBodyBytes);
  s.guard();
  s.routes();
  s.errors();
  const auto colon = s.options.address.rfind(':');
  std::string host = s.options.address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);  // [::1]
  s.server.bind_exclusive(host, std::stoi(s.options.address.substr(colon + 1)), "--http", s.options.address);
  if (s.options.access.api_key.empty() && !http_access::is_loopback(host)) {
    spdlog::warn("HTTP API on {} without a key (--http-insecure): anyone who reaches the port can use it",
                 s.options.address);
  }
  s.thread = std::thread([&s] { s.server.serve(); });
}

HttpServer::~HttpServer() {
  stop();
  join();
}

void HttpServer::stop() { impl_->server.stop_accepting(); }

void HttpServer::join() {
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace troupe::cli
