// Host memory per rank and per node (the terms are described in host_memory.h).
#include "ftdist/plan/host_memory.h"

#include <cstdio>
#include <sstream>

#include "explain.h"
#include "ftdist/core/bytes.h"
#include "ftdist/core/check.h"

namespace ftdist::plan {
namespace {

std::string num(double v) { return explain_num(v); }

uint64_t gib_bytes(double gib) { return uint64_t(gib * double(kGiB)); }

struct Explainer {
  std::vector<std::string>* out;
  void line(const std::string& name, const std::string& formula, uint64_t bytes) const {
    if (out) out->push_back(explain_line("host " + name, formula, bytes));
  }
};

}  // namespace

HostMemory estimate_host_memory(const ModelSpec& m, const RunSetup& s, int ranks_per_node, std::vector<std::string>* explain) {
  return estimate_host_memory(estimate_memory(m, s), s, ranks_per_node, explain);
}

HostMemory estimate_host_memory(const MemoryBreakdown& b, const RunSetup& s, int ranks_per_node,
                                std::vector<std::string>* explain) {
  FT_CHECK_ARG(ranks_per_node >= 1, "ranks per node must be >= 1, got " << ranks_per_node);
  FT_CHECK_ARG(s.host_overheads.process_gib >= 0 && s.host_overheads.cuda_host_gib >= 0,
               "host overheads must be >= 0, got process " << s.host_overheads.process_gib << " GiB, CUDA "
                                                           << s.host_overheads.cuda_host_gib << " GiB");
  const Explainer ex{explain};
  HostMemory h;
  h.ranks_per_node = ranks_per_node;

  const uint64_t process = gib_bytes(s.host_overheads.process_gib);
  const uint64_t offloaded = b.host.total();
  ex.line("process", num(s.host_overheads.process_gib) + " GiB (LibTorch/MPI libraries, runtime host state)", process);
  ex.line("offloaded", s.offload_optimizer ? "master + optimizer states + staging slots in host memory" : "0 (no --offload)", offloaded);

  if (s.host_device) {
    // The device is the CPU: every tensor the memory model counts is host memory. While loading,
    // only the persistent buffers exist (the shards are read straight into them).
    const uint64_t persistent = b[MemCategory::params_sharded] + b[MemCategory::master] + b[MemCategory::optimizer] +
                                b[MemCategory::grads_sharded] + b[MemCategory::unsharded_params];
    const uint64_t device = b.total();
    // Open MPI runs the nonblocking reductions the CPU runtime uses (libnbc) on temporary copies
    // of their input, two of the largest (measured: 4 ranks of a 494M-parameter model with a
    // 545 MB tied root peak at 1.1 GiB of RSS beyond every tensor allocated).
    const uint64_t mpi = 2 * b.largest_reduction_bytes;
    ex.line("device (cpu)", "estimate_memory total (every category)", device);
    ex.line("persistent (cpu)", "params_sharded + master + optimizer + grads_sharded + unsharded_params", persistent);
    ex.line("mpi (cpu)", "2 x the largest reduction's input " + std::to_string(b.largest_reduction_bytes) +
                             " (Open MPI's nonblocking-collective buffers)", mpi);
    h.load_peak = process + persistent + offloaded;
    h.steady = process + device + mpi + offloaded;
    ex.line("load_peak", "process + persistent + offloaded (no staging: reads go into the shards)", h.load_peak);
    ex.line("steady", "process + device + mpi + offloaded", h.steady);
  } else {
    const uint64_t cuda = gib_bytes(s.host_overheads.cuda_host_gib);
    const uint64_t staging = kLoadStagingBytes;
    ex.line("cuda", num(s.host_overheads.cuda_host_gib) + " GiB (CUDA driver/runtime, NCCL host buffers)", cuda);
    ex.line("staging", "pinned load buffer " + std::to_string(kLoadStagingBytes >> 20) + " MiB (while loading only)", staging);
    h.load_peak = process + cuda + staging + offloaded;
    h.steady = process + cuda + offloaded;
    ex.line("load_peak", "process + cuda + staging + offloaded", h.load_peak);
    ex.line("steady", "process + cuda + offloaded", h.steady);
  }
  const std::string rpn = std::to_string(ranks_per_node);
  ex.line("node load_peak", rpn + " ranks x load_peak", h.node_load_peak());
  ex.line("node steady", rpn + " ranks x steady", h.node_steady());
  if (explain) explain->push_back("host: memory-mapped data and weight files are page cache, shared per node, not counted");
  return h;
}

}  // namespace ftdist::plan
