// The member updates a node still spreads by piggybacking them on its gossip (SWIM's
// infection-style dissemination), least-sent first.
//
// The queue hands them out in exactly the order of a list stable-sorted by transmission count
// before every send, but without sorting: it keeps one list per count. After a send, the updates
// taken from count t move to the front of count t + 1, ahead of those already there — where a
// stable sort would put them, since they came first. Over a thousand members, a node joining a
// mesh queues a thousand updates, and re-sorting them for every probe was a large part of the
// simulator's run.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "troupe/protocol/wire.hpp"

namespace troupe::discovery {

class BroadcastQueue {
 public:
  // Queues `update`; an update about the same member still queued is replaced (dropped).
  void push(const wire::MemberUpdate& update);
  // Takes up to `max` updates, least-sent first (ties: in queue order), appending them to `out`
  // when it is given. Each taken counts one more transmission; every update sent `limit` times
  // or more (the limit falls as well as rises with the member count) is then dropped.
  void take(std::size_t max, int limit, std::vector<wire::MemberUpdate>* out);
  std::size_t size() const { return by_address_.size(); }

 private:
  struct Entry {
    bool superseded = false;  // a newer update about its member was pushed: skipped, then freed
    wire::MemberUpdate update;
  };
  // Pointers rather than a linked list, so that walking a count does not wait for each entry
  // before it can fetch the next.
  using Entries = std::deque<std::unique_ptr<Entry>>;
  std::vector<Entries> by_transmits_;  // [t]: the updates sent t times, in queue order
  std::unordered_map<std::string, Entry*> by_address_;  // the queued update per member
};

}  // namespace troupe::discovery
