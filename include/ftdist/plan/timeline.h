// The step as a timeline: the bytes alive, by memory category, at the peak of each phase the
// runtime goes through (fsdp::StepPhase has the same names), and the step's peak as the largest of
// them — not the sum of per-category peaks, which never coexist (docs/planner.md#the-step-timeline).
//
//   StepTimeline t = step_timeline(model, setup);
//   t.peak_phase().name;  t.peak_phase().alive.total();
//
// Phases, one micro-batch (the last of a step, where every accumulator exists) then the step:
//   forward of <unit>   each unit in order: its gather, its forward (activations saved so far)
//   loss                the logits and the loss's fp32 log-probabilities
//   backward of <unit>  each unit in reverse (a tied root twice: lm_head first): its gradient
//                       and its reduction; saved activations released as their layer's backward ends
//   optimizer step      the reduced gradients held for the global norm, the update
#pragma once

#include <string>
#include <vector>

#include "ftdist/plan/memory_model.h"

namespace ftdist::plan {

struct TimelinePhase {
  std::string name;
  MemoryBreakdown alive;  // per category at the phase's peak (overhead: the fixed part and fragmentation)
};

struct StepTimeline {
  std::vector<TimelinePhase> phases;
  size_t peak = 0;  // index of the phase with the most bytes
  const TimelinePhase& peak_phase() const { return phases.at(peak); }
};

StepTimeline step_timeline(const ModelSpec& model, const RunSetup& setup);

// What a rank needs: the categories alive at the step's peak phase (overhead included) — the bytes
// the planner fits against the GPU, the trainer against its budget — and the phase's name.
struct PeakMemory {
  MemoryBreakdown alive;
  std::string phase;
  // Each category at its own largest over the step: estimate_memory()'s (host and the largest
  // reduction too), raised to what any phase holds of it. Their sum bounds the step's peak from
  // above; they never all coexist.
  MemoryBreakdown categories;
  uint64_t needed(bool host_device) const { return alive.budgeted(host_device); }
};
PeakMemory peak_memory(const ModelSpec& model, const RunSetup& setup);

}  // namespace ftdist::plan
