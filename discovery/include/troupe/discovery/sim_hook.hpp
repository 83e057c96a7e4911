// The one place where the simulator (docs/sim.md) reaches into a node's code. The node's actors
// and the protocol's state machines call it at the few points a simulation must look in or bend
// them; in production it does nothing. The code the simulator runs is thus the code a device
// runs, parameterised by its environment (as TigerBeetle's replica is), with deliberately broken
// variants behind one switch (as FoundationDB's BUGGIFY).
#pragma once

#include <chrono>

namespace troupe::discovery {

class Mesh;

// Deliberately broken variants of the protocol, each caught by the simulator's invariant checks
// (its tests turn them on; no flag or file reaches them).
enum class BrokenVariant {
  // A member follows any other term it hears of, earlier ones included (Election::observe).
  accept_any_term,
};

class SimHook {
 public:
  virtual ~SimHook() = default;

  // How long the node's device stays busy with the work its stage has been given so far: what
  // the stage sends now leaves that much later. A real device's stage thread is blocked in the
  // work itself, so there it is zero; the simulator's work takes no time but charges a device.
  virtual std::chrono::nanoseconds device_busy() const { return std::chrono::nanoseconds(0); }
  // The node actor's mesh, after every event the node actor handles (the simulator checks its
  // invariants there).
  virtual void observe(const Mesh& mesh) { (void)mesh; }
  // Whether the broken `variant` is on.
  virtual bool broken(BrokenVariant variant) const {
    (void)variant;
    return false;
  }

  // The production hook: no busy time, nobody observing, nothing broken.
  static SimHook& none();
};

}  // namespace troupe::discovery
