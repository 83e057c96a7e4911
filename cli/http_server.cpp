#include "http_server.hpp"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <map>
#include <mutex>
#include <thread>

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
// Streams and page polls each hold a thread while their connection lasts; requests beyond this
// wait in cpp-httplib's queue rather than fail.
constexpr std::size_t kThreads = 48;
// As `troupe generate`: a working mesh sends something at least this often.
constexpr auto kReplyTimeout = std::chrono::seconds(300);
// How often a stream waiting for the mesh looks whether its HTTP client is still there.
constexpr auto kPollInterval = std::chrono::milliseconds(200);

// What /metrics reports. Counters cover what entered through this node's HTTP door.
class Metrics {
 public:
  void request(const std::string& path, int status) {
    static const char* const kKnown[] = {"/",           "/health",         "/mesh",
                                         "/metrics",    "/v1/models",      "/v1/completions",
                                         "/v1/chat/completions"};
    std::string label = "other";  // unknown paths share one label, so that scans cannot grow it
    for (const char* k : kKnown) {
      if (path == k) label = k;
    }
    std::lock_guard lock(mutex_);
    requests_[{label, status}]++;
  }
  void completed(const GenerationStats& s, const std::string& finish_reason) {
    std::lock_guard lock(mutex_);
    completions_[finish_reason.empty() ? "unknown" : finish_reason]++;
    prompt_tokens_ += s.prompt_tokens;
    generated_tokens_ += s.generated_tokens;
    decode_tokens_ += std::max(s.generated_tokens - 1, 0);
    decode_seconds_ += s.decode_ms / 1000;
    first_token_seconds_ += s.first_token_ms / 1000;
    if (s.generated_tokens > 1) last_tokens_per_s_ = s.decode_tokens_per_s();
  }
  std::atomic<int> active{0};

  std::string render(const std::optional<wire::Status>& status) {
    std::string out;
    auto metric = [&](const char* name, const char* type, const char* help) {
      out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    };
    auto line = [&](const std::string& name, double v) {
      out += name + " " + json(v).dump() + "\n";
    };
    std::lock_guard lock(mutex_);
    metric("troupe_http_requests_total", "counter", "HTTP requests answered, by path and status");
    for (const auto& [key, n] : requests_) {
      line("troupe_http_requests_total{path=\"" + key.first + "\",code=\"" + std::to_string(key.second) + "\"}",
           static_cast<double>(n));
    }
    metric("troupe_active_sessions", "gauge", "Completions in flight through this node's HTTP API");
    line("troupe_active_sessions", active.load());
    metric("troupe_completions_total", "counter", "Completions finished, by finish reason");
    for (const auto& [reason, n] : completions_) {
      line("troupe_completions_total{finish_reason=\"" + reason + "\"}", static_cast<double>(n));
    }
    metric("troupe_prompt_tokens_total", "counter", "Prompt tokens of finished completions");
    line("troupe_prompt_tokens_total", static_cast<double>(prompt_tokens_));
    metric("troupe_tokens_generated_total", "counter", "Tokens sampled by finished completions");
    line("troupe_tokens_generated_total", static_cast<double>(generated_tokens_));
    metric("troupe_decode_tokens_total", "counter",
           "Tokens sampled after each completion's first (the ones decode_seconds_total covers)");
    line("troupe_decode_tokens_total", static_cast<double>(decode_tokens_));
    metric("troupe_decode_seconds_total", "counter", "Time from first to last sampled token, summed");
    line("troupe_decode_seconds_total", decode_seconds_);
    metric("troupe_first_token_seconds_total", "counter", "Time to the first token (prompt included), summed");
    line("troupe_first_token_seconds_total", first_token_seconds_);
    metric("troupe_decode_tokens_per_second", "gauge", "Decode speed of the last finished completion");
    line("troupe_decode_tokens_per_second", last_tokens_per_s_);
    if (status) {
      metric("troupe_mesh_serving", "gauge", "1 when the stages cover every layer");
      line("troupe_mesh_serving", status->serving ? 1 : 0);
      metric("troupe_mesh_members", "gauge", "Members of the mesh as this node sees them, by state");
      std::map<std::string, int> states{{"alive", 0}, {"suspect", 0}, {"dead", 0}};
      for (const auto& m : status->members) states[m.state]++;
      for (const auto& [state, n] : states) line("troupe_mesh_members{state=\"" + state + "\"}", n);
      const wire::NodeCounters& c = status->counters;
      metric("troupe_node_sessions_active", "gauge", "Sessions in flight that entered through this node (any door)");
      line("troupe_node_sessions_active", static_cast<double>(c.sessions_active));
      metric("troupe_node_sessions_total", "counter", "Sessions that entered through this node (any door)");
      line("troupe_node_sessions_total", static_cast<double>(c.sessions_total));
      metric("troupe_node_tokens_generated_total", "counter", "Tokens sampled for sessions that entered here");
      line("troupe_node_tokens_generated_total", static_cast<double>(c.tokens_generated));
      metric("troupe_stage_compute_seconds_total", "counter", "Time this node's stage spent computing");
      line("troupe_stage_compute_seconds_total", c.stage_compute_seconds);
      metric("troupe_stage_positions_total", "counter", "Positions this node's stage computed");
      line("troupe_stage_positions_total", static_cast<double>(c.stage_positions));
      metric("troupe_network_frames_total", "counter", "Frames this node sent and received");
      line("troupe_network_frames_total{direction=\"sent\"}", static_cast<double>(c.frames_sent));
      line("troupe_network_frames_total{direction=\"received\"}", static_cast<double>(c.frames_received));
      metric("troupe_network_bytes_total", "counter", "Bytes of frames this node sent and received");
      line("troupe_network_bytes_total{direction=\"sent\"}", static_cast<double>(c.bytes_sent));
      line("troupe_network_bytes_total{direction=\"received\"}", static_cast<double>(c.bytes_received));
      metric("troupe_hops_total", "counter",
             "Network hops of the decode steps this node's sessions measured (entry to stages and back)");
      line("troupe_hops_total", static_cast<double>(c.hops));
      metric("troupe_hop_network_seconds_total", "counter",
             "Those steps' round trips less the stages' compute time: over troupe_hops_total, the time a hop costs");
      line("troupe_hop_network_seconds_total", c.hop_seconds);
      metric("troupe_mesh_stage_layers", "gauge", "Layers each stage of the plan runs");
      for (const auto& st : status->stages) {
        line("troupe_mesh_stage_layers{node=\"" + st.node + "\",first=\"" + std::to_string(st.layers.begin) +
                 "\"}",
             st.layers.end - st.layers.begin);
      }
    }
    return out;
  }

 private:
  std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, uint64_t> completions_;
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0, decode_tokens_ = 0;
  double decode_seconds_ = 0, first_token_seconds_ = 0, last_tokens_per_s_ = 0;
};

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

// One completion in flight: the connection to the node, and what has come back so far.
struct Call {
  Call(Metrics& m, Endpoint endpoint) : metrics(m), endpoint(endpoint) { metrics.active++; }
  ~Call() { metrics.active--; }
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  Metrics& metrics;
  Endpoint endpoint;
  std::unique_ptr<net::MeshClient> client;
  openai::Answer answer;
  openai::Utf8Joiner utf8;
  std::optional<wire::Message> first;  // received before the answer's status was chosen
  Clock::time_point last_heard = Clock::now();
  bool started = false, over = false;
  int prompt_tokens = 0;
};

std::string answer_id(Endpoint endpoint) {
  static std::atomic<uint64_t> counter{0};
  return (endpoint == Endpoint::chat ? "chatcmpl-" : "cmpl-") + std::to_string(std::time(nullptr)) +
         "-" + std::to_string(++counter);
}

openai::Usage usage_of(const wire::Done& d) {
  return {d.stats.prompt_tokens, d.stats.generated_tokens};
}

}  // namespace

struct HttpServer::Impl {
  HttpOptions options;
  httplib::Server server;
  Metrics metrics;
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
      e.param = prompt_alone ? (p.endpoint == Endpoint::chat ? "messages" : "prompt") : "max_tokens";
      e.message = "the model's context is " + std::to_string(seq_len) + " tokens, but the " +
                  (p.endpoint == Endpoint::chat ? "messages" : "prompt") + " take " + std::to_string(n) +
                  (prompt_alone ? "" : " and max_tokens asks for " + std::to_string(c.options.max_tokens) + " more");
      return e;
    } catch (const InputError&) {
      return std::nullopt;
    }
  }

  // A fresh connection to this node, as `troupe generate` makes one.
  std::unique_ptr<net::MeshClient> connect() {
    return std::make_unique<net::MeshClient>(options.node_address, std::chrono::seconds(5));
  }

  std::optional<wire::Status> status() {
    try {
      auto client = connect();
      return query_status(*client, options.node_address, std::chrono::seconds(5));
    } catch (const RuntimeFailure& e) {
      spdlog::warn("http: no status from the node: {}", e.what());
      return std::nullopt;
    }
  }

  void generate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
    auto parsed = openai::parse_request(endpoint, req.body, options.model, std::time(nullptr));
    if (const auto* e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
    const openai::ParsedRequest& p = std::get<openai::ParsedRequest>(parsed);
    if (auto e = check_context(p)) return send_error(res, *e);

    auto call = std::make_shared<Call>(metrics, endpoint);
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
    if (p.stream) return stream(res, call);

    std::string text;
    try {
      while (true) {
        wire::Message m = call->first ? std::move(*std::exchange(call->first, std::nullopt))
                                      : call->client->receive(kReplyTimeout);
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

  // Server-sent events: one chunk per piece of text as the mesh sends it, then the finish
  // reason, then [DONE]. When the HTTP client goes away, writing fails, the provider returns
  // false, and the Call (with its net::MeshClient) is destroyed.
  void stream(httplib::Response& res, std::shared_ptr<Call> call) {
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider("text/event-stream", [call](std::size_t, httplib::DataSink& sink) {
      Call& c = *call;
      std::string out;
      if (!c.started && c.endpoint == Endpoint::chat) out += openai::sse_event(openai::role_chunk(c.answer));
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
          if (!piece.empty()) out += openai::sse_event(openai::text_chunk(c.endpoint, c.answer, piece));
        } else if (const auto* done = std::get_if<wire::Done>(&m->body)) {
          const std::string rest = c.utf8.finish();
          if (!rest.empty()) out += openai::sse_event(openai::text_chunk(c.endpoint, c.answer, rest));
          out += openai::sse_event(openai::final_chunk(c.endpoint, c.answer, done->finish_reason, usage_of(*done)));
          out += openai::kSseDone;
          c.metrics.completed(done->stats, done->finish_reason);
          c.over = true;
        } else if (const auto* error = std::get_if<wire::Error>(&m->body)) {
          out += openai::sse_event(mesh_error(error->message, error->code).to_json());
          out += openai::kSseDone;
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
      send_json(res, 200, status_json(*s));
    });
    server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics.render(status()), "text/plain; version=0.0.4");
    });
    server.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      json model = {{"id", options.model.id}, {"object", "model"}, {"created", 0}, {"owned_by", "troupe"},
                    {"context_length", options.model.seq_len}, {"chat_template", options.chat_template}};
      send_json(res, 200, {{"object", "list"}, {"data", json::array({model})}});
    });
    server.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      generate(req, res, Endpoint::completions);
    });
    server.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      generate(req, res, Endpoint::chat);
    });
    // cpp-httplib's own refusals (no route, body over the limit, malformed HTTP) in the API's
    // error shape; the handlers' own errors already have a body and pass through.
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
    server.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      metrics.request(req.path, res.status);
    });
  }
};

HttpServer::HttpServer(HttpOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.options = std::move(options);
  s.server.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  s.server.set_payload_max_length(kMaxBodyBytes);
  s.routes();
  const auto colon = s.options.address.rfind(':');
  std::string host = s.options.address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);  // [::1]
  const int port = std::stoi(s.options.address.substr(colon + 1));
  if (!s.server.bind_to_port(host, port)) {
    throw RuntimeFailure("--http " + s.options.address + ": cannot listen there");
  }
  s.thread = std::thread([&s] { s.server.listen_after_bind(); });
}

HttpServer::~HttpServer() {
  stop();
  join();
}

void HttpServer::stop() { impl_->server.stop(); }

void HttpServer::join() {
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace troupe::cli
