// The mesh secret: key derivation, key files and join tokens.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <future>
#include <zmq.h>

#include "support/process.hpp"
#include "troupe/model/error.hpp"
#include "troupe/net/join_token.hpp"
#include "troupe/net/mesh_key.hpp"

using namespace troupe;
using namespace troupe::net;

namespace {

MeshSecret secret_of(uint8_t fill) {
  MeshSecret s;
  for (std::size_t i = 0; i < s.size(); i++) s[i] = static_cast<uint8_t>(fill + i * 7);
  return s;
}

// A CURVE key pair is one when the public key is the one ZeroMQ computes from the secret key.
bool is_pair(const CurveKeyPair& p) {
  char public_z85[41], secret_z85[41], expected[41];
  zmq_z85_encode(public_z85, p.public_key.data(), 32);
  zmq_z85_encode(secret_z85, p.secret_key.data(), 32);
  return zmq_curve_public(expected, secret_z85) == 0 && std::string(expected) == public_z85;
}

}  // namespace

TEST_CASE("every holder of a secret derives the same keys, and another secret other ones", "[net][keys]") {
  const MeshSecurity a = MeshSecurity::from_secret(secret_of(1));
  const MeshSecurity again = MeshSecurity::from_secret(secret_of(1));
  const MeshSecurity b = MeshSecurity::from_secret(secret_of(2));
  CHECK(a.server().public_key == again.server().public_key);
  CHECK(a.server().secret_key == again.server().secret_key);
  CHECK(a.client().secret_key == again.client().secret_key);
  CHECK(a.beacon_key() == again.beacon_key());
  CHECK(a.mesh_id() == again.mesh_id());
  CHECK(a.server().public_key != b.server().public_key);
  CHECK(a.client().public_key != b.client().public_key);
  CHECK(a.beacon_key() != b.beacon_key());
  CHECK(a.mesh_id() != b.mesh_id());
  // Server, client and beacon keys are distinct; the pairs are real CURVE pairs.
  CHECK(a.server().public_key != a.client().public_key);
  CHECK(a.beacon_key() != a.server().secret_key);
  CHECK(is_pair(a.server()));
  CHECK(is_pair(a.client()));
  CHECK(a.mesh_id().size() == 8);
  CHECK_FALSE(a.is_insecure());
  CHECK(MeshSecurity::insecure().is_insecure());
  CHECK(generate_secret() != generate_secret());
}

TEST_CASE("key files round-trip, and a malformed one is an input error naming the file", "[net][keys]") {
  const test::TempDir dir;
  const MeshSecret s = secret_of(9);
  CHECK(parse_key_file(format_key_file(s), "k") == s);
  CHECK(format_key_file(s).rfind("troupe-mesh-key-1 ", 0) == 0);
  CHECK(parse_key_file(format_key_file(s) + "\r\n", "k") == s);  // edited on another system

  write_key_file(dir / "mesh.key", s, false);
  struct stat st {};
  REQUIRE(stat((dir / "mesh.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  const KeyFile read = read_key_file(dir / "mesh.key");
  CHECK(read.secret == s);
  CHECK_FALSE(read.readable_by_others);
  // Never replaced unless asked.
  CHECK_THROWS_AS(write_key_file(dir / "mesh.key", secret_of(3), false), InputError);
  CHECK(read_key_file(dir / "mesh.key").secret == s);
  write_key_file(dir / "mesh.key", secret_of(3), true);
  CHECK(read_key_file(dir / "mesh.key").secret == secret_of(3));

  const std::string good = format_key_file(s);
  for (const std::string& bad : {std::string(""), std::string("hello\n"), good.substr(0, good.size() - 3),
                                 good.substr(0, 20) + "x" + good.substr(21), "troupe-mesh-key-2" + good.substr(17),
                                 good + "extra"}) {
    INFO(bad);
    test::write_all(dir / "bad.key", bad);
    try {
      read_key_file(dir / "bad.key");
      FAIL("accepted a malformed key file");
    } catch (const InputError& e) {
      CHECK(std::string(e.what()).find(dir / "bad.key") != std::string::npos);
    }
  }
  CHECK_THROWS_AS(read_key_file(dir / "missing.key"), InputError);
  CHECK_THROWS_AS(read_key_file(dir.path), InputError);  // a folder
  chmod((dir / "mesh.key").c_str(), 0644);
  CHECK(read_key_file(dir / "mesh.key").readable_by_others);
}

TEST_CASE("the default key file is created once, 0600, even by processes starting together", "[net][keys]") {
  const test::TempDir dir;
  const std::string path = dir / "config/troupe/mesh.key";
  CHECK_THROWS_AS(load_key(path, false), InputError);  // not created unless asked
  std::vector<std::future<KeyFile>> racers;
  for (int i = 0; i < 8; i++) racers.push_back(std::async(std::launch::async, [&] { return load_key(path, true); }));
  std::vector<KeyFile> keys;
  for (auto& r : racers) keys.push_back(r.get());
  int created = 0;
  for (const auto& k : keys) {
    CHECK(k.secret == keys.front().secret);
    created += k.created;
  }
  CHECK(created == 1);
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(stat((dir / "config/troupe").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  CHECK_FALSE(load_key(path, true).created);
}

TEST_CASE("base32 follows RFC 4648 and refuses what no encoding gives", "[net][tokens]") {
  const std::vector<std::pair<std::string, std::string>> vectors = {
      {"", ""}, {"f", "my"}, {"fo", "mzxq"}, {"foo", "mzxw6"}, {"foob", "mzxw6yq"},
      {"fooba", "mzxw6ytb"}, {"foobar", "mzxw6ytboi"}};
  for (const auto& [plain, encoded] : vectors) {
    CHECK(base32_encode(std::vector<uint8_t>(plain.begin(), plain.end())) == encoded);
    std::vector<uint8_t> back;
    REQUIRE(base32_decode(encoded, back));
    CHECK(std::string(back.begin(), back.end()) == plain);
  }
  std::vector<uint8_t> out;
  CHECK(base32_decode("MZXW6YTBOI", out));  // case does not matter
  CHECK_FALSE(base32_decode("mzxw6ytbo1", out));  // '1' is not in the alphabet
  CHECK_FALSE(base32_decode("m", out));          // no encoding is one character long
  CHECK_FALSE(base32_decode("mz", out));         // "my" is 'f'; "mz" has a stray bit set
}

TEST_CASE("join tokens round-trip, and a mistyped or cut one is malformed", "[net][tokens]") {
  for (const std::vector<std::string>& addresses :
       {std::vector<std::string>{}, {"127.0.0.1:7000"}, {"node-a.lan:7000", "[fd00::2]:7001", "10.0.0.3:65535"},
        std::vector<std::string>(kMaxTokenAddresses, "192.168.100.200:7000")}) {
    const JoinToken token{secret_of(5), addresses};
    const std::string word = encode_token(token);
    INFO(word);
    CHECK(word.rfind("troupe1_", 0) == 0);
    CHECK(word.find_first_not_of("abcdefghijklmnopqrstuvwxyz234567_troupe1") == std::string::npos);
    CHECK(looks_like_token(word));
    const JoinToken back = decode_token(word, "--join");
    CHECK(back.secret == token.secret);
    CHECK(back.addresses == token.addresses);
  }
  CHECK_FALSE(looks_like_token("127.0.0.1:7000"));
  CHECK_FALSE(looks_like_token("troupe-host:7000"));  // a host name, with a port

  const std::string word = encode_token({secret_of(5), {"127.0.0.1:7000", "10.1.2.3:7001"}});
  // Every single-character substitution and every truncation is caught by the check.
  for (std::size_t i = std::string("troupe1_").size(); i < word.size(); i++) {
    std::string typo = word;
    typo[i] = typo[i] == 'a' ? 'b' : 'a';
    CHECK_THROWS_AS(decode_token(typo, "--join"), InputError);
    CHECK_THROWS_AS(decode_token(word.substr(0, i), "--join"), InputError);
  }
  try {
    decode_token(word.substr(0, word.size() - 2) + "aa", "--peer");
    FAIL("accepted a mistyped token");
  } catch (const InputError& e) {
    const std::string message = e.what();
    CHECK(message.find("--peer") != std::string::npos);
    CHECK(message.find("malformed") != std::string::npos);
    CHECK(message.find(word.substr(8, 12)) == std::string::npos);  // the secret is never echoed
  }
  CHECK_THROWS_AS(decode_token("troupe2_" + word.substr(8), "--join"), InputError);
  CHECK_THROWS_AS(decode_token("troupe", "--join"), InputError);
  CHECK_THROWS_AS(encode_token({secret_of(1), std::vector<std::string>(kMaxTokenAddresses + 1, "a:1")}), InputError);
  CHECK_THROWS_AS(encode_token({secret_of(1), {"not an address"}}), InputError);
}
