// Deciding, once, what the run config leaves to launch time: the device ("auto"), the per-rank
// memory budget, the planner's choices (parallel.auto), the hybrid shard group (0: the ranks of one
// node) and the global batch (0: micro_batch x ranks). The trainer receives a ResolvedRun and
// nothing downstream re-decides these (docs/run-config.md#what-is-decided-at-launch).
//
//   ResolvedRun run = resolve_run(config, spec, world);   // collective: every rank, the same result
//   run.config.device == "cpu" || run.config.device == "cuda"
#pragma once

#include <cstdint>

#include "ftdist/comm/communicator.h"
#include "ftdist/plan/model_spec.h"
#include "ftdist/train/memory_fit.h"
#include "ftdist/train/run_config.h"

namespace ftdist::train {

struct ResolvedRun {
  // The config with: device "cpu" or "cuda"; with parallel.auto the planner's shard, micro_batch
  // and activation checkpointing; in hybrid, shard_group the ranks of one shard group (>= 1).
  RunConfig config;
  int world = 1;           // ranks
  int ranks_per_node = 1;  // ranks on this node
  int64_t global_batch = 1;  // sequences per optimizer step, a multiple of micro_batch x world
  MemoryBudget budget;     // what each rank must fit into

  bool gpu() const { return config.device == "cuda"; }
};

// Error(BadInput) for a device that is not there, a global batch that does not divide, a shard
// group that does not divide the world; Error(DoesNotFit) when parallel.auto finds nothing that fits.
// `saved_global_batch`: the global batch of the checkpoint a run resumes (0: none); with
// train.global_batch = 0 the run keeps it where micro_batch x ranks divides it, so that resuming on
// another number of ranks goes on with the same batch.
ResolvedRun resolve_run(const RunConfig& config, const plan::ModelSpec& spec, comm::Communicator& world,
                        int64_t saved_global_batch = 0);

}  // namespace ftdist::train
