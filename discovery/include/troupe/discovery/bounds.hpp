// Bounds on the counters peers send: terms, plan versions, incarnations and instances.
//
// Every such value arrives in a frame that any member holding the mesh secret may write — a
// buggy, compromised or simply old one — and each is compared with what this node holds, and
// raised by one. Unbounded, one frame at 2^64 - 1 wins everywhere and its successor wraps to 0,
// so that nothing can ever overrule it. So every value at or above kCounterCap is refused on
// receipt (and a value below it plus one cannot wrap), and a value far past what this node has
// seen is refused too: a forger then needs 2^42 frames, one after another, to climb to the cap.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace troupe::discovery {

// Values at or above this are refused wherever they come from.
inline constexpr uint64_t kCounterCap = uint64_t(1) << 62;
// How far a term, a plan version, or a known member's incarnation as others report it, may rise
// in one step. Terms rise by one per election, versions by one per re-plan, incarnations by one
// per refutation or load: a million of any of them missed at once does not happen. A member's
// own word on itself may rise twice as far: its refutation of a claim kMaxJump ahead of it
// (discovery/membership.hpp) must pass where the claim did not arrive.
inline constexpr uint64_t kMaxJump = uint64_t(1) << 20;
// How far a known member's instance may rise in one step. Instances are start times in ns, so a
// restart raises it by the earlier process's uptime (plus the time it was down, which is under
// MembershipConfig::forget_dead, or the member would have been forgotten and its new instance
// taken as a new member): 2^56 ns is 2.3 years of uptime. A process that ran longer and restarts
// is taken as soon as it answers a probe of the old record (a direct answer overrides it).
inline constexpr uint64_t kMaxInstanceJump = uint64_t(1) << 56;

// Why `heard` (a `what`: "term", "plan version", ...) is refused when this node holds `seen`
// (none: it has seen none yet, and then anything under the cap is taken); empty when it is not.
// `jump`: how far above `seen` it may be.
inline std::string counter_problem(const char* what, uint64_t heard, std::optional<uint64_t> seen,
                                   uint64_t jump = kMaxJump) {
  if (heard >= kCounterCap) return std::string(what) + " " + std::to_string(heard) + " is past the cap of 2^62";
  if (seen && heard > *seen && heard - *seen > jump) {
    return std::string(what) + " " + std::to_string(heard) + " jumps too far past " + std::to_string(*seen);
  }
  return {};
}

}  // namespace troupe::discovery
