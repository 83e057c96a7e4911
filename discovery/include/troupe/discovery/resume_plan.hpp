// What the stages of a resumed route do with the positions they keep (wire::SessionStart's
// `resume_pos`) when their layers moved: a new plan shifted the boundaries between stages, and a
// stage kept (the same node, layers overlapping those it held) holds the keys and values of the
// layers it kept, but not of those it gained.
//
// A stage has three sources for what it lacks, cheapest first:
// - layers gained at its back run on its own log, the rows it sent on from its old last layer;
// - layers gained at its front run on the kept positions' rows from the stage before (the first
//   stage: the prompt's tokens) and give nothing to send on;
// - a stage whose next stage needs its output for the kept positions, while its log is not at its
//   new end (it lost layers at its back), runs every layer again on those rows (a rerun) and
//   sends them on, as a new stage would.
// A stage whose next stage needs rows either sends its log (after running its back layers on it),
// or reruns. The entry works this out from the routes (fill_stages), the stage from what it holds
// (resume_work); when they disagree (the stage was moved twice, or holds less than the entry
// thought) the stage refuses the resume and the entry replays the session.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "troupe/model/model.hpp"
#include "troupe/protocol/wire.hpp"

namespace troupe::discovery {

// The entry's side. `route`: the new route; `held`: per stage of it, the layers it held on the
// route left when it is kept (none: not kept); `n_layers`: the model's. Returns the indices of the
// kept stages that must take the kept positions' rows from the stage before (SessionStart::fill).
std::vector<int> fill_stages(const std::vector<wire::RouteStage>& route,
                             const std::vector<std::optional<LayerRange>>& held, int n_layers);

// What one kept stage does for the kept positions.
struct ResumeWork {
  LayerRange on_input{0, 0};  // layers run on the rows that come from before (empty: they are dropped)
  bool rerun = false;         // every layer runs on those rows, which go on to the next stage
  LayerRange on_log{0, 0};    // layers run on its log at once (gained at its back)
  bool send_log = false;      // its log (after on_log) goes to the next stage
  std::string refusal;        // not empty: it cannot resume so
};

// The stage's side. `range`: its layers now; `valid`: the layers whose keys and values it holds
// for the kept positions; `log_at`: the layer boundary its log holds rows of for every kept
// position (-1: no such log); `input`: rows of the kept positions come from before (it is in
// `fill`); `output_needed`: the next stage needs them (it is new to the session, or in `fill`).
ResumeWork resume_work(LayerRange range, LayerRange valid, int log_at, bool input, bool output_needed);

// Whether the stage at `address` of a resumed start takes the kept positions' rows (`fill`).
bool fills_at(const wire::SessionStart& start, const std::string& address);

}  // namespace troupe::discovery
