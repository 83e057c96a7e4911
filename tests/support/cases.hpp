// The reference cases of ../shared/reference (what llama2.c prints for stories260K), sent
// through a mesh, and the status of a node: shared by the pipeline and mesh tests.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/nodes.hpp"
#include "support/process.hpp"
#include "troupe/protocol/wire.hpp"

namespace troupe::test {

nlohmann::json reference_cases();
// `troupe generate` arguments for one case through `peer` (then `more`: --insecure, ...).
std::vector<std::string> generate_args(const std::string& peer, const nlohmann::json& c,
                                       const std::vector<std::string>& more = {});
// What `troupe generate` printed for case `c` entering through node `entry`, against llama2.c.
void check_result(const Mesh& mesh, std::size_t entry, const nlohmann::json& c, const ProcessResult& r);
// Runs the case through node `entry` and checks stdout byte for byte.
void check_case(const Mesh& mesh, std::size_t entry, const nlohmann::json& c);
// The status a node answers (fails the test when it does not), over a connection secured as
// `security` says (by default the test's mesh key).
wire::Status status_of(const std::string& address);
wire::Status status_of(const std::string& address, const net::MeshSecurity& security);

}  // namespace troupe::test
