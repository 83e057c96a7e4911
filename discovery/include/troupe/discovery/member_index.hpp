// Members by address, as an open-addressing hash table (linear probing) of pointers into the
// table that owns them.
//
// Why not std::unordered_map: a node of a thousand-member mesh looks up every member named in
// every gossip it receives (a table sync names 256), and those tables are far out of cache in a
// simulation of a thousand nodes. A lookup here reads one slot, found from the hash alone, and
// then the member; and prefetch() lets a caller fetch the slots of a whole gossip before it reads
// any of them, instead of waiting for memory once per member.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace troupe::discovery {

// T: anything with a `const std::string& key() const` that stays where it is while indexed.
template <typename T>
class MemberIndex {
 public:
  static std::size_t hash(const std::string& key) { return std::hash<std::string>{}(key); }

  T* find(const std::string& key) const { return find(key, hash(key)); }
  T* find(const std::string& key, std::size_t h) const {
    if (slots_.empty()) return nullptr;
    for (std::size_t i = h & mask(); slots_[i].item; i = (i + 1) & mask()) {
      if (slots_[i].hash == h && slots_[i].item->key() == key) return slots_[i].item;
    }
    return nullptr;
  }
  // Starts fetching the slot `key` hashes to (h: its hash), without waiting for it.
  void prefetch_slot(std::size_t h) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[h & mask()]);
  }
  // The item in the slot `key` hashes to, if that slot is taken by it (no probing): for
  // prefetching the item itself once the slot has arrived.
  T* peek(std::size_t h) const {
    if (slots_.empty()) return nullptr;
    const Slot& s = slots_[h & mask()];
    return s.hash == h ? s.item : nullptr;
  }

  // `item` must not be indexed yet.
  void insert(T* item) {
    if (2 * (count_ + 1) > slots_.size()) grow();
    place(item, hash(item->key()));
    count_++;
  }
  void erase(const std::string& key) {
    const std::size_t h = hash(key);
    if (slots_.empty()) return;
    std::size_t i = h & mask();
    while (slots_[i].item && !(slots_[i].hash == h && slots_[i].item->key() == key)) i = (i + 1) & mask();
    if (!slots_[i].item) return;
    // Backward-shift deletion: move up each later item of the run that may live in the hole.
    for (std::size_t j = (i + 1) & mask(); slots_[j].item; j = (j + 1) & mask()) {
      const std::size_t home = slots_[j].hash & mask();
      if (((j - home) & mask()) >= ((j - i) & mask())) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = {};
    count_--;
  }
  std::size_t size() const { return count_; }

 private:
  struct Slot {
    std::size_t hash = 0;
    T* item = nullptr;
  };
  std::size_t mask() const { return slots_.size() - 1; }
  void place(T* item, std::size_t h) {
    std::size_t i = h & mask();
    while (slots_[i].item) i = (i + 1) & mask();
    slots_[i] = {h, item};
  }
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 16 : 2 * old.size(), Slot{});
    for (const Slot& s : old) {
      if (s.item) place(s.item, s.hash);
    }
  }

  std::vector<Slot> slots_;  // a power of two in size, at most half full
  std::size_t count_ = 0;
};

}  // namespace troupe::discovery
