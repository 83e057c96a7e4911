// docs/protocol.md's message tables, rendered from the codec's field lists, and the region of the
// doc that holds them (between kGeneratedBegin and kGeneratedEnd). `troupe_wire_doc --write
// docs/protocol.md` rewrites the region; tests/protocol/test_wire_doc.cpp fails when it differs.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace troupe::wire {

inline constexpr std::string_view kGeneratedBegin = "<!-- generated: messages -->\n";
inline constexpr std::string_view kGeneratedEnd = "<!-- end -->\n";

// Markdown: a table of the message types, then each message's and each nested record's fields
// (index, name, msgpack type, checks, meaning), the appended fields' defaults and the rules.
std::string describe_messages();

struct Region {
  std::size_t begin = 0;  // the first byte after kGeneratedBegin
  std::size_t size = 0;   // up to kGeneratedEnd
};
// Where the generated region of `doc` lies; InputError when its markers are missing.
Region generated_region(std::string_view doc);

}  // namespace troupe::wire
