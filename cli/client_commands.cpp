// The mesh's clients: `troupe generate` (stdout as `troupe run` prints it, byte for byte),
// `troupe chat` (a streaming REPL) and `troupe status`. Each talks to one node (--peer), any
// node, whether it holds a stage or not.
#include <signal.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.hpp"
#include "mesh_access.hpp"
#include "mesh_status.hpp"
#include "openai_api.hpp"
#include "speech.hpp"
#include "troupe/discovery/planner.hpp"
#include "troupe/model/error.hpp"
#include "troupe/net/addresses.hpp"
#include "troupe/net/client.hpp"
#include "troupe/text/chat_template.hpp"
#include "troupe/text/generate.hpp"

namespace troupe::cli {

namespace {

// Tokens come at least this often from a working mesh; a stalled one is reported, not waited on.
constexpr auto kReplyTimeout = std::chrono::seconds(300);

struct SamplingFlags {
  float temperature = 1.0f;
  float topp = 0.9f;
  long long seed = 0;
  int steps = 256;
};

void add_sampling_flags(CLI::App* cmd, SamplingFlags& f, int default_steps) {
  f.steps = default_steps;
  cmd->add_option("-t", f.temperature, "Temperature, 0 = greedy (default 1.0)");
  cmd->add_option("-p", f.topp, "Top-p (nucleus) sampling threshold (default 0.9)");
  cmd->add_option("-s", f.seed, "Random seed (default: from the clock)");
  cmd->add_option("-n", f.steps, "Positions to run, prompt included; 0 = the model's context");
}

wire::GenerateRequest request(const SamplingFlags& f, std::string prompt, bool chat) {
  wire::GenerateRequest r;
  r.prompt = std::move(prompt);
  r.sampling = sampling_settings(f.temperature, f.topp, f.seed, fresh_seed());
  r.steps = std::max(f.steps, 0);
  r.chat = chat;
  return r;
}

// Streams one completion's text to stdout; returns its statistics. An error from the mesh
// throws: InputError for bad input (exit 2), RuntimeFailure otherwise (exit 1).
GenerationStats stream(net::MeshClient& client, const std::string& peer, const wire::GenerateRequest& r,
                       Speech& speech) {
  client.send(wire::Message{0, 1, r});
  while (true) {
    const wire::Message m = client.receive(kReplyTimeout);
    if (const auto* text = std::get_if<wire::Text>(&m.body)) {
      std::fwrite(text->text.data(), 1, text->text.size(), stdout);
      std::fflush(stdout);
      speech.add(text->text);
    } else if (const auto* done = std::get_if<wire::Done>(&m.body)) {
      return done->stats;
    } else if (const auto* error = std::get_if<wire::Error>(&m.body)) {
      if (error->code == 2) throw InputError(error->message);
      throw RuntimeFailure(error->message + " (via peer " + peer + ")");
    } else {
      throw RuntimeFailure("peer " + peer + " sent an unexpected " + wire::type_name(m.type()) +
                           " frame");
    }
  }
}

void report(const GenerationStats& s, const std::string& peer) {
  if (s.positions > 1 && s.total_ms > 0) {
    std::fprintf(stderr, "achieved tok/s: %f\n", (s.positions - 1) * 1000.0 / s.total_ms);
  }
  std::fprintf(stderr,
               "troupe: prompt %d tok, generated %d tok, %.2f tok/s, first token %.1f ms, "
               "%.2f ms/token, via %s\n",
               s.prompt_tokens, s.generated_tokens, s.decode_tokens_per_s(), s.first_token_ms,
               s.generated_tokens > 1 ? s.decode_ms / (s.generated_tokens - 1) : 0.0, peer.c_str());
}

// The mesh behind --peer (HOST:PORT or a join token), with what the key file's reading had to say.
MeshAccess peer_access(const MeshFlags& mesh, const std::string& peer) {
  MeshAccess access = mesh_access(mesh, {peer}, "--peer");
  for (const auto& w : access.warnings) std::fprintf(stderr, "troupe: warning: %s\n", w.c_str());
  return access;
}

void add_peer_flags(CLI::App* cmd, std::string& peer, MeshFlags& mesh) {
  cmd->add_option("--peer", peer, "HOST:PORT of any node of the mesh, or a join token (troupe invite)")->required();
  add_mesh_flags(cmd, mesh);
}

struct GenerateFlags {
  std::string peer;
  MeshFlags mesh;
  SamplingFlags sampling;
  std::string prompt;
  SpeechFlags speech;
};

int run_generate(const GenerateFlags& f) {
  const MeshAccess access = peer_access(f.mesh, f.peer);
  const wire::GenerateRequest r = request(f.sampling, f.prompt, false);
  Speech speech(f.speech);
  const Connection c = connect_to_mesh(access);
  const GenerationStats stats = stream(*c.client, c.peer, r, speech);
  std::fputs("\n", stdout);
  std::fflush(stdout);
  speech.finish();
  report(stats, c.peer);
  return 0;
}

struct ChatFlags {
  std::string peer;
  MeshFlags mesh;
  SamplingFlags sampling;
  std::string system_prompt;
  std::string chat_template;
  SpeechFlags speech;
};

// Ctrl-C during an answer cancels that answer; at the prompt it clears the line. Set by the
// handler, read and cleared by the REPL.
std::atomic<bool> interrupted{false};
extern "C" void on_interrupt(int) { interrupted = true; }

void install_interrupt_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a read at the prompt returns, so the line can be dropped
  sigaction(SIGINT, &sa, nullptr);
}

enum class Turn { answered, cancelled, refused };

// Streams one answer to stdout as it comes, whole UTF-8 characters at a time. The mesh keeps no
// state between turns: each turn sends the whole conversation, which the entry node renders with
// its model's chat template. Cancelling drops the connection, which ends the session at the node.
Turn answer(Connection& connection, const MeshAccess& access, const wire::GenerateRequest& r,
            std::string& reply, GenerationStats& stats, Speech& speech) {
  std::unique_ptr<net::MeshClient>& client = connection.client;
  const std::string& peer = connection.peer;
  client->send(wire::Message{0, 1, r});
  openai::Utf8Joiner utf8;
  const auto deadline_after = [] { return std::chrono::steady_clock::now() + kReplyTimeout; };
  auto deadline = deadline_after();
  while (true) {
    if (interrupted.exchange(false)) {
      connection = connect_to_mesh(access);
      return Turn::cancelled;
    }
    const std::optional<wire::Message> m = client->poll(std::chrono::milliseconds(100));
    if (!m) {
      if (std::chrono::steady_clock::now() > deadline) {
        throw RuntimeFailure("no answer from peer " + peer + " within " +
                             std::to_string(kReplyTimeout.count()) + " s");
      }
      continue;
    }
    deadline = deadline_after();
    if (const auto* text = std::get_if<wire::Text>(&m->body)) {
      reply += text->text;
      const std::string out = utf8.take(text->text);
      std::fwrite(out.data(), 1, out.size(), stdout);
      std::fflush(stdout);
      speech.add(out);
    } else if (const auto* done = std::get_if<wire::Done>(&m->body)) {
      const std::string rest = utf8.finish();
      std::fwrite(rest.data(), 1, rest.size(), stdout);
      speech.add(rest);
      speech.finish();
      stats = done->stats;
      return Turn::answered;
    } else if (const auto* error = std::get_if<wire::Error>(&m->body)) {
      // Bad input (the conversation outgrew the context, ...) ends the turn, not the program.
      if (error->code != 2) throw RuntimeFailure(error->message + " (via peer " + peer + ")");
      std::fprintf(stderr, "troupe: %s (/reset starts a new conversation)\n", error->message.c_str());
      return Turn::refused;
    }
  }
}

int run_chat(const ChatFlags& f) {
  const MeshAccess access = peer_access(f.mesh, f.peer);
  if (!f.chat_template.empty() && !chat_template_named(f.chat_template)) {
    throw InputError("--chat-template " + f.chat_template + ": expected llama2, llama3, chatml or zephyr");
  }
  Speech speech(f.speech);
  Connection connection = connect_to_mesh(access);
  install_interrupt_handler();
  std::vector<ChatMessage> history;
  auto reset = [&] {
    history.clear();
    if (!f.system_prompt.empty()) history.push_back({"system", f.system_prompt});
  };
  reset();
  GenerationStats last;
  int turns = 0;
  long long prompt_total = 0, generated_total = 0;
  std::string line;
  while (true) {
    std::fputs("User: ", stdout);
    std::fflush(stdout);
    if (!std::getline(std::cin, line)) {
      if (interrupted.exchange(false) && !std::cin.bad()) {  // Ctrl-C at the prompt
        std::cin.clear();
        std::fputs("\n", stdout);
        continue;
      }
      break;
    }
    if (line == "/quit") return 0;
    if (line == "/reset") {
      reset();
      std::fputs("(a new conversation)\n", stdout);
      continue;
    }
    if (line == "/stats") {
      std::printf("%d turns, %lld prompt tokens, %lld generated tokens; last answer: %d tokens, "
                  "%.2f tok/s, first token %.1f ms\n",
                  turns, prompt_total, generated_total, last.generated_tokens, last.decode_tokens_per_s(),
                  last.first_token_ms);
      continue;
    }
    history.push_back({"user", line});
    std::fputs("Assistant: ", stdout);
    std::fflush(stdout);
    wire::GenerateRequest r = request(f.sampling, "", true);
    r.messages = history;
    r.chat_template = f.chat_template;
    std::string reply;
    GenerationStats stats;
    const Turn turn = answer(connection, access, r, reply, stats, speech);
    if (turn == Turn::answered) {
      history.push_back({"assistant", reply});
      last = stats;
      turns++;
      prompt_total += stats.prompt_tokens;
      generated_total += stats.generated_tokens;
    } else {
      history.pop_back();  // the turn did not happen
      if (turn == Turn::cancelled) std::fputs(" [cancelled]", stdout);
    }
    std::fputs("\n", stdout);
  }
  std::fputs("\n", stdout);
  return 0;
}

struct StatusFlags {
  std::string peer;
  MeshFlags mesh;
  bool json = false;
};

// " (18.8 MiB without a stage)": what a member measured itself holding with no stage, where it says.
std::string resting(const wire::Member& x) {
  if (x.base_rss == 0) return {};
  char text[48];
  std::snprintf(text, sizeof text, " (%.1f MiB without a stage)", double(x.base_rss) / (1 << 20));
  return text;
}

// ", dead for 42 s": how long a member has been gone (it is forgotten after 600 s).
std::string since(const wire::Member& x) {
  if (x.state != "dead" && x.state != "left") return {};
  return ", " + x.state + " for " + std::to_string(std::llround(x.since_seconds)) + " s";
}

int run_status(const StatusFlags& f) {
  const MeshAccess access = peer_access(f.mesh, f.peer);
  const Connection c = connect_to_mesh(access);
  const wire::Status status = query_status(*c.client, c.peer);
  const wire::Status* s = &status;
  // The node speaks the way this client does, or the handshake would have failed.
  const bool insecure = access.security.is_insecure();
  if (f.json) {
    const nlohmann::json j = status_json(status, insecure);
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("node %s: term %llu, coordinator %s\n", s->self.c_str(),
              static_cast<unsigned long long>(s->term),
              s->coordinator ? s->coordinator->c_str() : "none yet");
  std::printf("security: %s\n", insecure ? "none (--insecure: neither authenticated nor encrypted)"
                                         : ("CURVE, mesh " + access.security.mesh_id()).c_str());
  std::printf("members:\n");
  for (const auto& x : s->members) {
    std::printf("  %-20s %-22s %-7s layers %-7s %5.1f GB/s %3d cores %s, budget %.0f MiB%s%s\n",
                x.name.c_str(), x.address.c_str(), x.state.c_str(),
                x.layers ? discovery::format_range(*x.layers).c_str() : "none", x.throughput, x.cores,
                x.arch.c_str(), double(x.mem_budget) / (1 << 20), resting(x).c_str(), since(x).c_str());
  }
  std::printf("plan v%llu (%d layers):", static_cast<unsigned long long>(s->plan_version), s->model_layers);
  for (const auto& st : s->stages) std::printf(" %s %s", st.node.c_str(), discovery::format_range(st.layers).c_str());
  const bool starting = s->problem.rfind("starting", 0) == 0;
  std::printf("\n%s\n", s->serving ? "serving" : starting ? s->problem.c_str() : ("not serving: " + s->problem).c_str());
  const wire::NodeCounters& n = s->counters;
  if (n.stage_passes > 0) {
    std::printf("its stage: %llu positions in %llu batched passes, %.1f rows and %.1f sessions a pass\n",
                static_cast<unsigned long long>(n.stage_positions), static_cast<unsigned long long>(n.stage_passes),
                double(n.stage_positions) / double(n.stage_passes), double(n.stage_pass_sessions) / double(n.stage_passes));
  }
  return 0;
}

}  // namespace

void check_address(const std::string& address, const std::string& flag) {
  const auto hp = net::split_address(address);
  const std::string port = hp ? hp->port : "";
  bool ok = hp && port.size() <= 5 && port.find_first_not_of("0123456789") == std::string::npos;
  if (ok) {
    const int p = std::stoi(port);
    ok = p >= 1 && p <= 65535;
  }
  if (!ok || address.size() > wire::kMaxNameBytes) {
    throw InputError(flag + " " + address + ": expected HOST:PORT");
  }
}

Action add_generate_command(CLI::App& app) {
  auto f = std::make_shared<GenerateFlags>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text through the mesh (as troupe run)");
  add_peer_flags(cmd, f->peer, f->mesh);
  add_sampling_flags(cmd, f->sampling, 256);
  cmd->add_option("-i", f->prompt, "Prompt")->required();
  add_speech_flags(cmd, f->speech);
  return [f] { return run_generate(*f); };
}

Action add_chat_command(CLI::App& app) {
  auto f = std::make_shared<ChatFlags>();
  CLI::App* cmd = app.add_subcommand(
      "chat", "Chat through the mesh (reads turns from stdin; /reset, /stats, /quit; Ctrl-C cancels an answer)");
  add_peer_flags(cmd, f->peer, f->mesh);
  cmd->add_option("-y", f->system_prompt, "System prompt");
  cmd->add_option("--chat-template", f->chat_template,
                  "llama2, llama3, chatml or zephyr (default: the one the model file names)");
  add_sampling_flags(cmd, f->sampling, 0);
  add_speech_flags(cmd, f->speech);
  return [f] { return run_chat(*f); };
}

Action add_status_command(CLI::App& app) {
  auto f = std::make_shared<StatusFlags>();
  CLI::App* cmd = app.add_subcommand("status", "Show the mesh as one node sees it");
  add_peer_flags(cmd, f->peer, f->mesh);
  cmd->add_flag("--json", f->json, "One JSON object");
  return [f] { return run_status(*f); };
}

}  // namespace troupe::cli
