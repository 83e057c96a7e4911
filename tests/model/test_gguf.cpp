// GGUF: real files written by llama.cpp, writer round trips, the exact byte layout, and malformed
// files that must end in InputError (never a crash, never bad_alloc).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include "support/process.hpp"
#include "troupe/model/error.hpp"
#include "troupe/model/gguf.hpp"
#include "troupe/model/weight_types.hpp"

using namespace troupe;
using troupe::test::shared_dir;
using troupe::test::TempDir;
using troupe::test::read_all;
using troupe::test::write_all;

namespace {


// Builds GGUF bytes by hand, for layouts the writer would refuse to produce.
struct Bytes {
  std::string s;
  template <class T>
  Bytes& put(T v) {
    char b[sizeof v];
    std::memcpy(b, &v, sizeof v);
    s.append(b, sizeof v);
    return *this;
  }
  Bytes& u32(uint32_t v) { return put(v); }
  Bytes& u64(uint64_t v) { return put(v); }
  Bytes& str(const std::string& v) {
    u64(v.size());
    s += v;
    return *this;
  }
  Bytes& header(uint64_t tensors, uint64_t kvs, uint32_t version = 3) {
    s += "GGUF";
    return u32(version).u64(tensors).u64(kvs);
  }
  Bytes& kv_u32(const std::string& key, uint32_t v) { return str(key).u32(4).u32(v); }
  // One tensor info: name, dims, type, offset.
  Bytes& tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type, uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) u64(d);
    return u32(type).u64(offset);
  }
  Bytes& pad_to(std::size_t alignment) {
    s.resize((s.size() + alignment - 1) / alignment * alignment, '\0');
    return *this;
  }
};

bool same(const GgufValue& a, const GgufValue& b);

bool same_array(const GgufArray& a, const GgufArray& b) {
  if (a.element_type != b.element_type || a.strings != b.strings || a.items.size() != b.items.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.items.size(); i++) {
    if (!same(a.items[i], b.items[i])) return false;
  }
  return true;
}

bool same(const GgufValue& a, const GgufValue& b) {
  if (a.type != b.type || a.value.index() != b.value.index()) return false;
  if (const auto* x = std::get_if<std::shared_ptr<GgufArray>>(&a.value)) {
    return same_array(**x, *std::get<std::shared_ptr<GgufArray>>(b.value));
  }
  return a.value == b.value;
}

GgufValue array_of(GgufValueType element, std::vector<GgufValue> items) {
  auto a = std::make_shared<GgufArray>();
  a->element_type = element;
  a->items = std::move(items);
  return {GgufValueType::array, std::move(a)};
}

// Bytes 0, 1, 2, ... (mod 251) for a tensor, so misplaced data shows.
GgufWriter::Fill pattern(int seed) {
  return [seed](std::span<std::byte> out) {
    for (std::size_t i = 0; i < out.size(); i++) out[i] = std::byte((i + seed) % 251);
  };
}

std::string pattern_bytes(std::size_t n, int seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; i++) s[i] = static_cast<char>((i + seed) % 251);
  return s;
}

std::string tensor_bytes(const GgufTensorInfo& t) {
  REQUIRE(t.data != nullptr);
  return std::string(reinterpret_cast<const char*>(t.data), t.bytes);
}

// A small file with metadata and all four writable tensor types.
void write_small(const std::string& path) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 1);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a"});
  w.set_i32_array("tokenizer.ggml.token_type", {2, 3, 3, 1});
  w.add_tensor("a.f32", {3, 2}, GgmlType::f32, pattern(1));
  w.add_tensor("b.f16", {5}, GgmlType::f16, pattern(2));
  w.add_tensor("c.q8_0", {32, 2}, GgmlType::q8_0, pattern(3));
  w.add_tensor("d.q4_0", {64}, GgmlType::q4_0, pattern(4));
  w.write(path);
}

const std::string kVocabDir = shared_dir() + "/models/gguf-vocab";
const std::string kStoriesDir = shared_dir() + "/models/stories260K";

}  // namespace

TEST_CASE("gguf: llama.cpp's vocabulary-only files", "[gguf]") {
  const GgufFile spm = GgufFile::open(kVocabDir + "/ggml-vocab-llama-spm.gguf");
  CHECK(spm.version() == 3);
  CHECK(spm.alignment() == 32);
  CHECK(spm.tensors().empty());
  CHECK(spm.get_string("general.architecture") == "llama");
  CHECK(spm.get_string("tokenizer.ggml.model") == "llama");
  CHECK(spm.get_int("llama.vocab_size") == 32000);
  CHECK(spm.get_bool("tokenizer.ggml.add_bos_token") == true);
  CHECK(spm.get_int("tokenizer.ggml.bos_token_id") == 1);
  const GgufArray* tokens = spm.get_array("tokenizer.ggml.tokens");
  REQUIRE(tokens != nullptr);
  CHECK(tokens->element_type == GgufValueType::string);
  REQUIRE(tokens->strings.size() == 32000);
  CHECK(tokens->strings[0] == "<unk>");
  CHECK(tokens->strings[3] == "<0x00>");
  const GgufArray* scores = spm.get_array("tokenizer.ggml.scores");
  REQUIRE(scores != nullptr);
  CHECK(scores->element_type == GgufValueType::f32);
  CHECK(scores->items.size() == 32000);
  CHECK(spm.get_array("tokenizer.ggml.token_type")->items.size() == 32000);
  CHECK(describe(*spm.find("tokenizer.ggml.tokens")).find("string x 32000") != std::string::npos);
  CHECK(!spm.find("no.such.key"));
  CHECK(!spm.get_int("no.such.key"));
  // A typed getter asked for the wrong type names the key.
  CHECK_THROWS_WITH(spm.get_int("tokenizer.ggml.model"), Catch::Contains("tokenizer.ggml.model"));
  CHECK_THROWS_AS(spm.get_string("llama.vocab_size"), InputError);
  CHECK_THROWS_AS(spm.get_array("general.architecture"), InputError);
  CHECK(spm.get_float("llama.attention.layer_norm_rms_epsilon") == Approx(1e-5));

  const GgufFile gpt2 = GgufFile::open(kVocabDir + "/ggml-vocab-gpt-2.gguf");
  CHECK(gpt2.tensors().empty());
  CHECK(gpt2.get_string("general.architecture") == "gpt2");
  CHECK(gpt2.get_string("tokenizer.ggml.model") == "gpt2");
  CHECK(gpt2.get_array("tokenizer.ggml.tokens")->strings.size() == 50257);
  CHECK(gpt2.get_array("tokenizer.ggml.merges")->strings.size() == 50000);
  CHECK(gpt2.get_array("tokenizer.ggml.merges")->strings[0] == "\xc4\xa0 t");  // "Ġ t"
}

TEST_CASE("gguf: stories260K converted by llama.cpp", "[gguf]") {
  const GgufFile f = GgufFile::open(kStoriesDir + "/stories260K-llamacpp-f32.gguf");
  CHECK(f.version() == 3);
  CHECK(f.get_string("general.architecture") == "llama");
  CHECK(f.get_int("llama.embedding_length") == 64);
  CHECK(f.get_int("llama.feed_forward_length") == 172);
  CHECK(f.get_int("llama.block_count") == 5);
  CHECK(f.get_int("llama.attention.head_count") == 8);
  CHECK(f.get_int("llama.attention.head_count_kv") == 4);
  CHECK(f.get_float("llama.attention.layer_norm_rms_epsilon") == Approx(1e-5));
  CHECK(f.get_array("tokenizer.ggml.tokens")->strings.size() == 512);
  // 9 tensors per block, the embedding, the final norm and the classifier.
  CHECK(f.tensors().size() == 5 * 9 + 3);

  const GgufTensorInfo* emb = f.find_tensor("token_embd.weight");
  REQUIRE(emb);
  CHECK(emb->dims == std::vector<uint64_t>{64, 512});
  CHECK(emb->type == uint32_t(GgmlType::f32));
  CHECK(emb->elements() == 64 * 512);
  CHECK(emb->bytes == 64 * 512 * 4);
  const GgufTensorInfo* q = f.find_tensor("blk.0.attn_q.weight");
  REQUIRE(q);
  CHECK(q->dims == std::vector<uint64_t>{64, 64});
  const GgufTensorInfo* k = f.find_tensor("blk.4.attn_k.weight");
  REQUIRE(k);
  CHECK(k->dims == std::vector<uint64_t>{64, 32});
  const GgufTensorInfo* out = f.find_tensor("output.weight");
  REQUIRE(out);
  CHECK(out->dims == std::vector<uint64_t>{64, 512});
  CHECK(!f.find_tensor("no.such.tensor"));
  for (const GgufTensorInfo& t : f.tensors()) {
    CHECK((t.data - f.file().bytes().data()) % f.alignment() == 0);
  }

  // The same floats as the llama2.c checkpoint: its embedding starts after the 28-byte header,
  // followed by the five layers' attention norms. The classifier is a copy of the embedding.
  const std::string bin = read_all(kStoriesDir + "/stories260K.bin");
  const std::size_t emb_bytes = 512 * 64 * 4;
  CHECK(tensor_bytes(*emb) == bin.substr(28, emb_bytes));
  CHECK(tensor_bytes(*out) == bin.substr(28, emb_bytes));
  CHECK(tensor_bytes(*f.find_tensor("blk.0.attn_norm.weight")) == bin.substr(28 + emb_bytes, 64 * 4));
  CHECK(tensor_bytes(*f.find_tensor("blk.4.attn_norm.weight")) ==
        bin.substr(28 + emb_bytes + 4 * 64 * 4, 64 * 4));
}

TEST_CASE("gguf: re-writing llama.cpp's file gives the same bytes", "[gguf]") {
  // llama.cpp's own writer made this file: the same metadata and tensors through GgufWriter
  // must come out byte for byte the same, padding included.
  TempDir dir;
  const std::string original = kStoriesDir + "/stories260K-llamacpp-f32.gguf";
  const GgufFile f = GgufFile::open(original);
  GgufWriter w;
  for (const auto& [key, value] : f.metadata()) w.set(key, value);
  for (const GgufTensorInfo& t : f.tensors()) {
    w.add_tensor(t.name, t.dims, GgmlType(t.type), [&t](std::span<std::byte> out) {
      std::memcpy(out.data(), t.data, t.bytes);
    });
  }
  w.write(dir / "copy.gguf");
  CHECK(read_all(dir / "copy.gguf") == read_all(original));
}

TEST_CASE("gguf: ggml type names and sizes", "[gguf]") {
  CHECK(ggml_type_name(0) == "f32");
  CHECK(ggml_type_name(8) == "q8_0");
  CHECK(ggml_type_name(12) == "q4_K");
  CHECK(ggml_type_name(30) == "bf16");
  CHECK(ggml_type_name(4) == "unknown type 4");  // Q4_2, retired
  CHECK(ggml_type_name(1000) == "unknown type 1000");
  CHECK(ggml_type_supported(2));
  CHECK(!ggml_type_supported(12));
  CHECK(ggml_type_bytes(GgmlType::f32, 10) == 40);
  CHECK(ggml_type_bytes(GgmlType::f16, 10) == 20);
  CHECK(ggml_type_bytes(GgmlType::q8_0, 64) == 68);
  CHECK(ggml_type_bytes(GgmlType::q4_0, 96) == 54);
  CHECK(ggml_block_size(GgmlType::q4_0) == 32);
  CHECK(ggml_block_size(GgmlType::f16) == 1);
  CHECK_THROWS_AS(ggml_type_bytes(GgmlType::q8_0, 33), InputError);
  CHECK_THROWS_AS(ggml_type_bytes(GgmlType::f32, uint64_t(1) << 63), InputError);
}

// Every metadata value type, scalars and arrays (nested ones too), as the round trip writes them.
std::vector<std::pair<std::string, GgufValue>> sample_metadata() {
  std::vector<std::pair<std::string, GgufValue>> meta = {
      {"t.u8", {GgufValueType::u8, uint64_t{255}}},
      {"t.i8", {GgufValueType::i8, int64_t{-128}}},
      {"t.u16", {GgufValueType::u16, uint64_t{65535}}},
      {"t.i16", {GgufValueType::i16, int64_t{-32768}}},
      {"t.u32", {GgufValueType::u32, uint64_t{4000000000u}}},
      {"t.i32", {GgufValueType::i32, int64_t{-2000000000}}},
      {"t.f32", {GgufValueType::f32, double{0.1f}}},
      {"t.bool", {GgufValueType::boolean, true}},
      {"t.string", {GgufValueType::string, std::string("h\xc3\xa9llo\0x", 8)}},
      {"t.empty_string", {GgufValueType::string, std::string()}},
      {"t.u64", {GgufValueType::u64, std::numeric_limits<uint64_t>::max()}},
      {"t.i64", {GgufValueType::i64, std::numeric_limits<int64_t>::min()}},
      {"t.f64", {GgufValueType::f64, 3.141592653589793}},
      {"t.u8s", array_of(GgufValueType::u8, {{GgufValueType::u8, uint64_t{1}}, {GgufValueType::u8, uint64_t{2}}})},
      {"t.bools", array_of(GgufValueType::boolean, {{GgufValueType::boolean, false}, {GgufValueType::boolean, true}})},
      {"t.f64s", array_of(GgufValueType::f64, {{GgufValueType::f64, -0.5}})},
      {"t.i64s", array_of(GgufValueType::i64, {{GgufValueType::i64, int64_t{-1}}})},
      {"t.empty", array_of(GgufValueType::u32, {})},
      {"t.nested", array_of(GgufValueType::array,
                            {array_of(GgufValueType::i16, {{GgufValueType::i16, int64_t{-7}}}),
                             array_of(GgufValueType::u32, {})})},
  };
  auto strings = std::make_shared<GgufArray>();
  strings->element_type = GgufValueType::string;
  strings->strings = {"a", "", "long string"};
  meta.push_back({"t.nested_strings", array_of(GgufValueType::array, {{GgufValueType::array, strings}})});
  return meta;
}

// The metadata of the round trip's file read back: the sample, then the typed array setters'.
void check_round_trip_metadata(const GgufFile& f, const std::vector<std::pair<std::string, GgufValue>>& meta,
                               uint32_t alignment) {
  const auto& got = f.metadata();
  REQUIRE(got.size() == meta.size() + 3 + (alignment ? 1 : 0));
  for (std::size_t i = 0; i < meta.size(); i++) {
    INFO(meta[i].first << " = " << describe(meta[i].second) << ", read back " << describe(got[i].second));
    CHECK(got[i].first == meta[i].first);
    CHECK(same(got[i].second, meta[i].second));
  }
  CHECK(f.get_array("t.strings")->strings == std::vector<std::string>{"x", "", "zz"});
  CHECK(std::get<double>(f.get_array("t.f32s")->items[1].value) == -2.0);
  CHECK(f.get_array("t.i32s")->items[1].type == GgufValueType::i32);
  CHECK_THROWS_AS(f.get_int("t.i32s"), InputError);
  CHECK_THROWS_AS(f.get_int("t.u64"), InputError);  // 2^64-1 does not fit int64
  CHECK(f.get_int("t.i64") == std::numeric_limits<int64_t>::min());
  CHECK(f.get_int("t.u8") == 255);
  CHECK(f.get_float("t.f32") == double{0.1f});
  CHECK(f.get_float("t.i8") == -128.0);
  CHECK(f.get_bool("t.bool") == true);
  CHECK(describe(*f.find("t.f32")) == "0.1");
  CHECK(describe(*f.find("t.nested")) == "[array x 2: [i16 x 1: -7], [u32 x 0]]");
}

// The tensors of the round trip's file read back, packed in order and aligned; returns the data
// section's size.
uint64_t check_round_trip_tensors(const GgufFile& f, uint64_t align) {
  REQUIRE(f.tensors().size() == 5);
  const std::vector<std::pair<std::string, uint64_t>> expect = {
      {"f32", 60}, {"f16", 14}, {"q8_0", 6 * 34}, {"q4_0", 4 * 18}, {"4d", 96}};
  uint64_t offset = 0;
  for (std::size_t i = 0; i < expect.size(); i++) {
    const GgufTensorInfo& t = f.tensors()[i];
    INFO(t.name);
    CHECK(t.name == expect[i].first);
    CHECK(t.bytes == expect[i].second);
    CHECK(t.offset == offset);  // llama.cpp insists tensors are packed in order, each aligned
    CHECK((t.data - f.file().bytes().data()) % align == 0);
    CHECK(tensor_bytes(t) == pattern_bytes(t.bytes, static_cast<int>(i)));
    offset += (t.bytes + align - 1) / align * align;
  }
  CHECK(f.tensors()[3].dims == std::vector<uint64_t>{32, 2, 2});
  CHECK(f.tensors()[3].type == uint32_t(GgmlType::q4_0));
  CHECK(f.tensors()[4].dims == std::vector<uint64_t>{1, 2, 3, 4});
  return offset;
}

TEST_CASE("the weight type table agrees with ggml and the kernels", "[gguf][types]") {
  std::set<uint32_t> ggml_types;
  for (const WeightTypeInfo& info : weight_types()) {
    const kernels::TypeTraits& t = kernels::type_traits(info.type);
    INFO("type " << t.name);
    CHECK(&weight_type_info(info.type) == &info);
    CHECK(std::string(weight_type_name(info.type)) == t.name);
    if (info.ggml) {
      // ggml's name, block and bytes for its number; the name parses back to the type.
      const uint32_t number = static_cast<uint32_t>(*info.ggml);
      CHECK(ggml_types.insert(number).second);
      CHECK(ggml_type_name(number) == t.name);
      CHECK(ggml_type_supported(number));
      CHECK(weight_type_of_ggml(number) == info.type);
      CHECK(ggml_block_size(*info.ggml) == t.block);
      CHECK(ggml_type_bytes(*info.ggml, uint64_t(t.block) * 5) == uint64_t(t.block_bytes) * 5);
      CHECK(find_weight_type(t.name) == info.type);
      CHECK(parse_weight_type(t.name, "--type") == info.type);
      CHECK(info.llama_file_type.has_value());
      CHECK(!t.scales_apart);  // GGUF's types keep their scales in their blocks
    } else {
      CHECK(!find_weight_type(t.name).has_value());
      CHECK(!info.llama_file_type.has_value());
    }
    if (info.quantize_on_load) {
      CHECK(info.ggml.has_value());  // named by --quantize
      CHECK(t.quantized);
      CHECK(!t.scales_apart);
    }
  }
  CHECK(weight_types().size() == std::size_t(kernels::kWeightTypes));
  CHECK(named_weight_types() == std::vector<std::string>{"f32", "f16", "q8_0", "q4_0"});
  CHECK(quantize_on_load_types() == std::vector<std::string>{"q8_0", "q4_0"});
  CHECK_THROWS_WITH(parse_weight_type("q4_K", "--quantize"),
                    "--quantize: unknown weight type 'q4_K' (f32, f16, q8_0 or q4_0)");
  CHECK(quantize_flag_help() == "Quantize f32/f16 weights on load: q8_0 or q4_0");
  CHECK(type_flag_help() == "Type of the matrices: f32 (default), f16, q8_0, q4_0");
  CHECK_THROWS_WITH(ggml_type_bytes(GgmlType::q4_K, 256),
                    "ggml type q4_K is not supported (f32, f16, q4_0 and q8_0 are)");
}

TEST_CASE("gguf: writer round trip of every metadata type and tensor type", "[gguf]") {
  TempDir dir;
  for (uint32_t alignment : {0u, 64u}) {  // 0: no general.alignment key, the default 32
    INFO("alignment " << alignment);
    GgufWriter w;
    const std::vector<std::pair<std::string, GgufValue>> meta = sample_metadata();
    for (const auto& [k, v] : meta) w.set(k, v);
    w.set_string_array("t.strings", {"x", "", "zz"});
    w.set_f32_array("t.f32s", {1.5f, -2.0f});
    w.set_i32_array("t.i32s", {7, -8});
    if (alignment) w.set_u32("general.alignment", alignment);
    w.add_tensor("f32", {3, 5}, GgmlType::f32, pattern(0));
    w.add_tensor("f16", {7}, GgmlType::f16, pattern(1));
    w.add_tensor("q8_0", {64, 3}, GgmlType::q8_0, pattern(2));
    w.add_tensor("q4_0", {32, 2, 2}, GgmlType::q4_0, pattern(3));
    w.add_tensor("4d", {1, 2, 3, 4}, GgmlType::f32, pattern(4));
    std::vector<std::pair<uint64_t, uint64_t>> progress;
    const std::string path = dir / "round.gguf";
    w.write(path, [&](uint64_t done, uint64_t total) { progress.emplace_back(done, total); });

    CHECK(!std::filesystem::exists(path + ".tmp"));
    const GgufFile f = GgufFile::open(path);
    const uint64_t align = alignment ? alignment : 32;
    CHECK(f.version() == 3);
    CHECK(f.alignment() == align);
    CHECK(f.file().size() % align == 0);
    check_round_trip_metadata(f, meta, alignment);
    const uint64_t offset = check_round_trip_tensors(f, align);
    // Progress after each tensor, ending at the whole (padded) data section.
    REQUIRE(progress.size() == 5);
    CHECK(progress.back().first == offset);
    CHECK(progress.back().second == offset);
    CHECK(f.file().size() == (f.tensors()[0].data - f.file().bytes().data()) + offset);
  }
}

TEST_CASE("gguf: writer set() replaces in place and keeps insertion order", "[gguf]") {
  TempDir dir;
  GgufWriter w;
  w.set_u32("b", 1);
  w.set_string("a", "first");
  w.set_u32("c", 3);
  w.set_string("a", "second");
  w.set_i32("b", -1);
  w.write(dir / "order.gguf");
  const GgufFile f = GgufFile::open(dir / "order.gguf");
  REQUIRE(f.metadata().size() == 3);
  CHECK(f.metadata()[0].first == "b");
  CHECK(f.metadata()[0].second.type == GgufValueType::i32);
  CHECK(f.get_int("b") == -1);
  CHECK(f.metadata()[1].first == "a");
  CHECK(f.get_string("a") == "second");
  CHECK(f.metadata()[2].first == "c");
  CHECK(f.tensors().empty());
}

TEST_CASE("gguf: writer refuses what it cannot write and leaves no partial file", "[gguf]") {
  TempDir dir;
  GgufWriter w;
  CHECK_THROWS_AS(w.add_tensor("q", {48, 2}, GgmlType::q8_0, {}), InputError);  // 48 % 32 != 0
  CHECK_THROWS_AS(w.add_tensor("z", {0}, GgmlType::f32, {}), InputError);
  CHECK_THROWS_AS(w.add_tensor("five", {1, 1, 1, 1, 1}, GgmlType::f32, {}), InputError);
  CHECK_THROWS_AS(w.add_tensor("none", {}, GgmlType::f32, {}), InputError);
  CHECK_THROWS_AS(w.add_tensor(std::string(64, 'n'), {1}, GgmlType::f32, {}), InputError);
  CHECK_THROWS_AS(w.add_tensor("k", {1}, GgmlType(12), {}), InputError);
  w.add_tensor("t", {1}, GgmlType::f32, {});
  CHECK_THROWS_AS(w.add_tensor("t", {1}, GgmlType::f32, {}), InputError);

  // A failing fill leaves neither the file nor its temporary, and an old file stays as it was.
  const std::string path = dir / "out.gguf";
  write_all(path, "old");
  GgufWriter failing;
  failing.add_tensor("t", {4}, GgmlType::f32, [](std::span<std::byte>) { throw RuntimeFailure("boom"); });
  CHECK_THROWS_AS(failing.write(path), RuntimeFailure);
  CHECK(read_all(path) == "old");
  CHECK(!std::filesystem::exists(path + ".tmp"));

  GgufWriter bad_alignment;
  bad_alignment.set_u32("general.alignment", 48);
  CHECK_THROWS_AS(bad_alignment.write(dir / "a.gguf"), InputError);
  GgufWriter nested;
  nested.set("deep", array_of(GgufValueType::array,
                              {array_of(GgufValueType::array, {array_of(GgufValueType::u8, {})})}));
  CHECK_THROWS_AS(nested.write(dir / "n.gguf"), InputError);
  GgufWriter out_of_range;
  out_of_range.set("x", {GgufValueType::u8, uint64_t{256}});
  CHECK_THROWS_AS(out_of_range.write(dir / "r.gguf"), InputError);
  CHECK(!std::filesystem::exists(dir / "a.gguf"));
  CHECK(!std::filesystem::exists(dir / "n.gguf"));

  GgufWriter fine;
  CHECK_THROWS_AS(fine.write("/nonexistent-dir/x.gguf"), RuntimeFailure);
}

TEST_CASE("gguf: header, first key and tensor info at their exact offsets", "[gguf]") {
  TempDir dir;
  GgufWriter w;
  w.set_u32("k", 0x01020304);
  w.add_tensor("t", {2, 3}, GgmlType::f32, [](std::span<std::byte> out) {
    for (int i = 0; i < 6; i++) {
      const float v = float(i);
      std::memcpy(out.data() + 4 * i, &v, 4);
    }
  });
  w.write(dir / "tiny.gguf");
  const std::string got = read_all(dir / "tiny.gguf");
  // Worked out by hand from the GGUF spec.
  const std::string header(
      "GGUF"                                // 0: magic
      "\x03\x00\x00\x00"                    // 4: version 3
      "\x01\x00\x00\x00\x00\x00\x00\x00"    // 8: one tensor
      "\x01\x00\x00\x00\x00\x00\x00\x00"    // 16: one key/value pair
      "\x01\x00\x00\x00\x00\x00\x00\x00k"   // 24: key length 1, "k"
      "\x04\x00\x00\x00"                    // 33: value type 4 (u32)
      "\x04\x03\x02\x01"                    // 37: 0x01020304
      "\x01\x00\x00\x00\x00\x00\x00\x00t"   // 41: tensor name length 1, "t"
      "\x02\x00\x00\x00"                    // 50: two dimensions
      "\x02\x00\x00\x00\x00\x00\x00\x00"    // 54: ne[0] = 2
      "\x03\x00\x00\x00\x00\x00\x00\x00"    // 62: ne[1] = 3
      "\x00\x00\x00\x00"                    // 70: ggml type 0 (f32)
      "\x00\x00\x00\x00\x00\x00\x00\x00",   // 74: data offset 0
      82);
  REQUIRE(got.size() == 128);  // 82 rounded up to 96, 24 bytes of data padded to 32
  CHECK(got.substr(0, 82) == header);
  CHECK(got.substr(82, 14) == std::string(14, '\0'));
  float floats[6];
  std::memcpy(floats, got.data() + 96, sizeof floats);
  for (int i = 0; i < 6; i++) CHECK(floats[i] == float(i));
  CHECK(got.substr(120) == std::string(8, '\0'));
}

TEST_CASE("gguf: every truncation of a valid file is an InputError", "[gguf]") {
  TempDir dir;
  write_small(dir / "small.gguf");
  const std::string whole = read_all(dir / "small.gguf");
  uint64_t needed = 0;  // the end of the last tensor's data: the padding after it is optional
  {
    const GgufFile f = GgufFile::open(dir / "small.gguf");
    for (const GgufTensorInfo& t : f.tensors()) {
      needed = std::max<uint64_t>(needed, (t.data - f.file().bytes().data()) + t.bytes);
    }
  }
  REQUIRE(needed > 300);
  REQUIRE(needed < whole.size());
  const std::string cut = dir / "cut.gguf";
  for (std::size_t n = 0; n < whole.size(); n++) {
    INFO("first " << n << " bytes");
    write_all(cut, whole.substr(0, n));
    if (n < needed) {
      CHECK_THROWS_WITH(GgufFile::open(cut), Catch::StartsWith(cut + ": "));
    } else {
      CHECK_NOTHROW(GgufFile::open(cut));
    }
  }
}

TEST_CASE("gguf: malformed headers and counts are InputErrors naming the problem", "[gguf]") {
  TempDir dir;
  const std::string path = dir / "bad.gguf";
  auto expect_error = [&](const std::string& bytes, const std::string& names) {
    write_all(path, bytes);
    CHECK_THROWS_WITH(GgufFile::open(path), Catch::StartsWith(path + ": ") && Catch::Contains(names));
  };
  const uint64_t huge = uint64_t(1) << 63;

  expect_error("", "not a GGUF file");
  expect_error("GGUX" + Bytes().u32(3).u64(0).u64(0).s, "not a GGUF file");
  expect_error(Bytes().header(0, 0, 1).s, "version 1");
  expect_error(Bytes().header(0, 0, 4).s, "version 4");
  expect_error(Bytes().header(0, 0, 0x03000000).s, "big-endian");
  // Version 2 has the same layout and is read.
  write_all(path, Bytes().header(0, 1, 2).kv_u32("x", 1).s);
  CHECK(GgufFile::open(path).version() == 2);

  // Counts far beyond what the file could hold.
  expect_error(Bytes().header(uint64_t(1) << 40, 0).s, "claims a count of 1099511627776");
  expect_error(Bytes().header(0, uint64_t(1) << 40).s, "claims");
  expect_error(Bytes().header(0, ~uint64_t(0)).s, "claims");
  expect_error(Bytes().header(0, 1).u64(huge).s + std::string(16, 'x'), "the key needs");
  expect_error(Bytes().header(0, 1).u64(~uint64_t(0)).s + std::string(16, 'x'), "the key needs");
  expect_error(Bytes().header(0, 1).str("s").u32(8).u64(huge).s, "metadata key 's'");
  expect_error(Bytes().header(0, 1).str("a").u32(9).u32(4).u64(uint64_t(1) << 62).s,
               "metadata key 'a': array claims");
  expect_error(Bytes().header(0, 1).str("a").u32(9).u32(8).u64(huge).s, "array claims");
  expect_error(Bytes().header(0, 1).str("a").u32(9).u32(9).u64(huge).s, "array claims");
  expect_error(Bytes().header(0, 1).str("a").u32(9).u32(8).u64(1).u64(huge).s, "truncated");
}

TEST_CASE("gguf: malformed metadata is an InputError naming the problem", "[gguf]") {
  TempDir dir;
  const std::string path = dir / "bad.gguf";
  auto expect_error = [&](const std::string& bytes, const std::string& names) {
    write_all(path, bytes);
    CHECK_THROWS_WITH(GgufFile::open(path), Catch::StartsWith(path + ": ") && Catch::Contains(names));
  };

  // Metadata contents.
  expect_error(Bytes().header(0, 1).str("u").u32(13).u32(0).s, "metadata key 'u': unknown value type 13");
  expect_error(Bytes().header(0, 1).str("u").u32(9).u32(99).u64(0).s, "unknown array element type 99");
  expect_error(Bytes().header(0, 2).kv_u32("d", 1).kv_u32("d", 2).s, "duplicate metadata key 'd'");
  expect_error(Bytes().header(0, 1).kv_u32("", 1).s, "empty key");
  expect_error(Bytes().header(0, 1).str("n").u32(9).u32(9).u64(1).u32(9).u64(0).s, "nested");
  expect_error(Bytes().header(0, 1).kv_u32("general.alignment", 48).s, "not a power of two");
  expect_error(Bytes().header(0, 1).kv_u32("general.alignment", 0).s, "not a power of two");
  expect_error(Bytes().header(0, 1).str("general.alignment").u32(10).u64(32).s, "must be a u32");
  // Two levels of arrays are fine.
  write_all(path, Bytes().header(0, 1).str("n").u32(9).u32(9).u64(1).u32(4).u64(1).u32(5).s);
  CHECK(GgufFile::open(path).get_array("n")->items.size() == 1);
}

TEST_CASE("gguf: malformed tensor infos are InputErrors naming the problem", "[gguf]") {
  TempDir dir;
  const std::string path = dir / "bad.gguf";
  auto expect_error = [&](const std::string& bytes, const std::string& names) {
    write_all(path, bytes);
    CHECK_THROWS_WITH(GgufFile::open(path), Catch::StartsWith(path + ": ") && Catch::Contains(names));
  };
  const uint64_t huge = uint64_t(1) << 63;

  // Tensor infos. `data` is 64 bytes of tensor data after the aligned table.
  auto with_tensor = [](std::vector<uint64_t> dims, uint32_t type, uint64_t offset, std::size_t data = 64) {
    Bytes b;
    b.header(1, 0).tensor("w", std::move(dims), type, offset).pad_to(32);
    b.s.append(data, '\0');
    return b.s;
  };
  write_all(path, with_tensor({16}, 0, 0));
  CHECK(GgufFile::open(path).find_tensor("w")->bytes == 64);
  expect_error(with_tensor({}, 0, 0), "tensor 'w' has 0 dimensions");
  expect_error(with_tensor({1, 1, 1, 1, 1}, 0, 0), "tensor 'w' has 5 dimensions");
  expect_error(with_tensor({17}, 0, 0), "tensor 'w' (68 bytes at data offset 0) extends past the end");
  expect_error(with_tensor({16}, 0, 32), "extends past the end");
  expect_error(with_tensor({1}, 0, huge), "extends past the end");
  expect_error(with_tensor({1}, 0, 16), "tensor 'w' data offset 16 is not a multiple of the alignment 32");
  expect_error(with_tensor({48}, 8, 0), "tensor 'w' of type q8_0 has rows of 48 values");
  expect_error(with_tensor({16}, 2, 0), "tensor 'w' of type q4_0");
  expect_error(with_tensor({0}, 0, 0), "zero dimension");
  expect_error(with_tensor({uint64_t(1) << 32, uint64_t(1) << 32}, 0, 0), "more elements");
  expect_error(with_tensor({uint64_t(1) << 62}, 0, 0), "more bytes");
  expect_error(with_tensor({256}, 12, 0, 100), "extends past the end");  // q4_K: 144 bytes
  {
    Bytes b;
    b.header(2, 0).tensor("w", {1}, 0, 0).tensor("w", {1}, 0, 32).pad_to(32);
    b.s.append(64, '\0');
    expect_error(b.s, "duplicate tensor name 'w'");
  }
  {
    // A custom alignment moves the data section and governs the offsets.
    Bytes b;
    b.header(1, 1).kv_u32("general.alignment", 64).tensor("w", {1}, 0, 32);
    expect_error(b.pad_to(64).s + std::string(128, '\0'), "not a multiple of the alignment 64");
  }

  // Unsupported and unknown types are listed without data; their layout is still checked.
  write_all(path, with_tensor({256}, 12, 0, 144));
  const GgufFile k_quant = GgufFile::open(path);
  CHECK(k_quant.tensors()[0].data == nullptr);
  CHECK(k_quant.tensors()[0].bytes == 144);
  write_all(path, with_tensor({3}, 77, 0));
  const GgufFile unknown = GgufFile::open(path);
  CHECK(unknown.tensors()[0].data == nullptr);
  CHECK(ggml_type_name(unknown.tensors()[0].type) == "unknown type 77");
}
