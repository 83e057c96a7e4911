// GGUF tokenizers (SentencePiece and byte-level BPE) against llama.cpp's own test vectors, the
// Llama 3 pre-tokenizer against hand-written splits, and from_gguf's checks.
#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <functional>
#include <sstream>

#include "support/process.hpp"
#include "troupe/model/error.hpp"
#include "troupe/model/gguf.hpp"
#include "troupe/text/tokenizer.hpp"

using namespace troupe;
using troupe::test::shared_dir;
using troupe::test::temp_dir;
using Catch::Matchers::Contains;

namespace {

std::string vocab_dir() { return shared_dir() + "/models/gguf-vocab/"; }

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f.good());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Vector {
  std::string text;
  std::vector<int> ids;
};

// llama.cpp's test-tokenizer-0 format: the .inp strings are separated by "\n__ggml_vocab_test__\n"
// (the file ends with one), so the newline before and after each separator line belongs to it,
// not to the strings; the .out has one line of ids per string.
std::vector<Vector> load_vectors(const std::string& name) {
  const std::string inp = read_file(vocab_dir() + name + ".inp");
  const std::string out = read_file(vocab_dir() + name + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  std::size_t at = 0;
  for (std::size_t next; (next = inp.find(sep, at)) != std::string::npos; at = next + sep.size()) {
    texts.push_back(inp.substr(at, next - at));
  }
  REQUIRE(at == inp.size());  // nothing after the last separator
  std::vector<Vector> vectors;
  std::istringstream lines(out);
  std::string line;
  for (const std::string& text : texts) {
    REQUIRE(std::getline(lines, line));
    Vector v{text, {}};
    std::istringstream ids(line);
    for (int id; ids >> id;) v.ids.push_back(id);
    vectors.push_back(std::move(v));
  }
  REQUIRE_FALSE(std::getline(lines, line));  // as many id lines as strings
  return vectors;
}

const Tokenizer& spm() {
  static const Tokenizer t =
      Tokenizer::from_gguf(GgufFile::open(vocab_dir() + "ggml-vocab-llama-spm.gguf"));
  return t;
}
const Tokenizer& gpt2() {
  static const Tokenizer t =
      Tokenizer::from_gguf(GgufFile::open(vocab_dir() + "ggml-vocab-gpt-2.gguf"));
  return t;
}

std::string decode_all(const Tokenizer& t, const std::vector<int>& ids) {
  std::string out;
  for (int id : ids) out += t.decode(-1, id);
  return out;
}

// Runs every vector; returns how many pass (each failure is reported with its text).
int check_vectors(const Tokenizer& t, const std::vector<Vector>& vectors) {
  int passed = 0;
  for (const Vector& v : vectors) {
    INFO("text: [" << v.text << "]");
    const std::vector<int> got = t.encode(v.text, false, false);
    CHECK(got == v.ids);
    passed += got == v.ids;
  }
  return passed;
}

Vocabulary hand_vocab(std::vector<std::string> pieces, std::vector<float> scores = {}) {
  Vocabulary v;
  v.pieces = std::move(pieces);
  v.scores = scores.empty() ? std::vector<float>(v.pieces.size(), 0.0f) : std::move(scores);
  v.types.assign(v.pieces.size(), TokenType::normal);
  v.special.unk = 0;
  v.index();
  return v;
}

using Pieces = std::vector<std::string>;

// A small GGUF vocabulary; `edit` changes it before it is written.
std::string write_vocab(const std::string& name, const std::function<void(GgufWriter&)>& edit) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "\xE2\x96\x81" "a", "a"});
  w.set_f32_array("tokenizer.ggml.scores", {0, 0, 0, -1, -2});
  w.set_i32_array("tokenizer.ggml.token_type", {2, 3, 3, 1, 1});
  edit(w);
  const std::string path = temp_dir() + "/" + name + ".gguf";
  w.write(path);
  return path;
}

}  // namespace

TEST_CASE("llama.cpp's SentencePiece vectors (ggml-vocab-llama-spm)", "[tokenizer][gguf-vocab]") {
  const auto vectors = load_vectors("ggml-vocab-llama-spm.gguf");
  REQUIRE(vectors.size() == 46);
  const int passed = check_vectors(spm(), vectors);
  CHECK(passed == 46);
}

TEST_CASE("llama.cpp's GPT-2 BPE vectors (ggml-vocab-gpt-2)", "[tokenizer][gguf-vocab]") {
  const auto vectors = load_vectors("ggml-vocab-gpt-2.gguf");
  REQUIRE(vectors.size() == 46);
  const int passed = check_vectors(gpt2(), vectors);
  CHECK(passed == 46);
}

TEST_CASE("GGUF vocabularies decode back to the text", "[tokenizer][gguf-vocab]") {
  for (const Vector& v : load_vectors("ggml-vocab-llama-spm.gguf")) {
    INFO("text: [" << v.text << "]");
    // SentencePiece adds its space prefix to non-empty text.
    CHECK(decode_all(spm(), v.ids) == (v.text.empty() ? "" : " " + v.text));
  }
  for (const Vector& v : load_vectors("ggml-vocab-gpt-2.gguf")) {
    INFO("text: [" << v.text << "]");
    CHECK(decode_all(gpt2(), v.ids) == v.text);
  }
  // Bytes no piece covers, invalid UTF-8 included, come back through byte tokens.
  const std::string odd = "\xFF\xFEz\x80 \xF0\x9F\xA6\x99\x01";
  CHECK(decode_all(gpt2(), gpt2().encode(odd, false, false)) == odd);
  CHECK(decode_all(spm(), spm().encode(odd, false, false)) == " " + odd);
}

TEST_CASE("GGUF special tokens and flags", "[tokenizer][gguf-vocab]") {
  CHECK(spm().kind() == TokenizerKind::spm);
  CHECK(spm().vocab_size() == 32000);
  CHECK(spm().special().bos == 1);
  CHECK(spm().special().eos == 2);
  CHECK(spm().special().unk == 0);
  CHECK(spm().special().eot == -1);
  CHECK(spm().special().add_bos);
  CHECK(spm().encode("Hello", true, true) == std::vector<int>{1, 15043, 2});
  // Control tokens print nothing; byte tokens print their byte.
  CHECK(spm().decode(-1, 1).empty());
  CHECK(spm().decode(-1, 13) == "\n");  // <0x0A>
  CHECK(spm().decode(-1, 15043) == " Hello");
  CHECK(spm().decode(1, 15043) == "Hello");  // no leading space right after BOS

  CHECK(gpt2().kind() == TokenizerKind::bpe);
  CHECK(gpt2().vocab_size() == 50257);
  CHECK(gpt2().special().bos == 50256);
  CHECK(gpt2().special().eos == 50256);
  CHECK(gpt2().special().eot == 50256);  // found by its text, <|endoftext|>
  CHECK_FALSE(gpt2().special().add_bos);
  CHECK(gpt2().vocab().pretokenizer == "gpt-2");
  CHECK(gpt2().decode(-1, 50256).empty());
  CHECK(gpt2().decode(-1, 18435) == " Hello");
  CHECK(gpt2().is_end(50256));
  CHECK(gpt2().chat_template.empty());
}

TEST_CASE("special tokens written in the text", "[tokenizer][gguf-vocab]") {
  // Without parse_special, "<|endoftext|>" is plain text (llama.cpp's default)...
  const auto plain = encode_bpe(gpt2().vocab(), "a<|endoftext|>b", false);
  CHECK(plain.size() > 3);
  CHECK(std::find(plain.begin(), plain.end(), 50256) == plain.end());
  // ...with it, the control token.
  const auto parsed = encode_bpe(gpt2().vocab(), "a<|endoftext|>b", true);
  REQUIRE(parsed.size() == 3);
  CHECK(parsed[1] == 50256);
  CHECK(parsed == std::vector<int>{gpt2().encode("a", false, false)[0], 50256,
                                    gpt2().encode("b", false, false)[0]});
  // SentencePiece puts its space prefix again after a special token, as llama.cpp.
  CHECK(encode_spm(spm().vocab(), "Hello</s>Hello", true) == std::vector<int>{15043, 2, 15043});
  CHECK(encode_spm(spm().vocab(), "</s>", true) == std::vector<int>{2});

  // User-defined tokens split the text even without parse_special; the longest goes first.
  Vocabulary v = hand_vocab({"<unk>", "x", "y", "<u>", "<uu>", "\xE2\x96\x81"});
  v.types[3] = v.types[4] = TokenType::user_defined;
  v.index();
  const auto spans = split_special_tokens(v, "x<uu>y<u>", false);
  REQUIRE(spans.size() == 4);
  CHECK(spans[0].text == "x");
  CHECK(spans[1].token == 4);
  CHECK(spans[2].text == "y");
  CHECK(spans[3].token == 3);
  CHECK(split_special_tokens(v, "", true).empty());
}

TEST_CASE("SentencePiece merges by score, leftmost on ties, with byte fallback", "[tokenizer][gguf-vocab]") {
  // "▁" 1, "a" 2, "b" 3; merges: "▁a" (-5), "ab" (-1: better), "▁ab" (-2), "aa" (-3).
  const std::string sp = "\xE2\x96\x81";
  Vocabulary v = hand_vocab({"<unk>", sp, "a", "b", sp + "a", "ab", sp + "ab", "aa", "<0x41>"},
                            {0, -10, -10, -10, -5, -1, -2, -3, 0});
  v.types[8] = TokenType::byte;
  v.index();
  // " ab": "ab" merges first (better score than "▁a"), then "▁" + "ab".
  CHECK(encode_spm(v, "ab") == std::vector<int>{6});
  // "aaa": "aa" at 0 and at 1 tie; the left one merges: "▁" "aa" "a"... then "▁a" cannot
  // form (the "a" after "▁" is gone), so [▁, aa, a].
  CHECK(encode_spm(v, "aaa") == std::vector<int>{1, 7, 2});
  // "A" has no piece: its byte token; "C" has neither piece nor byte token: <unk>.
  CHECK(encode_spm(v, "A") == std::vector<int>{1, 8});
  CHECK(encode_spm(v, "C") == std::vector<int>{1, 0});
  CHECK(encode_spm(v, "").empty());
  v.add_space_prefix = false;
  CHECK(encode_spm(v, "ab") == std::vector<int>{5});
  const auto bytes = token_bytes_spm(v);
  CHECK(bytes[1] == " ");
  CHECK(bytes[6] == " ab");
  CHECK(bytes[8] == "A");
}

TEST_CASE("BPE merges by rank, leftmost on ties", "[tokenizer][gguf-vocab]") {
  Vocabulary v = hand_vocab({"a", "b", "c", "ab", "bc", "abc", "\xC4\xA0", "\xC4\xA0" "a"});
  v.merge_text = {"b c", "a b", "ab c", "a bc", "\xC4\xA0 a"};
  v.pretokenizer = "gpt-2";
  v.special.unk = -1;
  v.index();
  // "abc": "b c" (rank 0) before "a b" (rank 1), then "a bc" (rank 3).
  CHECK(encode_bpe(v, "abc") == std::vector<int>{5});
  // " ab" is "Ġab" after the byte mapping; "a b" outranks "Ġ a", and "Ġ ab" is no merge.
  CHECK(encode_bpe(v, " ab") == std::vector<int>{6, 3});
  CHECK(encode_bpe(v, " a") == std::vector<int>{7});
  const auto bytes = token_bytes_bpe(v);
  CHECK(bytes[6] == " ");
  CHECK(bytes[7] == " a");
}

TEST_CASE("Llama 3 pre-tokenizer splits as its regex says", "[tokenizer][gguf-vocab]") {
  auto split = [](std::string_view text) { return bpe_pretokenize("llama-bpe", text); };
  // Contractions, case-insensitive; letters take one leading non-letter, non-digit character.
  CHECK(split("I'm here, they'll go!") ==
        Pieces{"I", "'m", " here", ",", " they", "'ll", " go", "!"});
  CHECK(split("DON'T we've") == Pieces{"DON", "'T", " we", "'ve"});
  CHECK(split("(hello)") == Pieces{"(hello", ")"});
  // Digits in groups of at most three; a space before digits stands alone.
  CHECK(split("1234567") == Pieces{"123", "456", "7"});
  CHECK(split("x 12345") == Pieces{"x", " ", "123", "45"});
  // Punctuation runs take one leading space and the newlines after them.
  CHECK(split("Hello!!! world...") == Pieces{"Hello", "!!!", " world", "..."});
  CHECK(split("end.\n\nNext") == Pieces{"end", ".\n\n", "Next"});
  // Newlines, with the white space before them; spaces before a word leave it one.
  CHECK(split("a\n\nb") == Pieces{"a", "\n\n", "b"});
  CHECK(split("a  \n b") == Pieces{"a", "  \n", " b"});
  CHECK(split("a   b") == Pieces{"a", "  ", " b"});
  CHECK(split("a   ") == Pieces{"a", "   "});
  CHECK(split("\tx") == Pieces{"\tx"});
  CHECK(split("\xC3\xBC" "ber 3\xE2\x82\xAC") == Pieces{"\xC3\xBC" "ber", " ", "3", "\xE2\x82\xAC"});
  // U+0085 (NEL) is white space, as in llama.cpp's Unicode tables.
  CHECK(split("x\xC2\x85\xC2\x85y") == Pieces{"x", "\xC2\x85", "\xC2\x85y"});
  CHECK(split("").empty());
  // GPT-2's differs: digits in one run, contractions lower case only.
  CHECK(bpe_pretokenize("gpt-2", "1234567 DON'T") == Pieces{"1234567", " DON", "'", "T"});
  // Invalid UTF-8 stays in the pieces (no byte is lost).
  std::string joined;
  for (const auto& p : split("a\xFF\xFE b\x80")) joined += p;
  CHECK(joined == "a\xFF\xFE b\x80");
  CHECK_FALSE(bpe_pretokenizer_known("no-such-pre"));
  CHECK_THROWS_AS(bpe_pretokenize("no-such-pre", "x"), InputError);
}

TEST_CASE("from_gguf reads a hand-made vocabulary", "[tokenizer][gguf-vocab]") {
  const std::string path = write_vocab("ok", [](GgufWriter& w) {
    w.set_string("tokenizer.chat_template", "{{ messages }}");
    w.set_u32("tokenizer.ggml.eot_token_id", 2);
    w.set_bool("tokenizer.ggml.add_bos_token", false);
  });
  const Tokenizer t = Tokenizer::from_gguf(GgufFile::open(path));
  CHECK(t.chat_template == "{{ messages }}");
  CHECK(t.special().eot == 2);
  CHECK_FALSE(t.special().add_bos);
  CHECK(t.encode("a", false, false) == std::vector<int>{3});
}

TEST_CASE("from_gguf rejects what it cannot use", "[tokenizer][gguf-vocab][errors]") {
  auto error_of = [](const std::function<void(GgufWriter&)>& edit) -> std::string {
    const std::string path = write_vocab("bad", edit);
    try {
      Tokenizer::from_gguf(GgufFile::open(path));
    } catch (const InputError& e) {
      const std::string what = e.what();
      CHECK_THAT(what, Contains(path));
      return what;
    }
    FAIL("no InputError");
    return "";
  };
  CHECK_THAT(error_of([](GgufWriter& w) { w.set_string("tokenizer.ggml.model", "bert"); }),
             Contains("'bert'") && Contains("tokenizer.ggml.model"));
  CHECK_THAT(error_of([](GgufWriter& w) { w.set_f32_array("tokenizer.ggml.scores", {0, 0}); }),
             Contains("tokenizer.ggml.scores"));
  CHECK_THAT(error_of([](GgufWriter& w) { w.set_i32_array("tokenizer.ggml.token_type", {1}); }),
             Contains("tokenizer.ggml.token_type"));
  CHECK_THAT(error_of([](GgufWriter& w) { w.set_u32("tokenizer.ggml.bos_token_id", 5); }),
             Contains("tokenizer.ggml.bos_token_id"));
  CHECK_THAT(error_of([](GgufWriter& w) { w.set_i32("tokenizer.ggml.eos_token_id", -7); }),
             Contains("tokenizer.ggml.eos_token_id"));
  CHECK_THAT(error_of([](GgufWriter& w) { w.set_string("tokenizer.ggml.tokens", "x"); }),
             Contains("tokenizer.ggml.tokens"));
  CHECK_THAT(error_of([](GgufWriter& w) { w.set_string("tokenizer.ggml.model", "gpt2"); }),
             Contains("tokenizer.ggml.merges"));
  CHECK_THAT(error_of([](GgufWriter& w) {
               w.set_string("tokenizer.ggml.model", "gpt2");
               w.set_string_array("tokenizer.ggml.merges", {"a a"});
               w.set_string("tokenizer.ggml.pre", "klingon");
             }),
             Contains("'klingon'") && Contains("tokenizer.ggml.pre"));
  // -1 (also as u32) means "none".
  const std::string path = write_vocab("none", [](GgufWriter& w) {
    w.set_u32("tokenizer.ggml.eos_token_id", 0xFFFFFFFF);
  });
  CHECK(Tokenizer::from_gguf(GgufFile::open(path)).special().eos == -1);
}
