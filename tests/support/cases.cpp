#include "support/cases.hpp"

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "support/process.hpp"
#include "troupe/net/client.hpp"

namespace troupe::test {

using nlohmann::json;

json reference_cases() {
  std::ifstream f(shared_dir() + "/reference/stories260K-cases.json");
  REQUIRE(f.good());
  return json::parse(f);
}

namespace {
std::string fmt(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}
}  // namespace

std::vector<std::string> generate_args(const std::string& peer, const json& c, const std::vector<std::string>& more) {
  std::vector<std::string> args = {"generate", "--peer", peer, "-t", fmt(c["temperature"]), "-p", fmt(c["topp"]), "-s",
                                   std::to_string(c["seed"].get<long>()), "-n", std::to_string(c["steps"].get<int>()),
                                   "-i", c["prompt"].get<std::string>()};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

void check_case(const Mesh& mesh, std::size_t entry, const json& c) {
  check_result(mesh, entry, c, run_troupe(generate_args(mesh.address(entry), c, mesh.client_args())));
}

void check_result(const Mesh& mesh, std::size_t entry, const json& c, const ProcessResult& r) {
  INFO("entry " << entry << ", prompt '" << c["prompt"].get<std::string>() << "', t "
                << c["temperature"] << ", seed " << c["seed"] << "\nstderr: " << r.err
                << "\nlogs:\n" << mesh.logs());
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == c["expected_stdout"].get<std::string>());
}

wire::Status status_of(const std::string& address) { return status_of(address, mesh_security()); }

wire::Status status_of(const std::string& address, const net::MeshSecurity& security) {
  net::MeshClient client(address, security, std::chrono::seconds(2));
  client.send(wire::Message{0, 1, wire::StatusRequest{}});
  const auto m = client.receive(std::chrono::seconds(2));
  REQUIRE(std::holds_alternative<wire::Status>(m.body));
  return std::get<wire::Status>(m.body);
}

}  // namespace troupe::test
