#include "troupe/net/join_token.hpp"

#include <sodium.h>

#include <cstring>

#include "troupe/discovery/membership.hpp"
#include "troupe/model/error.hpp"

namespace troupe::net {

namespace {

constexpr std::string_view kPrefix = "troupe";
constexpr char kVersion = '1';
constexpr std::string_view kCheckDomain = "troupe-join-token-1";
constexpr std::size_t kCheckBytes = 4;
constexpr const char* kAlphabet = "abcdefghijklmnopqrstuvwxyz234567";

std::array<uint8_t, kCheckBytes> check_of(const std::vector<uint8_t>& payload) {
  if (sodium_init() < 0) throw RuntimeFailure("libsodium cannot initialise");
  crypto_generichash_state state;
  crypto_generichash_init(&state, nullptr, 0, crypto_generichash_BYTES_MIN);
  crypto_generichash_update(&state, reinterpret_cast<const uint8_t*>(kCheckDomain.data()), kCheckDomain.size());
  crypto_generichash_update(&state, payload.data(), payload.size());
  uint8_t hash[crypto_generichash_BYTES_MIN];
  crypto_generichash_final(&state, hash, sizeof hash);
  std::array<uint8_t, kCheckBytes> check{};
  std::memcpy(check.data(), hash, kCheckBytes);
  return check;
}

bool valid_address(const std::string& a) {
  return !a.empty() && a.size() <= kMaxTokenAddressBytes && discovery::plausible_address(a);
}

}  // namespace

std::string base32_encode(const std::vector<uint8_t>& bytes) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (uint8_t b : bytes) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += kAlphabet[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += kAlphabet[(buffer << (5 - bits)) & 31];
  return out;
}

bool base32_decode(std::string_view text, std::vector<uint8_t>& bytes) {
  // Lengths of 1, 3 and 6 characters (mod 8) are never produced: a character was lost or added.
  const std::size_t rest = text.size() % 8;
  if (rest == 1 || rest == 3 || rest == 6) return false;
  bytes.clear();
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    int v = -1;
    if (c >= 'a' && c <= 'z') v = c - 'a';
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    if (c >= '2' && c <= '7') v = c - '2' + 26;
    if (v < 0) return false;
    buffer = (buffer << 5) | uint32_t(v);
    bits += 5;
    if (bits >= 8) {
      bytes.push_back(static_cast<uint8_t>(buffer >> (bits - 8)));
      bits -= 8;
    }
  }
  return (buffer & ((1u << bits) - 1)) == 0;  // the unused low bits of the last character are 0
}

std::string encode_token(const JoinToken& token) {
  if (token.addresses.size() > kMaxTokenAddresses) {
    throw InputError("a join token holds at most " + std::to_string(kMaxTokenAddresses) + " addresses");
  }
  std::vector<uint8_t> payload(token.secret.begin(), token.secret.end());
  payload.push_back(static_cast<uint8_t>(token.addresses.size()));
  for (const auto& a : token.addresses) {
    if (!valid_address(a)) throw InputError("join token: '" + a + "' is not a HOST:PORT address");
    payload.push_back(static_cast<uint8_t>(a.size()));
    payload.insert(payload.end(), a.begin(), a.end());
  }
  const auto check = check_of(payload);
  payload.insert(payload.end(), check.begin(), check.end());
  return std::string(kPrefix) + kVersion + "_" + base32_encode(payload);
}

bool looks_like_token(std::string_view text) {
  return text.substr(0, kPrefix.size()) == kPrefix && text.find(':') == std::string_view::npos;
}

JoinToken decode_token(std::string_view text, const std::string& flag) {
  const std::string what = flag + " <token>: ";
  const std::string remake = " (make a new one with troupe invite)";
  if (!looks_like_token(text) || text.size() < kPrefix.size() + 2) {
    throw InputError(what + "not a join token: expected one that starts with troupe1_" + remake);
  }
  if (text[kPrefix.size()] != kVersion || text[kPrefix.size() + 1] != '_') {
    throw InputError(what + "a join token of another format version: this troupe reads troupe1_ tokens" + remake);
  }
  std::vector<uint8_t> p;
  const bool decoded = base32_decode(text.substr(kPrefix.size() + 2), p);
  const std::string malformed = what + "malformed join token (mistyped or cut short)" + remake;
  if (!decoded || p.size() < kMeshSecretBytes + 1 + kCheckBytes) throw InputError(malformed);
  const std::vector<uint8_t> payload(p.begin(), p.end() - kCheckBytes);
  const auto check = check_of(payload);
  if (sodium_memcmp(check.data(), p.data() + payload.size(), kCheckBytes) != 0) throw InputError(malformed);

  JoinToken token;
  std::memcpy(token.secret.data(), payload.data(), kMeshSecretBytes);
  std::size_t at = kMeshSecretBytes;
  const std::size_t count = payload[at++];
  for (std::size_t i = 0; i < count; i++) {
    if (at >= payload.size() || at + 1 + payload[at] > payload.size()) throw InputError(malformed);
    const std::size_t n = payload[at++];
    token.addresses.emplace_back(reinterpret_cast<const char*>(payload.data() + at), n);
    at += n;
    if (!valid_address(token.addresses.back())) throw InputError(malformed);
  }
  if (at != payload.size() || count > kMaxTokenAddresses) throw InputError(malformed);
  return token;
}

}  // namespace troupe::net
