// The mesh as one node sees it, as JSON: what `troupe status --json` prints and `GET /mesh`
// answers (members, coordinator, term, plan).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <vector>
#include <nlohmann/json.hpp>
#include <string>

#include "troupe/net/client.hpp"
#include "troupe/protocol/wire.hpp"

namespace troupe::cli {

// Asks the node behind `client` (at `peer`) for its status; RuntimeFailure when it does not give one.
wire::Status query_status(net::MeshClient& client, const std::string& peer,
                          std::chrono::milliseconds timeout = std::chrono::seconds(10));

// `insecure`: whether the connection the status came over (and so the mesh) runs --insecure.
nlohmann::json status_json(const wire::Status& s, bool insecure);

// The live members holding layers, in layer order: the stages a completion crosses.
std::vector<const wire::Member*> pipeline_stages(const wire::Status& s);

// Those stages as the pipeline view shows them: each one's node and layers, and what its own
// status says of its work (milliseconds a
// position, positions, bytes sent and received, resident memory now and at peak), asked with
// `ask` (nullopt: it did not answer); and the network's share of a token at the entry that
// answered `entry` (its measured round trips less the stages' compute, milliseconds a hop).
nlohmann::json pipeline_json(const wire::Status& entry,
                             const std::function<std::optional<wire::Status>(const std::string& address)>& ask);

}  // namespace troupe::cli
