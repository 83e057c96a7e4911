// docs/protocol.md's message tables are those the codec's field lists render.
#include <catch2/catch.hpp>
#include <sstream>

#include "support/process.hpp"
#include "troupe/model/error.hpp"
#include "troupe/protocol/wire_doc.hpp"

using namespace troupe;

namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace

TEST_CASE("docs/protocol.md's message tables are rendered from the field lists", "[wire]") {
  const std::string doc = test::read_all(TROUPE_SOURCE_DIR "/docs/protocol.md");
  const wire::Region region = wire::generated_region(doc);
  const std::vector<std::string> written = lines(doc.substr(region.begin, region.size));
  const std::vector<std::string> rendered = lines(wire::describe_messages());
  INFO("regenerate with `ninja -C build protocol-doc` (troupe_wire_doc --write docs/protocol.md)");
  for (std::size_t i = 0; i < std::min(written.size(), rendered.size()); i++) {
    INFO("line " << i + 1 << " of the generated region");
    REQUIRE(written[i] == rendered[i]);
  }
  CHECK(written.size() == rendered.size());
}

TEST_CASE("the generated region of a doc is found by its markers", "[wire]") {
  const std::string doc = "# t\n<!-- generated: messages -->\nold\n<!-- end -->\nafter\n";
  const wire::Region region = wire::generated_region(doc);
  CHECK(doc.substr(region.begin, region.size) == "old\n");
  CHECK_THROWS_AS(wire::generated_region("# t\n<!-- end -->\n"), InputError);
  CHECK_THROWS_AS(wire::generated_region("<!-- generated: messages -->\nold\n"), InputError);
}
