// Fitting a run into memory before it starts (docs/runtime.md#fail-fast-memory-probe): the per-rank budget,
// `[parallel] auto` (the planner picks shard, micro_batch and activation checkpointing for the launched world
// size), and turning an allocation failure during the probe (every persistent buffer, then one
// forward/backward at the longest sequence) into an error that names the category that did not
// fit, planned vs available bytes, and what the planner recommends instead (exit 3).
//
//   MemoryBudget budget = memory_budget(config);
//   if (config.auto_parallel) config = choose_parallel(config, spec, world.size(), global_batch, budget);
//   FitCheck fit{spec, setup, budget, config, world.size(), global_batch};
//   fit.run("building the shards", [&] { fsdp = std::make_unique<FsdpModel>(...); });
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "ftdist/plan/model_spec.h"
#include "ftdist/plan/run_setup.h"
#include "ftdist/train/run_config.h"

namespace ftdist::comm {
class Communicator;
}

namespace ftdist::train {

struct MemoryBudget {
  uint64_t bytes = 0;  // per rank; 0: unknown (no limit, nothing to plan against)
  std::string source;  // "parallel.memory_limit", "MemAvailable 20.1 GiB / 2 ranks on this node"
};

// parallel.memory_limit when given; else on a GPU its memory, on the CPU /proc/meminfo's
// MemAvailable divided among the ranks on this node. Collective: every rank calls it.
MemoryBudget memory_budget(const RunConfig& config);
// /proc/meminfo's MemAvailable: the host memory of this node that can be had (0 where unknown).
uint64_t mem_available_bytes();

// Error(DoesNotFit) on every rank (one verdict, all-reduced over `world`) when `need` host bytes
// per rank exceed this node's MemAvailable divided among its ranks; nothing when that is unknown.
// The benchmarks' check before they allocate: `what` names the command, `hint` what to lower.
void check_fits_host(uint64_t need, comm::Communicator& world, const std::string& what, const std::string& hint);

// The planner's setup for this run on its device: on the CPU eager attention and no CUDA context
// or NCCL overheads; on a GPU flash attention and the planner's overheads.
plan::RunSetup runtime_setup(const RunConfig& config, int world, int64_t micro_batch);

// parallel.auto: the config with the shard stage, micro_batch and activation checkpointing the planner
// recommends for `world` ranks of `budget` bytes (fastest that fits with 10% headroom, micro_batch
// dividing the global batch per rank). Error(DoesNotFit) when nothing fits, with the smallest need.
RunConfig choose_parallel(const RunConfig& config, const plan::ModelSpec& spec, int world, int64_t global_batch,
                          const MemoryBudget& budget);

// What the planner recommends for `world` ranks of `budget` bytes, as one line ("shard grad-op,
// micro_batch 2, checkpointing full: 1.2 GiB per rank"), or the ranks it would take when nothing
// fits on `world`.
std::string recommendation(const RunConfig& config, const plan::ModelSpec& spec, int world, int64_t global_batch,
                           const MemoryBudget& budget);

struct FitCheck {
  const plan::ModelSpec& spec;
  plan::RunSetup setup;  // the run's own setup, as planned
  MemoryBudget budget;
  const RunConfig& config;
  int world = 1;
  int64_t global_batch = 1;

  // Before allocating anything: Error(DoesNotFit) when the plan's total exceeds the budget, naming
  // the category at which it does (categories in the order the runtime allocates them).
  void check_plan() const;
  // Before loading, on a GPU run: Error(DoesNotFit) when the planned host memory of the ranks on
  // this node while loading (plan::estimate_host_memory) exceeds `available` (the node's
  // MemAvailable; 0: unknown, nothing checked). On a CPU run the device check is the host check.
  void check_host(uint64_t available, int ranks_per_node) const;
  // Before loading: Error(DoesNotFit) when a step's inputs, which each rank builds whole before the
  // step (token ids, labels and position ids, int64, for global_batch / world sequences), take more
  // than half of `available` (the node's MemAvailable, for its ranks; 0: unknown, nothing checked).
  void check_step_inputs(uint64_t available, int ranks_per_node) const;
  // Runs `fn`; a c10::OutOfMemoryError inside it becomes Error(DoesNotFit) naming `phase`, the
  // category being allocated, the planned bytes of that category and in total, the budget, and
  // the planner's recommendation.
  void run(const std::string& phase, const std::function<void()>& fn) const;
};

}  // namespace ftdist::train
