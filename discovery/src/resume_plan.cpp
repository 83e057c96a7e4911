#include "troupe/discovery/resume_plan.hpp"

#include <algorithm>

namespace troupe::discovery {

ResumeWork resume_work(LayerRange range, LayerRange valid, int log_at, bool input, bool output_needed) {
  ResumeWork work;
  if (valid.size() <= 0 || !range.contains(valid)) {
    work.refusal = "holds none of the session's layers it serves now";
    return work;
  }
  const bool back = valid.end < range.end;
  const bool log_at_valid_end = log_at == valid.end;
  // Rows at the new end for the kept positions: the log, when it is there already or the back
  // layers can run on it.
  const bool output_from_log = back ? log_at_valid_end : log_at == range.end;
  work.rerun = (back && !log_at_valid_end) || (output_needed && !output_from_log);
  if (work.rerun) {
    work.on_input = range;
  } else {
    work.on_input = LayerRange{range.begin, valid.begin};
    if (back) work.on_log = LayerRange{valid.end, range.end};
    work.send_log = output_needed;
  }
  if (!input && work.on_input.size() > 0) {
    work.refusal = work.rerun ? "would run the kept positions again, but none come"
                              : "lacks the layers " + std::to_string(work.on_input.begin) + ".." +
                                    std::to_string(work.on_input.end) + ", and no rows come to fill them";
  }
  return work;
}

std::vector<int> fill_stages(const std::vector<wire::RouteStage>& route,
                             const std::vector<std::optional<LayerRange>>& held, int n_layers) {
  std::vector<int> fill;
  bool next_needs = false;  // the stage after the one looked at needs the kept positions' rows
  for (std::size_t i = route.size(); i-- > 0;) {
    const std::optional<LayerRange>& old = i < held.size() ? held[i] : std::nullopt;
    if (!old) {
      next_needs = true;
      continue;
    }
    // The last stage keeps no log; the others' is at the end of what they held.
    const int log_at = old->end == n_layers ? -1 : old->end;
    const ResumeWork work = resume_work(route[i].layers, old->shared(route[i].layers), log_at, true, next_needs);
    next_needs = work.on_input.size() > 0;
    if (next_needs) fill.push_back(int(i));
  }
  std::reverse(fill.begin(), fill.end());
  return fill;
}

bool fills_at(const wire::SessionStart& start, const std::string& address) {
  if (start.resume == 0) return false;
  return std::any_of(start.fill.begin(), start.fill.end(), [&](int i) {
    return i >= 0 && std::size_t(i) < start.route.size() && start.route[std::size_t(i)].address == address;
  });
}

}  // namespace troupe::discovery
