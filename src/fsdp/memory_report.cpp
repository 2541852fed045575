#include "ftdist/fsdp/memory_report.h"

#include <cstdio>
#include <sstream>

#include "ftdist/core/bytes.h"
#include "ftdist/fsdp/device_memory.h"
#include "ftdist/fsdp/memory_counter.h"
#include "ftdist/plan/timeline.h"

namespace ftdist::fsdp {

plan::RunSetup planned_setup(const FsdpConfig& cfg, int world, int64_t micro_batch, int64_t seq_len,
                             plan::Attention attention) {
  plan::RunSetup s;
  s.stage = cfg.stage;
  s.precision = cfg.precision;
  s.optimizer = cfg.optimizer.kind;
  s.reduce_dtype = cfg.reduce_dtype;
  s.grad_accum_dtype = cfg.grad_accum_dtype;
  s.activation_checkpointing = cfg.activation_checkpointing;
  s.no_sync = cfg.no_sync;
  s.loss_chunk = cfg.loss_chunk;
  s.offload_optimizer = cfg.offload_optimizer;
  s.prefetch = cfg.prefetch;
  s.global_norm = cfg.global_norm();
  s.micro_batch = micro_batch;
  s.seq_len = seq_len;
  s.attention = attention;
  s.shard_group = plan::shard_group_size(cfg.stage, world, cfg.shard_group);
  s.replicas = world / s.shard_group;
  if (cfg.device.is_cpu()) {  // a CPU process has no CUDA context and no NCCL buffers; its device memory is host memory
    s.overheads.cuda_context_gib = 0;
    s.overheads.nccl_gib = 0;
    s.host_device = true;
  }
  return s;
}

std::string memory_report(const plan::ModelSpec& spec, const plan::RunSetup& setup, const FsdpModel& fsdp,
                          const StepResult& last) {
  const plan::MemoryBreakdown planned = plan::estimate_memory(spec, setup);
  const plan::MemoryBreakdown measured = fsdp.persistent_bytes();
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof(line), "%-18s %16s %22s\n", "memory per rank", "planned", "measured");
  os << line;
  for (plan::MemCategory c : plan::all_mem_categories()) {
    const bool persistent = c == plan::MemCategory::params_sharded || c == plan::MemCategory::master ||
                            c == plan::MemCategory::optimizer || c == plan::MemCategory::grads_sharded;
    std::string got = "-", note;  // (the note after the column, as the rows below have theirs)
    if (persistent) got = format_bytes(double(measured[c]));
    if (c == plan::MemCategory::unsharded_params) {
      got = format_bytes(double(measured[c] > 0 ? measured[c] : last.peak_gathered_bytes));
      note = measured[c] > 0 ? "  (gather buffers)" : "  (peak)";
    }
    if (c == plan::MemCategory::unsharded_grads && measured[c] > 0) {  // no_sync: the accumulators (plus transients, planned)
      got = format_bytes(double(measured[c]));
      note = "  (no_sync accumulators)";
    }
    std::snprintf(line, sizeof(line), "%-18s %16s %22s%s\n", plan::mem_category_name(c),
                  format_bytes(double(planned[c])).c_str(), got.c_str(), note.c_str());
    os << line;
  }
  if (planned.host.total() || measured.host.total()) {  // optimizer offload: what lives in host memory instead
    for (const auto& [name, field] : plan::offload_host_parts()) {
      std::snprintf(line, sizeof(line), "%-18s %16s %22s\n", name, format_bytes(double(planned.host.*field)).c_str(),
                    format_bytes(double(measured.host.*field)).c_str());
      os << line;
    }
  }
  std::snprintf(line, sizeof(line), "%-18s %16s %22s  (what forward leaves for backward)\n", "saved activations",
                format_bytes(plan::saved_activation_bytes(spec, setup)).c_str(),
                last.activation_bytes ? format_bytes(double(last.activation_bytes)).c_str() : "-");
  os << line;
  // The step's peak (plan/timeline.h): planned without the overhead, beside every tensor allocation
  // at its peak, each with the phase it falls in (the measured phase from the last step).
  const at::Device device = fsdp.config().device;
  const plan::PeakMemory peak = plan::peak_memory(spec, setup);
  {
    const StepPhase* at = last.peak_phase();
    const bool measured = device_memory_measured(device);
    std::snprintf(line, sizeof(line), "%-18s %16s %22s  (peak of every tensor allocation: planned during the %s%s%s)\n",
                  "allocated", format_bytes(double(peak.needed(setup.host_device) - peak.alive[plan::MemCategory::overhead])).c_str(),
                  measured ? format_bytes(double(device_memory_peak(device))).c_str() : "-", peak.phase.c_str(),
                  at && at->peak_bytes > 0 ? ", measured during the " : "", at && at->peak_bytes > 0 ? at->name.c_str() : "");
    os << line;
  }
  // The whole: on a GPU the caching allocator's pool at its peak (what the device gave up; the CUDA
  // context and NCCL, the planner's overhead, come on top, and "device used" shows them), on the
  // CPU the process's peak resident memory.
  const bool gpu = device.is_cuda();
  std::snprintf(line, sizeof(line), "%-18s %16s %22s  (%s)\n", "total", format_bytes(double(peak.needed(setup.host_device))).c_str(),
                format_bytes(double(gpu ? device_memory_reserved_peak(device) : process_peak_rss_bytes())).c_str(),
                gpu ? "caching allocator's peak pool (reserved), without the CUDA context" : "process peak RSS, all memory");
  os << line;
  if (gpu) {
    std::snprintf(line, sizeof(line), "%-18s %16s %22s  (whole GPU now, cudaMemGetInfo: pool + CUDA context + NCCL)\n",
                  "device used", "-", format_bytes(double(device_memory_used(device))).c_str());
    os << line;
  }
  return os.str();
}

}  // namespace ftdist::fsdp
