// Join tokens: one printable word that carries a mesh's secret and the addresses of some of its
// members, for `troupe node --join TOKEN` and `--peer TOKEN` (made by `troupe invite`).
//
//   troupe1_<base32>   "troupe", the format's version (1), '_', then lower-case RFC 4648 base32
//                      without padding (letters and 2-7: one word to a shell and to a
//                      double-click, and case does not matter) of
//   secret (32 bytes) | address count (1 byte, <= kMaxTokenAddresses) |
//   per address: length (1 byte, <= kMaxTokenAddressBytes), HOST:PORT | check (4 bytes)
//
// The check is the first 4 bytes of BLAKE2b over "troupe-join-token-1" and everything before
// it: a mistyped or truncated token is reported as malformed instead of being read as another
// secret. A token is as secret as the mesh key itself.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "troupe/net/mesh_key.hpp"

namespace troupe::net {

inline constexpr std::size_t kMaxTokenAddresses = 8;
inline constexpr std::size_t kMaxTokenAddressBytes = 100;

struct JoinToken {
  MeshSecret secret{};
  std::vector<std::string> addresses;  // HOST:PORT each, in the order to try them
};

// InputError when an address is not HOST:PORT or there are too many or too long.
std::string encode_token(const JoinToken& token);
// True for what is meant as a token (it starts with "troupe" and holds no ':'), whether or not
// it is a valid one: a HOST:PORT is never taken for a token.
bool looks_like_token(std::string_view text);
// InputError saying what is wrong (naming `flag`, never repeating the token: it holds a secret).
JoinToken decode_token(std::string_view text, const std::string& flag);

// RFC 4648 base32, lower case, no padding (exposed for the tests).
std::string base32_encode(const std::vector<uint8_t>& bytes);
// Case-insensitive; false on a character outside the alphabet or a length no encoding has.
bool base32_decode(std::string_view text, std::vector<uint8_t>& bytes);

}  // namespace troupe::net
