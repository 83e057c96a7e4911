// `troupe run`: the single-process engine, a drop-in for llama2.c's `run` (same flags, same
// defaults, same stdout byte for byte); statistics go to stderr only.
#include <sys/resource.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <memory>
#include <string>

#include "commands.hpp"
#include "model_paths.hpp"
#include "progress.hpp"
#include "speech.hpp"
#include "troupe/kernels/kernels.hpp"
#include "troupe/model/error.hpp"
#include "troupe/model/weight_types.hpp"
#include "troupe/text/generate.hpp"

namespace troupe::cli {

namespace {

struct RunOptions {
  std::string model;
  std::string tokenizer;
  float temperature = 1.0f;
  float topp = 0.9f;
  long long seed = 0;
  int steps = 256;
  std::string prompt;
  std::string mode = "generate";
  std::string system_prompt;
  bool has_system_prompt = false;
  int threads = 0;
  std::string quantize;
  bool mmap = false;
  std::string speculate = "off";
  int draft_tokens = 4;
  SpeechFlags speech;
};

double peak_rss_mib() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // Linux reports KiB
}

void print_piece(std::string_view piece) {
  std::fwrite(piece.data(), 1, piece.size(), stdout);
  std::fflush(stdout);
}

void report(const GenerationStats& s, int threads, const Model& model) {
  if (s.positions > 1 && s.total_ms > 0) {
    // run.c's line, for scripts written against it.
    std::fprintf(stderr, "achieved tok/s: %f\n", (s.positions - 1) * 1000.0 / s.total_ms);
  }
  std::fprintf(stderr,
               "troupe: prompt %d tok (%.1f tok/s), generated %d tok, %.2f tok/s, first token "
               "%.1f ms, %.2f ms/token, peak RSS %.1f MiB, weights %.1f MB/token, threads %d, "
               "isa %s\n",
               s.prompt_tokens, s.prompt_tokens_per_s(), s.generated_tokens,
               s.decode_tokens_per_s(), s.first_token_ms,
               s.generated_tokens > 1 ? s.decode_ms / (s.generated_tokens - 1) : 0.0,
               peak_rss_mib(), model.bytes_per_token() / 1e6, threads,
               std::string(kernels::isa_name(kernels::detected_isa())).c_str());
  if (s.drafted > 0) {
    std::fprintf(stderr, "troupe: speculation: %d of %d guesses accepted (%.0f%%)\n", s.accepted, s.drafted,
                 100.0 * s.accepted / s.drafted);
  }
}

// Reads one line from stdin after printing `guide`, as run.c's read_stdin; false at end of input.
bool read_line(const char* guide, std::string& line) {
  std::fputs(guide, stdout);
  std::fflush(stdout);
  if (!std::getline(std::cin, line)) return false;
  return true;
}

// run.c's chat loop: Llama 2 [INST] turns, the assistant's reply streamed until EOS (id 2).
void chat(Transformer& transformer, const Tokenizer& tokenizer, Sampler& sampler,
          const RunOptions& opt, int steps, Speech& speech) {
  std::string system_prompt, user_prompt;
  std::vector<int> prompt_tokens;
  std::size_t user_idx = 0;
  bool user_turn = true;
  int next = 0, token = 0, pos = 0;
  std::string text;
  while (pos < steps) {
    if (user_turn) {
      if (pos == 0) {
        if (opt.has_system_prompt) {
          system_prompt = opt.system_prompt;
        } else if (!read_line("Enter system prompt (optional): ", system_prompt)) {
          break;
        }
      }
      if (pos == 0 && !opt.prompt.empty()) {
        user_prompt = opt.prompt;
      } else if (!read_line("User: ", user_prompt)) {
        break;
      }
      const std::string rendered =
          pos == 0 && !system_prompt.empty()
              ? "[INST] <<SYS>>\n" + system_prompt + "\n<</SYS>>\n\n" + user_prompt + " [/INST]"
              : "[INST] " + user_prompt + " [/INST]";
      prompt_tokens = tokenizer.encode(rendered, true, false);
      user_idx = 0;
      user_turn = false;
      std::fputs("Assistant: ", stdout);
    }
    token = user_idx < prompt_tokens.size() ? prompt_tokens[user_idx++] : next;
    if (token == tokenizer.special().eos) user_turn = true;
    float* logits = transformer.forward(token, pos);
    next = sampler.sample(logits);
    pos++;
    if (user_idx >= prompt_tokens.size() && next != tokenizer.special().eos) {
      text.clear();
      append_printable(text, tokenizer.decode(token, next));
      print_piece(text);
      speech.add(text);
    }
    if (next == tokenizer.special().eos) {
      std::fputs("\n", stdout);
      speech.finish();
    }
  }
  std::fputs("\n", stdout);
}

int run(RunOptions opt) {
  // run.c's clamping of out-of-range values, shared with `troupe generate`.
  const SamplingSettings sampling =
      sampling_settings(opt.temperature, opt.topp, opt.seed, fresh_seed());
  if (opt.threads < 0) throw InputError("--threads: must be 0 (all cores) or more");
  Speech speech(opt.speech);  // before the model loads: a bad --speak-to fails at once

  LoadOptions load;
  load.mmap = opt.mmap;
  if (!opt.quantize.empty()) load.quantize = parse_weight_type(opt.quantize, "--quantize");
  const std::string model_path = resolve_model(opt.model);
  const Model model = load_model_showing_progress(model_path, load);
  const ModelConfig& c = model.config;
  const int steps = positions_to_run(opt.steps, c.seq_len);
  const Tokenizer tokenizer = load_tokenizer(model_path, c.vocab_size, opt.tokenizer);
  Sampler sampler(c.vocab_size, sampling.temperature, sampling.topp, sampling.seed);
  ThreadPool pool(opt.threads);
  Transformer transformer(model, LayerRange{0, c.n_layers}, steps, pool);

  if (opt.mode == "chat") {
    chat(transformer, tokenizer, sampler, opt, steps, speech);
    speech.finish();
    return 0;
  }
  Speculation speculation;
  if (opt.speculate == "lookup") {
    if (opt.draft_tokens < 1 || opt.draft_tokens >= Transformer::kMaxEach) {
      throw InputError("--draft-tokens: must be 1 to " + std::to_string(Transformer::kMaxEach - 1));
    }
    speculation = {opt.draft_tokens, [](std::span<const int> context, int k) { return lookup_drafts(context, k); }};
  }
  const GenerationStats stats = generate(
      transformer, tokenizer, sampler, opt.prompt, steps,
      [&](std::string_view piece) {
        print_piece(piece);
        speech.add(piece);
      },
      speculation);
  std::fputs("\n", stdout);
  std::fflush(stdout);
  speech.finish();
  report(stats, pool.size(), model);
  return 0;
}

}  // namespace

Action add_run_command(CLI::App& app) {
  auto opt = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand(
      "run", "Generate text in this process (a drop-in for llama2.c's run)");
  cmd->add_option("model", opt->model, "Model file (GGUF or llama2.c checkpoint) or name")->required();
  cmd->add_option("-z", opt->tokenizer, "Tokenizer file (default: beside the model)");
  cmd->add_option("-t", opt->temperature, "Temperature, 0 = greedy (default 1.0)");
  cmd->add_option("-p", opt->topp, "Top-p (nucleus) sampling threshold (default 0.9)");
  cmd->add_option("-s", opt->seed, "Random seed (default: from the clock)");
  cmd->add_option("-n", opt->steps, "Positions to run, prompt included; 0 = seq_len (default 256)");
  cmd->add_option("-i", opt->prompt, "Prompt");
  cmd->add_option("-m", opt->mode, "Mode: generate or chat")
      ->check(CLI::IsMember({"generate", "chat"}));
  cmd->add_option("-y", opt->system_prompt, "System prompt in chat mode");
  cmd->add_option("--threads", opt->threads, "Threads (default: all cores)");
  cmd->add_option("--quantize", opt->quantize, quantize_flag_help())
      ->check(CLI::IsMember(quantize_on_load_types()));
  cmd->add_flag("--mmap", opt->mmap,
                "Leave the weights mapped from the file instead of loading them into memory");
  cmd->add_option("--speculate", opt->speculate,
                  "Guess tokens and check them in one batch: off, or lookup (from the text so far); "
                  "the text is the same either way (default off)")
      ->check(CLI::IsMember({"off", "lookup"}));
  cmd->add_option("--draft-tokens", opt->draft_tokens, "Guesses checked a step with --speculate (default 4)");
  add_speech_flags(cmd, opt->speech);
  return [opt, cmd] {
    opt->has_system_prompt = cmd->count("-y") > 0;
    return run(*opt);
  };
}

}  // namespace troupe::cli
