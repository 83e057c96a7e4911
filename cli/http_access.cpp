#include "http_access.hpp"

#include <algorithm>
#include <cctype>

namespace troupe::cli::http_access {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool all_of(std::string_view s, bool (*allowed)(char)) {
  return !s.empty() && std::all_of(s.begin(), s.end(), allowed);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}
bool is_v6_char(char c) { return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.'; }

// An address as getsockname() reports it, in the form host_name() gives: an IPv4 client of a
// dual-stack socket shows as ::ffff:a.b.c.d.
std::string plain_address(std::string_view address) {
  std::string a = lower(address);
  if (a.rfind("::ffff:", 0) == 0 && a.find('.') != std::string::npos) a = a.substr(7);
  return a;
}

bool names_node(const Policy& policy, const std::string& host, std::string_view local_address) {
  const std::string local = plain_address(local_address);
  if (host == local || (is_loopback(local) && is_loopback(host))) return true;
  return std::any_of(policy.allowed_hosts.begin(), policy.allowed_hosts.end(),
                     [&](const std::string& h) { return h == "*" || h == host; });
}

// The host of an Origin header ("scheme://host[:port]"); nullopt for "null" and anything else.
std::optional<std::string> origin_host(std::string_view origin) {
  const auto scheme_end = origin.find("://");
  if (scheme_end == std::string_view::npos) return std::nullopt;
  return host_name(origin.substr(scheme_end + 3));
}

openai::ApiError refusal(int status, std::string code, std::string message) {
  openai::ApiError e;
  e.http_status = status;
  e.code = std::move(code);
  e.message = std::move(message);
  return e;
}

std::optional<openai::ApiError> check_names(const Policy& policy, const Request& r) {
  const std::string reached = plain_address(r.local_address);
  const std::optional<std::string> host = r.host ? host_name(*r.host) : std::nullopt;
  if (!host) {
    return refusal(403, "host_not_allowed",
                   "the request has no valid Host header; this node answers to " + reached +
                       (is_loopback(reached) ? " and localhost" : "") +
                       " and the names of its --allowed-hosts");
  }
  if (!names_node(policy, *host, r.local_address)) {
    return refusal(403, "host_not_allowed",
                   "Host '" + *host + "' is not a name of this node (it was reached at " + reached +
                       "): start the node with --allowed-hosts " + *host + " to answer to it");
  }
  if (!r.origin) return std::nullopt;
  const std::optional<std::string> origin = origin_host(*r.origin);
  if (origin && names_node(policy, *origin, r.local_address)) return std::nullopt;
  if (cors_allowed(policy, *r.origin)) return std::nullopt;
  return refusal(403, "origin_not_allowed",
                 "a page from " + std::string(r.origin->substr(0, 200)) +
                     " may not use this node: its Origin is not a name of this node (see --allowed-hosts, "
                     "or --cors for pages of other origins)");
}

// The entries of a comma-separated list, without the spaces around each.
std::vector<std::string_view> list_entries(std::string_view list) {
  std::vector<std::string_view> out;
  std::size_t at = 0;
  while (at <= list.size()) {
    const auto comma = std::min(list.find(',', at), list.size());
    std::string_view entry = list.substr(at, comma - at);
    while (!entry.empty() && entry.front() == ' ') entry.remove_prefix(1);
    while (!entry.empty() && entry.back() == ' ') entry.remove_suffix(1);
    out.push_back(entry);
    at = comma + 1;
  }
  return out;
}

}  // namespace

bool is_open_path(std::string_view path) { return path == "/" || path == "/health"; }

std::optional<openai::ApiError> check(const Policy& policy, const Request& request) {
  if (auto e = check_names(policy, request)) return e;
  if (policy.api_key.empty() || is_open_path(request.path) || request.preflight) return std::nullopt;
  if (!request.authorization) {
    return refusal(401, "invalid_api_key",
                   "this node needs an API key: send the header 'Authorization: Bearer KEY' with the key "
                   "it was started with (--api-key)");
  }
  if (!key_matches(*request.authorization, policy.api_key)) {
    return refusal(401, "invalid_api_key", "the API key is not this node's (Authorization: Bearer KEY)");
  }
  return std::nullopt;
}

bool key_matches(std::string_view authorization, std::string_view key) {
  constexpr std::string_view kScheme = "bearer ";  // the scheme's name is case-insensitive (RFC 7235)
  if (key.empty() || authorization.size() < kScheme.size() ||
      lower(authorization.substr(0, kScheme.size())) != kScheme) {
    return false;
  }
  std::string_view given = authorization.substr(kScheme.size());
  while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
  while (!given.empty() && given.back() == ' ') given.remove_suffix(1);
  // Every byte of the key is compared, whatever differs first.
  std::size_t difference = given.size() ^ key.size();
  for (std::size_t i = 0; i < key.size(); i++) {
    const char g = i < given.size() ? given[i] : '\0';
    difference |= static_cast<unsigned char>(g ^ key[i]);
  }
  return difference == 0;
}

std::optional<std::string> host_name(std::string_view header) {
  std::string_view host = header, port;
  if (!header.empty() && header.front() == '[') {
    const auto close = header.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = header.substr(1, close - 1);
    const std::string_view rest = header.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !all_of(rest.substr(1), is_digit))) return std::nullopt;
    if (!all_of(host, is_v6_char)) return std::nullopt;
    return lower(host);
  }
  const auto colon = header.find(':');
  if (colon != std::string_view::npos) {
    host = header.substr(0, colon);
    port = header.substr(colon + 1);
    if (!all_of(port, is_digit)) return std::nullopt;
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (!all_of(host, is_name_char)) return std::nullopt;
  return lower(host);
}

bool is_loopback(std::string_view host) {
  const std::string h = plain_address(host);
  if (h == "localhost" || h == "::1") return true;
  // 127.0.0.0/8, written as four numbers.
  if (h.rfind("127.", 0) != 0) return false;
  int parts = 0;
  std::size_t at = 0;
  while (at <= h.size()) {
    const auto dot = std::min(h.find('.', at), h.size());
    const std::string_view part = std::string_view(h).substr(at, dot - at);
    if (!all_of(part, is_digit) || part.size() > 3 || std::stoi(std::string(part)) > 255) return false;
    parts++;
    at = dot + 1;
  }
  return parts == 4;
}

std::optional<std::vector<std::string>> parse_host_list(std::string_view list) {
  std::vector<std::string> hosts;
  for (const std::string_view entry : list_entries(list)) {
    if (entry == "*") {
      hosts.emplace_back("*");
      continue;
    }
    const std::optional<std::string> host = host_name(entry);
    // A name alone: the rules compare names, never ports.
    const bool bracketed = !entry.empty() && entry.front() == '[';
    if (!host || (bracketed ? entry.back() != ']' : entry.find(':') != std::string_view::npos)) return std::nullopt;
    hosts.push_back(*host);
  }
  return hosts;
}

bool cors_allowed(const Policy& policy, std::string_view origin) {
  const std::string o = lower(origin);
  return std::any_of(policy.cors_origins.begin(), policy.cors_origins.end(),
                     [&](const std::string& allowed) { return allowed == "*" || allowed == o; });
}

std::optional<std::vector<std::string>> parse_origin_list(std::string_view list) {
  std::vector<std::string> origins;
  for (const std::string_view entry : list_entries(list)) {
    const auto scheme_end = entry.find("://");
    const bool origin = scheme_end != std::string_view::npos && scheme_end > 0 &&
                        all_of(entry.substr(0, scheme_end), is_name_char) && host_name(entry.substr(scheme_end + 3));
    if (entry != "*" && !origin) return std::nullopt;
    origins.push_back(lower(entry));
  }
  return origins;
}

}  // namespace troupe::cli::http_access
