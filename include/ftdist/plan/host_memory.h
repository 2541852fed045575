// Host (CPU RAM) memory per rank and per node: the peak while loading the weights and the steady
// state of training, for one RunSetup of one model. Each rank builds only its own shards, so the
// bytes below scale with 1/N like the device memory, never with the whole model.
//
//   HostMemory h = estimate_host_memory(model, setup, ranks_per_node);
//   h.load_peak;  h.steady;  h.node_load_peak();
//
// Terms (per rank):
//   process    setup.host_overheads.process_gib: the resident LibTorch/MPI libraries and the
//              runtime's own small host state, every rank.
//   cuda_host  setup.host_overheads.cuda_host_gib: CUDA driver/runtime host memory and NCCL host
//              buffers, GPU runs only.
//   staging    kLoadStagingBytes: on a GPU run, loading copies the rank's shards from the
//              memory-mapped weight file to the device through one pinned buffer of this size;
//              it lives while loading only. A CPU run reads straight into its shards (0).
//   offloaded  MemoryBreakdown::host.total(): with offload_optimizer, the master weights, the
//              optimizer states and the offload staging slots, in host memory from loading on.
//   GPU run:  load_peak = process + cuda_host + staging + offloaded
//             steady    = process + cuda_host + offloaded
//   CPU run (setup.host_device, the runtime's device is the CPU, so its device memory is host
//   memory):
//             load_peak = process + the persistent categories (params_sharded + master + optimizer
//                         + grads_sharded + unsharded_params) + offloaded
//             steady    = process + estimate_memory(...).total() + mpi + offloaded, where mpi =
//                         2 x MemoryBreakdown::largest_reduction_bytes: Open MPI's nonblocking
//                         reductions copy their input into temporary buffers
// Per node: per rank x ranks_per_node.
//
// Not counted: memory-mapped files (the token data, the safetensors weights being loaded) live in
// the kernel's page cache, shared by the ranks of a node and reclaimable, not in any rank's memory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ftdist/plan/memory_model.h"
#include "ftdist/plan/model_spec.h"
#include "ftdist/plan/run_setup.h"

namespace ftdist::plan {

// The pinned host buffer a GPU rank loads its shards through (the runtime allocates this size).
constexpr uint64_t kLoadStagingBytes = uint64_t(64) << 20;  // 64 MiB

struct HostMemory {
  uint64_t load_peak = 0;  // per rank, while the weights are loaded
  uint64_t steady = 0;     // per rank, while training
  int ranks_per_node = 0;
  uint64_t node_load_peak() const { return load_peak * uint64_t(ranks_per_node); }
  uint64_t node_steady() const { return steady * uint64_t(ranks_per_node); }
};

// `explain`, when given, receives one line per term and result: the formula with numbers substituted.
HostMemory estimate_host_memory(const ModelSpec& model, const RunSetup& setup, int ranks_per_node,
                                std::vector<std::string>* explain = nullptr);
// The same from the device memory already estimated for this setup (`memory` must be
// estimate_memory(model, setup)); the search uses it so that no candidate is estimated twice.
HostMemory estimate_host_memory(const MemoryBreakdown& memory, const RunSetup& setup, int ranks_per_node,
                                std::vector<std::string>* explain = nullptr);

}  // namespace ftdist::plan
