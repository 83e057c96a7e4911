// Who may use a node's HTTP door, decided from a request's headers alone: the API key
// (`Authorization: Bearer KEY`) and the names the node answers to (Host, and Origin when a
// browser sends one). Pure functions, unit-tested; http_server.cpp applies them to every request
// before it is routed.
//
// The names: a request must name the address its client connected to, `localhost` when that
// address is a loopback one, or a name of --allowed-hosts ("*" admits any). A web page on
// another origin can then neither reach a node on localhost through a name it rebinds there
// (DNS rebinding: its requests carry its own name as Host) nor make the visitor's browser post
// to it (its requests carry its own Origin).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "openai_api.hpp"

namespace troupe::cli::http_access {

struct Policy {
  std::string api_key;                     // empty: no key asked
  std::vector<std::string> allowed_hosts;  // beyond the connection's own address; "*": any
  std::vector<std::string> cors_origins;   // --cors: pages of these origins may call the API; "*": any
};

// What of one request the rules read.
struct Request {
  std::string_view path;
  std::optional<std::string_view> host;           // the Host header
  std::optional<std::string_view> origin;         // the Origin header
  std::optional<std::string_view> authorization;  // the Authorization header
  std::string_view local_address;                 // the address the client connected to
  bool preflight = false;  // a CORS preflight (OPTIONS): browsers send it without the key
};

// Paths that need no key: the chat page (it asks for the key itself) and the health check.
bool is_open_path(std::string_view path);

// nullopt: the request may go on. Otherwise its refusal: 403 for a Host or Origin that does not
// name this node, 401 for a missing or wrong key (checked in that order).
std::optional<openai::ApiError> check(const Policy& policy, const Request& request);

// Whether `authorization` is "Bearer KEY" for this key. The time it takes does not depend on
// where a wrong key first differs.
bool key_matches(std::string_view authorization, std::string_view key);

// The host of a Host header ("name", "name:port", "[v6]:port"), lower case, without a trailing
// dot; nullopt when it is not one.
std::optional<std::string> host_name(std::string_view host_header);

// 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z), or localhost.
bool is_loopback(std::string_view host);

// --allowed-hosts: names (or addresses) separated by commas, "*" for any; nullopt when an entry
// is empty or not a host name.
std::optional<std::vector<std::string>> parse_host_list(std::string_view list);

// CORS (--cors): whether a page of `origin` ("scheme://host[:port]", as browsers send it) may call
// the API from JavaScript. Its requests still need the key; the Host check still holds.
bool cors_allowed(const Policy& policy, std::string_view origin);

// --cors: origins ("https://app.example.com", "http://localhost:5173") separated by commas, "*"
// for any; nullopt when an entry is not one.
std::optional<std::vector<std::string>> parse_origin_list(std::string_view list);

}  // namespace troupe::cli::http_access
