// The search: enumerate (hardware, GPUs, nodes, stage, micro-batch, activation checkpointing), price each with
// the memory and time models, keep those that fit with the headroom, recommend the cheapest (or
// fastest) — where several are within 2% of the best, the one with the fewest GPUs, then the most
// memory to spare — and say why every other candidate lost.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ftdist/plan/cluster.h"
#include "ftdist/plan/gpu_catalog.h"
#include "ftdist/plan/host_memory.h"
#include "ftdist/plan/memory_model.h"
#include "ftdist/plan/model_spec.h"
#include "ftdist/plan/run_setup.h"
#include "ftdist/plan/time_model.h"
#include "ftdist/plan/timeline.h"

namespace ftdist::plan {

enum class Objective { Cost, Time };

// Where a job may run: one node type (a catalog GPU in servers of gpus_per_node, up to max_nodes).
struct HardwareOption {
  std::string node_type;  // "" for a plain --gpu
  GpuSpec gpu;
  int gpus_per_node = 8;
  int max_nodes = 64;
  bool every_node_count = false;  // a cluster: try 2, 3, 4, ... nodes; a plain --gpu: 2, 4, 8, ...
};

struct PlanRequest {
  ModelSpec model;
  std::vector<HardwareOption> hardware;
  RunSetup base;                      // precision, dtypes, optimizer, attention, seq_len, offload, overheads
  std::optional<int> gpus;            // nullopt = auto
  std::optional<int> nodes;           // nullopt = derived from gpus
  std::optional<Stage> stage;         // nullopt = auto
  std::optional<int64_t> micro_batch; // nullopt = auto
  // base.loss_chunk decided per candidate, as the trainer's train.loss_chunk = -1 decides it:
  // default_loss_chunk(model, micro_batch x seq_len).
  bool auto_loss_chunk = false;
  std::optional<ActivationCheckpointing> activation_checkpointing;  // nullopt = auto
  int64_t global_batch = 0;           // sequences per optimizer step; 0 = one micro-batch per rank
  double total_tokens = 0;            // over all epochs
  double epochs = 1;                  // for the per-epoch time in reports
  double headroom = 0.10;             // fraction of GPU memory kept free
  std::optional<double> mfu;          // overrides the catalog's efficiency
  Objective objective = Objective::Cost;
  int max_gpus = 512;
};

struct Candidate {
  int hardware = 0;  // index into PlanRequest::hardware
  int gpus = 1;
  int nodes = 1;
  RunSetup setup;
  int64_t grad_accum = 1;
  MemoryBreakdown memory;  // each category's own peak over the step (they never all coexist)
  PeakMemory peak;         // the step's peak as a timeline: what fits or does not
  HostMemory host;  // host memory per rank and per node (ranks_per_node 0 when never laid out)
  uint64_t gpu_memory_bytes = 0;
  uint64_t usable_bytes = 0;  // gpu memory minus headroom
  bool fits = false;
  TimeEstimate time;
  std::string rejected_because;  // empty for the recommendation
  uint64_t needed_bytes() const { return peak.needed(setup.host_device); }  // 0 when never laid out
};

struct PlanResult {
  std::vector<Candidate> candidates;
  int recommended = -1;  // index into candidates, -1 when nothing fits
};

PlanResult search(const PlanRequest& request);

// Whether `a` ranks before `b` for `objective`: the workload's cost (or time), or without a
// workload per million tokens (or tokens/s); ties by the other, then fewer GPUs.
bool better_candidate(const Candidate& a, const Candidate& b, Objective objective);

// The hardware description the time model needs, from a catalog entry and the request.
Hardware hardware_for(const HardwareOption& option, const PlanRequest& request);

// Ranks a node holds in this candidate: the hardware's GPUs per node, or all of them on one node.
int ranks_per_node(const Candidate& candidate, const HardwareOption& option);

}  // namespace ftdist::plan
