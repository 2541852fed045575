#include "ftdist/fsdp/memory_report.h"

#include <cstdio>
#include <sstream>

#include "ftdist/core/bytes.h"
#include "ftdist/fsdp/memory_counter.h"

namespace ftdist::fsdp {

plan::RunSetup planned_setup(const FsdpConfig& cfg, int world, int64_t micro_batch, int64_t seq_len,
                             plan::Attention attention) {
  plan::RunSetup s;
  s.stage = cfg.stage;
  s.precision = cfg.precision;
  s.reduce_dtype = cfg.reduce_dtype;
  s.checkpointing = cfg.checkpointing;
  s.no_sync = cfg.no_sync;
  s.prefetch = cfg.prefetch;
  s.global_norm = cfg.global_norm();
  s.micro_batch = micro_batch;
  s.seq_len = seq_len;
  s.attention = attention;
  s.shard_group = cfg.stage == plan::Stage::None ? 1
                  : (cfg.stage == plan::Stage::Hybrid && cfg.shard_group > 0 ? cfg.shard_group : world);
  s.replicas = world / s.shard_group;
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
    std::string got = "-";
    if (persistent) got = format_bytes(double(measured[c]));
    if (c == plan::MemCategory::unsharded_params) got = format_bytes(double(last.peak_gathered_bytes)) + " (peak)";
    std::snprintf(line, sizeof(line), "%-18s %16s %22s\n", plan::mem_category_name(c),
                  format_bytes(double(planned[c])).c_str(), got.c_str());
    os << line;
  }
  std::snprintf(line, sizeof(line), "%-18s %16s %22s  (what forward leaves for backward)\n", "saved activations",
                format_bytes(plan::saved_activation_bytes(spec, setup)).c_str(),
                last.activation_bytes ? format_bytes(double(last.activation_bytes)).c_str() : "-");
  os << line;
  if (CpuMemoryCounter::installed()) {
    const plan::MemoryBreakdown& p = planned;
    std::snprintf(line, sizeof(line), "%-18s %16s %22s  (peak of every tensor allocation; planned: all but overhead)\n",
                  "allocated", format_bytes(double(p.total() - p[plan::MemCategory::overhead])).c_str(),
                  format_bytes(double(CpuMemoryCounter::install().peak())).c_str());
    os << line;
  }
  std::snprintf(line, sizeof(line), "%-18s %16s %22s  (process peak RSS, all memory)\n", "total",
                format_bytes(double(planned.total())).c_str(), format_bytes(double(process_peak_rss_bytes())).c_str());
  os << line;
  return os.str();
}

}  // namespace ftdist::fsdp
