#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/process.hpp"
#include "troupe/model/error.hpp"
#include "troupe/text/generate.hpp"
#include "troupe/text/tokenizer.hpp"

using namespace troupe;
using troupe::test::shared_dir;

namespace {
const Tokenizer& llama2() {
  static const Tokenizer t =
      Tokenizer::load_llama2c(shared_dir() + "/models/llama2-tokenizer/tokenizer.bin", 32000);
  return t;
}
const Tokenizer& tok512() {
  static const Tokenizer t =
      Tokenizer::load_llama2c(shared_dir() + "/models/stories260K/tok512.bin", 512);
  return t;
}
// The text run.c prints for a token sequence (the prompt echo of `run`).
std::string decode_all(const Tokenizer& t, const std::vector<int>& ids) {
  std::string out;
  for (std::size_t i = 1; i < ids.size(); i++) append_printable(out, t.decode(ids[i - 1], ids[i]));
  return out;
}
}  // namespace

TEST_CASE("Llama 2 vocabulary encodes exactly as llama2.c", "[tokenizer]") {
  std::ifstream f(shared_dir() + "/reference/llama2-tokenizer-encodings.json");
  REQUIRE(f.good());
  const auto doc = nlohmann::json::parse(f);
  REQUIRE(doc["cases"].size() >= 5);
  for (const auto& c : doc["cases"]) {
    const std::string text = c["text"];
    INFO("text: " << text);
    CHECK(llama2().encode(text, c["bos"], c["eos"]) == c["tokens"].get<std::vector<int>>());
  }
}

TEST_CASE("encoding adds BOS, the dummy space, and EOS on request", "[tokenizer]") {
  const auto ids = llama2().encode("Hello", true, true);
  REQUIRE(ids.size() >= 3);
  CHECK(ids.front() == Tokenizer::kBos);
  CHECK(ids.back() == Tokenizer::kEos);
  CHECK(llama2().encode("", true, false) == std::vector<int>{Tokenizer::kBos});
  CHECK(llama2().encode("", false, false).empty());
}

TEST_CASE("unknown code points fall back to bytes", "[tokenizer]") {
  // tok512 has no piece for the llama emoji (F0 9F A6 99): four byte tokens, id = byte + 3.
  const auto ids = tok512().encode("\xF0\x9F\xA6\x99", false, false);
  REQUIRE(ids.size() == 5);  // the dummy space, then the four bytes
  CHECK(ids[1] == 0xF0 + 3);
  CHECK(ids[2] == 0x9F + 3);
  CHECK(ids[3] == 0xA6 + 3);
  CHECK(ids[4] == 0x99 + 3);
}

TEST_CASE("decoding follows run.c", "[tokenizer]") {
  const Tokenizer& t = llama2();
  const int hello = t.encode("Hello", false, false).back();  // " Hello" merged
  REQUIRE(t.piece(hello) == " Hello");
  CHECK(t.decode(Tokenizer::kBos, hello) == "Hello");  // no leading space after BOS
  CHECK(t.decode(13, hello) == " Hello");
  CHECK(t.decode(5, 13) == "\n");  // <0x0A>
  CHECK(t.decode(5, 3 + 'A') == "A");
  CHECK(t.decode(5, 3).empty());  // <0x00> prints nothing
}

TEST_CASE("a token outside the vocabulary is an input error, not a read outside it", "[tokenizer][errors]") {
  const Tokenizer& t = tok512();
  CHECK_THROWS_WITH(t.decode(5, 512), "token 512 is outside the vocabulary of 512");
  CHECK_THROWS_AS(t.decode(5, -1), InputError);
  CHECK_THROWS_AS(t.decode(5, 0x7fffffff), InputError);
  CHECK(t.decode(5, 511) == t.decode(5, 511));  // the last one is in
  // A generation refuses it without changing state: the next good token continues the text.
  Generation g(t, std::string_view("Once"), 20, 256);
  const int before = g.generated_tokens();
  CHECK_THROWS_AS(g.accept(0x7fffffff), InputError);
  CHECK(g.generated_tokens() == before);
  CHECK_FALSE(g.done());
  CHECK(g.accept(t.encode(" upon", false, false).back()) == " upon");
}

TEST_CASE("only printable pieces are printed", "[tokenizer]") {
  std::string out;
  append_printable(out, "\x80");  // a lone continuation byte
  append_printable(out, "\x07");  // a control byte
  append_printable(out, "");
  CHECK(out.empty());
  append_printable(out, "\n");
  append_printable(out, "caf\xC3\xA9");  // a whole piece with UTF-8 inside passes
  CHECK(out == "\ncaf\xC3\xA9");
}

TEST_CASE("decode round-trips encode for ASCII text", "[tokenizer]") {
  for (const std::string text : {"Once upon a time", "Tom had a red ball.", "a  b\tc\nd 42!"}) {
    CHECK(decode_all(tok512(), tok512().encode(text, true, false)) == text);
    CHECK(decode_all(llama2(), llama2().encode(text, true, false)) == text);
  }
}

TEST_CASE("broken tokenizer files are rejected", "[tokenizer][errors]") {
  const std::string dir = troupe::test::temp_dir();
  std::ifstream src(shared_dir() + "/models/stories260K/tok512.bin", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(src)), {});
  for (std::size_t cut : {std::size_t(0), std::size_t(3), std::size_t(100), bytes.size() / 2,
                          bytes.size() - 1}) {
    const std::string path = dir + "/cut.bin";
    std::ofstream(path, std::ios::binary).write(bytes.data(), cut);
    INFO("cut at " << cut);
    CHECK_THROWS_AS(Tokenizer::load_llama2c(path, 512), InputError);
  }
  // A huge token length.
  std::string noisy = bytes;
  const int32_t huge = 1 << 30;
  std::memcpy(noisy.data() + 8, &huge, 4);
  std::ofstream(dir + "/noisy.bin", std::ios::binary).write(noisy.data(), noisy.size());
  CHECK_THROWS_AS(Tokenizer::load_llama2c(dir + "/noisy.bin", 512), InputError);
  // More tokens asked for than the file holds.
  CHECK_THROWS_AS(Tokenizer::load_llama2c(shared_dir() + "/models/stories260K/tok512.bin", 513),
                  InputError);
}
