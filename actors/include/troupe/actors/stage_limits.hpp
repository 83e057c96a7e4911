// What a stage holds for the sessions that pass through it, and for how long: the bounds that keep
// one entry (a hostile member, a buggy one, one that died) from filling a stage for good.
#pragma once

#include <cstddef>

#include "troupe/discovery/session.hpp"
#include "troupe/protocol/wire.hpp"

namespace troupe::actors {

// A stage forgets a session nothing was heard of (no frame, no prompt batch) for this long. An
// entry that still drives a session never lets it idle so long at any stage: it sends the next
// step as soon as a token comes back, and gives up on a session that brings no token for
// discovery::kSessionStallTimeout (120 s), ending it on every stage. Twice that leaves room for
// an end that was lost, frames delayed by a slow link and clocks read at different moments;
// a session idle so long was abandoned (its entry died, or it was never meant to run).
inline constexpr auto kSessionIdleTimeout = 2 * discovery::kSessionStallTimeout;
// How often a stage that holds sessions looks for idle ones: a reclaimed session has been idle
// between kSessionIdleTimeout and an eighth more.
inline constexpr auto kIdleCheck = kSessionIdleTimeout / 8;
// The sessions another node's entry may hold at a stage: all of its wire::kMaxSessions but a
// few kept for the other entries. However many sessions one entry starts (a hostile member, a
// buggy one, or 64 forged starts), other entries still find room; that entry's further
// sessions through the stage are refused as busy, naming this cap. The stage's own node, as an
// entry, is bounded by its own admission (wire::kMaxSessions) instead.
inline constexpr std::size_t kSessionsKeptForOthers = 8;
inline constexpr std::size_t kMaxSessionsPerEntry = wire::kMaxSessions - kSessionsKeptForOthers;

}  // namespace troupe::actors
