// The mesh as one node sees it, as JSON: what `troupe status --json` prints and `GET /mesh`
// answers (members, coordinator, term, plan).
#pragma once

#include <chrono>
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

}  // namespace troupe::cli
