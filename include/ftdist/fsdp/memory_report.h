// The planned-vs-measured memory table printed after training steps (ftdist train, bench step):
// the planner's per-rank bytes by category next to the runtime's own persistent buffers, the peak
// of gathered parameters, and the saved activations measured by the counting allocator.
#pragma once

#include <string>

#include "ftdist/fsdp/fsdp_model.h"
#include "ftdist/plan/memory_model.h"

namespace ftdist::fsdp {

// The planner's view of this runtime: the stage's group sizes for `world` ranks; on the CPU
// (cfg.device) without the CUDA context and NCCL overheads.
plan::RunSetup planned_setup(const FsdpConfig& cfg, int world, int64_t micro_batch, int64_t seq_len,
                             plan::Attention attention);

std::string memory_report(const plan::ModelSpec& spec, const plan::RunSetup& setup, const FsdpModel& fsdp,
                          const StepResult& last);

}  // namespace ftdist::fsdp
