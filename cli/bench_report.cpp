// The HTML report of `troupe bench`: horizontal bar charts in inline SVG, a table of every figure.
#include "bench_report.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "troupe/model/error.hpp"

namespace troupe::cli {

namespace {

std::string number(double v) {
  char b[32];
  std::snprintf(b, sizeof b, v >= 100 ? "%.0f" : v >= 10 ? "%.1f" : "%.2f", v);
  return b;
}

struct Bar {
  std::string series;  // "troupe", "bound", or another engine's name: its colour and legend
  double value = 0;
};
struct Group {
  std::string label;
  std::vector<Bar> bars;
};

const char* colour(const std::string& series) {
  if (series == "troupe") return "#2f6fb5";
  if (series == "bandwidth bound") return "#b9cbe3";
  return "#d98c2b";  // other engines
}

constexpr int kWidth = 780, kLabel = 90, kBarArea = 540, kBar = 15, kGap = 12, kTop = 34;

// A chart of groups of horizontal bars on one scale, the value written at each bar's end.
std::string bar_chart(const std::string& title, const std::string& unit, const std::vector<Group>& groups) {
  double top = 0;
  int bars = 0;
  for (const Group& g : groups) {
    for (const Bar& b : g.bars) top = std::max(top, b.value), bars++;
  }
  if (top <= 0) top = 1;
  const int height = kTop + bars * kBar + int(groups.size()) * kGap + 10;
  std::ostringstream svg;
  svg << "<svg xmlns='http://www.w3.org/2000/svg' width='" << kWidth << "' height='" << height
      << "' role='img' aria-label='" << html_escape(title) << "'>\n"
      << "<text x='0' y='18' class='title'>" << html_escape(title) << " (" << html_escape(unit) << ")</text>\n";
  int y = kTop;
  for (const Group& g : groups) {
    svg << "<text x='" << kLabel - 8 << "' y='" << y + kBar - 3 << "' text-anchor='end'>" << html_escape(g.label)
        << "</text>\n";
    for (const Bar& b : g.bars) {
      const double w = std::max(1.0, kBarArea * b.value / top);
      svg << "<rect x='" << kLabel << "' y='" << y + 1 << "' width='" << w << "' height='" << kBar - 2
          << "' fill='" << colour(b.series) << "'><title>" << html_escape(b.series) << ": " << number(b.value) << " "
          << html_escape(unit) << "</title></rect>\n"
          << "<text x='" << kLabel + w + 4 << "' y='" << y + kBar - 3 << "' class='value'>" << number(b.value)
          << " <tspan class='series'>" << html_escape(b.series) << "</tspan></text>\n";
      y += kBar;
    }
    y += kGap;
  }
  svg << "</svg>\n";
  return svg.str();
}

std::string row_label(const BenchRow& r) {
  return std::to_string(r.threads) + (r.threads == 1 ? " thread" : " threads");
}

// The other engines' rows for this model file and thread count.
std::vector<const ComparisonRow*> matching(const BenchRow& r, const std::vector<ComparisonRow>& others) {
  std::vector<const ComparisonRow*> found;
  for (const ComparisonRow& o : others) {
    if (o.model == r.model && o.threads == r.threads) found.push_back(&o);
  }
  return found;
}

// The charts of one model file (its rows at each thread count), on a scale of its own.
std::string generation_chart(const std::vector<BenchRow>& rows, const std::vector<ComparisonRow>& others) {
  std::vector<Group> groups;
  for (const BenchRow& r : rows) {
    Group g{row_label(r), {{"troupe", r.gen_tps}}};
    if (!r.in_cache) g.bars.push_back({"bandwidth bound", r.bound_tps});
    for (const ComparisonRow* o : matching(r, others)) g.bars.push_back({o->engine, o->gen_tps});
    groups.push_back(g);
  }
  return bar_chart("Generation", "tokens/s", groups);
}

std::string prompt_chart(const std::vector<BenchRow>& rows, const std::vector<ComparisonRow>& others) {
  std::vector<Group> groups;
  for (const BenchRow& r : rows) {
    Group g{row_label(r), {{"troupe", r.prompt_tps}}};
    for (const ComparisonRow* o : matching(r, others)) g.bars.push_back({o->engine, o->prompt_tps});
    groups.push_back(g);
  }
  return bar_chart("Prompt, as one batch", "tokens/s", groups);
}

std::string table(const std::vector<BenchRow>& rows) {
  std::ostringstream t;
  t << "<table><tr><th>model</th><th>type</th><th>threads</th><th>prompt tok/s</th><th>generation tok/s</th>"
       "<th>ms/token</th><th>peak RSS (MiB)</th><th>weights/token (MB)</th><th>read GB/s</th>"
       "<th>bound (tok/s)</th><th>of bound</th></tr>\n";
  for (const BenchRow& r : rows) {
    t << "<tr><td>" << html_escape(r.model) << "</td><td>" << html_escape(r.type) << "</td><td>" << r.threads << "</td><td>"
      << number(r.prompt_tps) << "</td><td>" << number(r.gen_tps) << "</td><td>" << number(r.ms_per_token)
      << "</td><td>" << number(r.peak_rss_mib) << "</td><td>" << number(r.weights_mb) << "</td><td>"
      << number(r.read_gbps) << "</td><td>" << number(r.bound_tps) << "</td><td>"
      << (r.in_cache ? std::string("(in cache)") : number(100 * r.of_bound()) + "%") << "</td></tr>\n";
  }
  t << "</table>\n";
  return t.str();
}

constexpr const char* kStyle =
    "body{font:14px system-ui,sans-serif;margin:2em;color:#222;max-width:820px}"
    "h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}svg text{font:12px system-ui,sans-serif;fill:#222}"
    "svg .title{font-weight:600;font-size:14px}svg .series{fill:#777}"
    "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}.meta{color:#555}";

}  // namespace

std::vector<ComparisonRow> read_comparison(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError("--compare " + path + ": cannot read this file");
  std::vector<nlohmann::json> objects;
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  try {
    const nlohmann::json all = nlohmann::json::parse(text);
    objects = all.is_array() ? all.get<std::vector<nlohmann::json>>() : std::vector<nlohmann::json>{all};
  } catch (const nlohmann::json::exception&) {
    std::istringstream lines(text);  // one object a line
    int n = 0;
    for (std::string line; std::getline(lines, line);) {
      n++;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      try {
        objects.push_back(nlohmann::json::parse(line));
      } catch (const nlohmann::json::exception&) {
        throw InputError("--compare " + path + ": line " + std::to_string(n) + " is not JSON");
      }
    }
  }
  std::vector<ComparisonRow> rows;
  for (const nlohmann::json& o : objects) {
    try {
      rows.push_back({o.at("engine").get<std::string>(), o.at("model").get<std::string>(), o.at("threads").get<int>(),
                      o.at("prompt_tok_s").get<double>(), o.at("gen_tok_s").get<double>()});
    } catch (const nlohmann::json::exception&) {
      throw InputError("--compare " + path +
                       ": each entry needs engine, model, threads, prompt_tok_s and gen_tok_s");
    }
  }
  return rows;
}

std::string bench_report_html(const std::vector<BenchRow>& rows, const std::vector<ComparisonRow>& others,
                              const ReportContext& context) {
  std::ostringstream page;
  page << "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>troupe bench, "
       << html_escape(context.date) << "</title><style>" << kStyle << "</style></head><body>\n"
       << "<h1>troupe bench</h1>\n<p class='meta'>" << html_escape(context.machine) << "<br>" << html_escape(context.date)
       << ", " << html_escape(context.version) << "<br>" << html_escape(context.settings) << "</p>\n"
       << "<p class='meta'>Generation reads every weight once a token, so it cannot pass the bandwidth bound: "
          "the memory read bandwidth measured beside the tokens over the weight bytes read per token "
          "(none for a model small enough to stay in the caches).</p>\n";
  std::vector<std::string> models;  // in the order measured
  for (const BenchRow& r : rows) {
    if (std::find(models.begin(), models.end(), r.model) == models.end()) models.push_back(r.model);
  }
  for (const std::string& model : models) {
    std::vector<BenchRow> of_model;
    for (const BenchRow& r : rows) {
      if (r.model == model) of_model.push_back(r);
    }
    page << "<h2>" << html_escape(model) << " (" << html_escape(of_model.front().type) << ")</h2>\n"
         << generation_chart(of_model, others) << prompt_chart(of_model, others);
  }
  page << "<h2>All figures</h2>\n" << table(rows) << "</body></html>\n";
  return page.str();
}

std::string this_machine() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  return model + ", " + std::to_string(sysconf(_SC_NPROCESSORS_ONLN)) + " cores online";
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace troupe::cli
