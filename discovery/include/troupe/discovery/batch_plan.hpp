// Which rows a stage runs in its next pass through its layers (continuous batching).
//
// A stage reads every weight once a pass, whatever the number of rows (generation is bound by
// memory bandwidth), so it runs the rows ready from all its sessions together. The policy:
//   1. every session's next decode row first (one row each, in the order they came), so a user's
//      next token waits at most one pass for anyone else's;
//   2. then prompt or replay rows, in the order they came, up to the row budget; a prompt longer
//      than what is left is cut there and goes on in the next pass.
// A long prompt thus shares each pass with the decode rows of every other session instead of
// holding the stage for its whole length, and a new session's prompt still fills the budget
// left. A session runs at most one entry a pass (its rows are in order).
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace troupe::discovery {

// What one session has ready: `rows` rows, `decode` when they are one position's next token.
struct ReadyRows {
  int rows = 0;
  bool decode = false;
};

// One entry of a pass: `rows` of the ready entry `index` (its first ones).
struct PassTake {
  std::size_t index;
  int rows;
};

// The entries of the next pass, in the order they were taken: at most `budget` rows in all.
std::vector<PassTake> plan_pass(std::span<const ReadyRows> ready, int budget);

}  // namespace troupe::discovery
