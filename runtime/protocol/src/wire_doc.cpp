// docs/protocol.md's message tables, rendered from the field lists of wire_schema.hpp.
#include "troupe/protocol/wire_doc.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <vector>

#include "troupe/model/error.hpp"
#include "wire_schema.hpp"

namespace troupe::wire {

namespace schema {

std::string number(int64_t n) {
  for (int k = 16; k < 63; k++) {
    if (n == int64_t(1) << k) return "2^" + std::to_string(k);
    if (n == (int64_t(1) << k) - 1) return "2^" + std::to_string(k) + "−1";
  }
  return std::to_string(n);
}

std::string number(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", x);
  return text;
}

std::string bytes(std::size_t n) {
  if (n >= (1 << 20) && n % (1 << 20) == 0) return std::to_string(n >> 20) + " MiB";
  if (n >= 1024 && n % 1024 == 0) return std::to_string(n >> 10) + " KiB";
  return std::to_string(n) + " bytes";
}

// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
std::string anchor(const char* heading) {
  std::string out;
  for (const char* c = heading; *c; c++) {
    if (*c == ' ') {
      out += '-';
    } else if (std::isalnum(static_cast<unsigned char>(*c)) || *c == '_' || *c == '-') {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(*c)));
    }
  }
  return out;
}

}  // namespace schema

namespace {

using namespace schema;

// The records that fields nest, each rendered once, in the order they are first met.
struct Pending {
  using Render = std::string (*)(Pending&);
  std::vector<std::pair<std::string, Render>> records;
  void add(const char* name, Render render) {
    for (const auto& r : records) {
      if (r.first == name) return;
    }
    records.push_back({name, render});
  }
};

template <class T>
std::string section(Pending& pending);

// One record's table, and what follows it: the appended fields' defaults and the rules.
template <class T>
class Table {
 public:
  explicit Table(Pending& pending) : pending_(pending) {}

  std::string render() {
    walk(T{}, spec_of<T>.items);
    if (count_ == 0) return "No fields: the payload is `[]`.\n";
    std::string out = "| # | field | msgpack | checked | meaning |\n|---|---|---|---|---|\n" + rows_;
    if (first_appended_ >= 0) out += "\n" + appended_note();
    for (const char* rule : rules_) out += "\nDecoding refuses it unless " + std::string(rule) + ".\n";
    return out;
  }

 private:
  template <class V, class Items>
  void walk(const V& defaults, const Items& items) {
    std::apply([&](const auto&... item) { (add(defaults, item), ...); }, items);
  }
  template <class V, class O, class F, class K>
  void add(const V& defaults, const Field<O, F, K>& f) {
    rows_ += "| " + std::to_string(count_) + " | `" + f.name + "` | " + f.kind.type() + " | " +
             f.kind.checks() + " | " + f.meaning + " |\n";
    if (first_appended_ >= 0) {
      defaults_ += (defaults_.empty() ? "`" : ", `") + f.kind.show(defaults.*f.member) + "`";
    }
    note(f.kind);
    count_++;
  }
  template <class V>
  void add(const V&, const Appended&) {
    if (first_appended_ < 0) first_appended_ = count_;  // appended at different times: one note
  }
  template <class V, class O, class Inner>
  void add(const V& defaults, const Flattened<O, Inner>& f) {
    walk(defaults.*f.member, spec_of<Inner>.items);
  }
  template <class V, class R, class P>
  void add(const V&, const Rule<R, P>& r) {
    rules_.push_back(r.text);
  }

  template <class K>
  void note(const K&) {}
  template <class R>
  void note(const Record<R>&) {
    pending_.add(spec_of<R>.name, &section<R>);
  }
  template <class K>
  void note(const Maybe<K>& m) {
    note(m.kind);
  }
  template <class K>
  void note(const ArrayOf<K>& a) {
    note(a.item);
  }

  std::string appended_note() const {
    const int last = count_ - 1;
    const bool one = first_appended_ == last;
    const std::string first = std::to_string(first_appended_);
    const std::string fields = one ? "Field " + first + " was"
                                   : "Fields " + first + "–" + std::to_string(last) + " were";
    return fields + " appended: a frame from an older node ends after field " +
           std::to_string(first_appended_ - 1) + ", and decoding reads " + (one ? "it as " : "them as ") +
           defaults_ + ".\n";
  }

  Pending& pending_;
  std::string rows_, defaults_;
  std::vector<const char*> rules_;
  int count_ = 0;
  int first_appended_ = -1;
};

template <class T>
std::string section(Pending& pending) {
  constexpr auto& spec = spec_of<T>;
  std::string out = std::string("#### ") + spec.name + "\n\n";
  if (spec.route) out += "Type " + std::to_string(int(spec.type)) + ", " + spec.route + ". ";
  return out + spec.about + "\n\n" + Table<T>(pending).render() + "\n";
}

struct MessageEntry {
  MessageType type;
  const char* name;
  const char* route;
  Pending::Render render;
};

template <std::size_t... I>
std::vector<MessageEntry> message_entries(std::index_sequence<I...>) {
  std::vector<MessageEntry> entries = {
      {spec_of<std::variant_alternative_t<I, Body>>.type, spec_of<std::variant_alternative_t<I, Body>>.name,
       spec_of<std::variant_alternative_t<I, Body>>.route, &section<std::variant_alternative_t<I, Body>>}...};
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.type < b.type; });
  return entries;
}

}  // namespace

std::string describe_messages() {
  const auto entries = message_entries(std::make_index_sequence<std::variant_size_v<Body>>{});
  std::string out =
      "<!-- Rendered from the field lists in runtime/protocol/src/wire_schema.hpp: edit those, then "
      "run `troupe_wire_doc --write docs/protocol.md`. -->\n\n"
      "### Messages\n\n| type | message | from → to |\n|---|---|---|\n";
  for (const MessageEntry& m : entries) {
    out += "| " + std::to_string(int(m.type)) + " | [`" + m.name + "`](#" + anchor(m.name) + ") | " +
           m.route + " |\n";
  }
  out += "\n";
  Pending pending;
  for (const MessageEntry& m : entries) out += m.render(pending);
  out += "### Records\n\nThe arrays nested in the messages above.\n\n";
  for (std::size_t i = 0; i < pending.records.size(); i++) {
    const Pending::Render render = pending.records[i].second;
    out += render(pending);
  }
  return out;
}

Region generated_region(std::string_view doc) {
  const std::size_t begin = doc.find(kGeneratedBegin);
  if (begin == std::string_view::npos) {
    throw InputError("no line \"" + std::string(kGeneratedBegin.substr(0, kGeneratedBegin.size() - 1)) + "\"");
  }
  const std::size_t from = begin + kGeneratedBegin.size();
  const std::size_t end = doc.find(kGeneratedEnd, from);
  if (end == std::string_view::npos) {
    throw InputError("no line \"" + std::string(kGeneratedEnd.substr(0, kGeneratedEnd.size() - 1)) + "\"");
  }
  return {from, end - from};
}

}  // namespace troupe::wire
