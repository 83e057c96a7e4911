// troupe_wire_doc: prints docs/protocol.md's message tables, rendered from the wire codec's field
// lists; with --write FILE, replaces the generated region of FILE with them.
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "troupe/model/error.hpp"
#include "troupe/protocol/wire_doc.hpp"

int main(int argc, char** argv) {
  using namespace troupe;
  const std::string tables = wire::describe_messages();
  if (argc == 1) {
    std::cout << tables;
    return 0;
  }
  if (argc != 3 || std::strcmp(argv[1], "--write") != 0) {
    std::cerr << "usage: troupe_wire_doc [--write docs/protocol.md]\n";
    return 2;
  }
  std::ifstream in(argv[2], std::ios::binary);
  std::stringstream doc;
  doc << in.rdbuf();
  if (!in) {
    std::cerr << "troupe_wire_doc: cannot read " << argv[2] << "\n";
    return 2;
  }
  std::string text = doc.str();
  try {
    const wire::Region region = wire::generated_region(text);
    text.replace(region.begin, region.size, tables);
  } catch (const InputError& e) {
    std::cerr << "troupe_wire_doc: " << argv[2] << ": " << e.what() << "\n";
    return 2;
  }
  std::ofstream out(argv[2], std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) {
    std::cerr << "troupe_wire_doc: cannot write " << argv[2] << "\n";
    return 1;
  }
  return 0;
}
