#include "troupe/discovery/sim_hook.hpp"

namespace troupe::discovery {

SimHook& SimHook::none() {
  static SimHook hook;  // stateless: shared by every node of the process
  return hook;
}

}  // namespace troupe::discovery
