// Host memory per rank and per node: GPU and CPU runs, offload, per-node totals, and the point of
// sharded loading — a 70 B model on 8 ranks needs a small fraction of its fp32 size per rank.
#include <gtest/gtest.h>

#include <algorithm>

#include "ftdist/core/bytes.h"
#include "ftdist/core/error.h"
#include "ftdist/plan/host_memory.h"
#include "ftdist/plan/memory_model.h"
#include "ftdist/plan/presets.h"
#include "ftdist/plan/report.h"
#include "ftdist/plan/search.h"

using namespace ftdist;
using namespace ftdist::plan;

namespace {

RunSetup sharded_setup(int n) {
  RunSetup s;
  s.stage = Stage::Full;
  s.shard_group = n;
  s.replicas = 1;
  s.micro_batch = 2;
  s.seq_len = 1024;
  // Values exact in binary, unlike the defaults, so the expected sums below are exact.
  s.host_overheads.process_gib = 0.5;
  s.host_overheads.cuda_host_gib = 1.25;
  return s;
}

// The same layout with the runtime on the CPU (the trainer's CPU setup: no CUDA overheads).
RunSetup cpu_setup(int n) {
  RunSetup s = sharded_setup(n);
  s.host_device = true;
  s.overheads.cuda_context_gib = 0;
  s.overheads.nccl_gib = 0;
  return s;
}

uint64_t gib_of(double g) { return uint64_t(g * double(kGiB)); }

TEST(HostMemory, GpuRunIsProcessPlusCudaPlusStagingWhileLoading) {
  const ModelSpec m = preset_model("mistral-7b");
  const RunSetup s = sharded_setup(4);
  const HostMemory h = estimate_host_memory(m, s, 4);
  const uint64_t base = gib_of(s.host_overheads.process_gib) + gib_of(s.host_overheads.cuda_host_gib);
  EXPECT_EQ(h.steady, base);
  EXPECT_EQ(h.load_peak, base + kLoadStagingBytes);
  EXPECT_GT(h.load_peak, h.steady);
  EXPECT_EQ(h.ranks_per_node, 4);

  // Each overhead term moves the result by exactly its size.
  RunSetup more = s;
  more.host_overheads.cuda_host_gib += 2.0;
  EXPECT_EQ(estimate_host_memory(m, more, 4).steady - h.steady, 2 * kGiB);
  more = s;
  more.host_overheads.process_gib += 1.0;
  EXPECT_EQ(estimate_host_memory(m, more, 4).load_peak - h.load_peak, kGiB);
}

TEST(HostMemory, OffloadAddsTheOffloadedStatesLoadingAndSteady) {
  const ModelSpec m = preset_model("mistral-7b");
  for (int n : {1, 8}) {
    RunSetup s = sharded_setup(n);
    const MemoryBreakdown on_device = estimate_memory(m, s);
    const HostMemory without = estimate_host_memory(m, s, n);
    s.offload_optimizer = true;
    const MemoryBreakdown offloaded = estimate_memory(m, s);
    const HostMemory with = estimate_host_memory(m, s, n);
    // What leaves the device is what host memory gains.
    const uint64_t moved = on_device[MemCategory::master] + on_device[MemCategory::optimizer];
    ASSERT_GT(moved, 0u);
    EXPECT_EQ(offloaded.host.master + offloaded.host.optimizer, moved);
    EXPECT_GT(offloaded.host.staging, 0u);  // and the slots the shards pass through
    EXPECT_EQ(with.steady - without.steady, offloaded.host.total()) << n;
    EXPECT_EQ(with.load_peak - without.load_peak, offloaded.host.total()) << n;
    EXPECT_EQ(with.load_peak - with.steady, kLoadStagingBytes);
  }
}

TEST(HostMemory, PerNodeIsPerRankTimesRanksPerNode) {
  const ModelSpec m = preset_model("llama-3-8b");
  RunSetup s = sharded_setup(8);
  s.offload_optimizer = true;
  const HostMemory one = estimate_host_memory(m, s, 1);
  for (int r : {1, 2, 8}) {
    const HostMemory h = estimate_host_memory(m, s, r);
    EXPECT_EQ(h.load_peak, one.load_peak);  // per rank: independent of how ranks are packed
    EXPECT_EQ(h.steady, one.steady);
    EXPECT_EQ(h.node_load_peak(), one.load_peak * uint64_t(r));
    EXPECT_EQ(h.node_steady(), one.steady * uint64_t(r));
  }
  EXPECT_THROW(estimate_host_memory(m, s, 0), Error);
}

TEST(HostMemory, CpuRunCountsTheDeviceMemoryAsHostMemory) {
  const ModelSpec m = preset_model("mistral-7b");
  for (int n : {1, 2, 8}) {
    const RunSetup s = cpu_setup(n);
    const MemoryBreakdown b = estimate_memory(m, s);
    const HostMemory h = estimate_host_memory(m, s, n);
    const uint64_t process = gib_of(s.host_overheads.process_gib);
    // Open MPI's nonblocking reductions copy their input twice: the largest unit's gradient (the
    // embedding or head here), in the reduce dtype, when there is anything to reduce.
    const int64_t largest = std::max(m.layer_params(), m.vocab * m.hidden);
    const uint64_t mpi = n > 1 ? 2 * uint64_t((largest + n - 1) / n * n) * uint64_t(float_type_bytes(s.reduce_dtype)) : 0;
    EXPECT_EQ(b.largest_reduction_bytes * 2, mpi) << n;
    EXPECT_EQ(h.steady, process + b.total() + mpi) << n;
    // While loading: only the persistent buffers, read straight into (no staging buffer).
    uint64_t persistent = 0;
    for (MemCategory c : {MemCategory::params_sharded, MemCategory::master, MemCategory::optimizer,
                          MemCategory::grads_sharded, MemCategory::unsharded_params})
      persistent += b[c];
    EXPECT_EQ(h.load_peak, process + persistent) << n;
    EXPECT_LT(h.load_peak, h.steady) << n;  // activations, logits etc. come with the first step
    // No CUDA host term on the CPU.
    RunSetup more = s;
    more.host_overheads.cuda_host_gib = 7.0;
    EXPECT_EQ(estimate_host_memory(m, more, n).steady, h.steady);
    EXPECT_EQ(estimate_host_memory(m, more, n).load_peak, h.load_peak);
  }
  // Offloading on the CPU moves bytes between categories, not out of host memory.
  RunSetup s = cpu_setup(4);
  const HostMemory plain = estimate_host_memory(m, s, 4);
  s.offload_optimizer = true;
  const HostMemory off = estimate_host_memory(m, s, 4);
  const uint64_t process = gib_of(s.host_overheads.process_gib);
  EXPECT_EQ(off.steady, process + estimate_memory(m, s).total() + 2 * estimate_memory(m, s).largest_reduction_bytes +
                            estimate_memory(m, s).host.total());
  // The staging slots are new bytes; master and states only changed category.
  EXPECT_EQ(off.load_peak, plain.load_peak + estimate_memory(m, s).host.staging);
}

TEST(HostMemory, SeventyBillionOnEightRanksIsFarBelowTheWholeFp32Model) {
  const ModelSpec m = preset_model("llama-3.1-70b");
  const double whole_fp32 = 4.0 * double(m.param_count());
  ASSERT_GT(whole_fp32, 250e9);

  RunSetup s;  // the default overheads, as `ftdist plan` uses them
  s.stage = Stage::Full;
  s.shard_group = 8;
  s.seq_len = 4096;
  const HostMemory gpu = estimate_host_memory(m, s, 8);
  EXPECT_LT(double(gpu.load_peak), whole_fp32 / 100);  // a few GiB, not 280 GB
  EXPECT_LT(double(gpu.node_load_peak()), whole_fp32 / 10);

  // With the optimizer offloaded a rank holds its 1/8 of master + AdamW states (12 B/param / 8).
  s.offload_optimizer = true;
  const HostMemory off = estimate_host_memory(m, s, 8);
  EXPECT_GT(double(off.steady), 12.0 * double(m.param_count()) / 8);
  EXPECT_LT(double(off.load_peak), whole_fp32 / 2);

  // On the CPU the per-rank bytes shrink with the shard group: 16 ranks need about half of 8.
  const uint64_t process = gib_of(RunSetup{}.host_overheads.process_gib);
  RunSetup c8 = cpu_setup(8), c16 = cpu_setup(16);
  c8.host_overheads = c16.host_overheads = HostOverheads{};
  const uint64_t per8 = estimate_host_memory(m, c8, 8).load_peak - process;
  const uint64_t per16 = estimate_host_memory(m, c16, 16).load_peak - process;
  EXPECT_LT(double(per16), 0.55 * double(per8));
  EXPECT_GT(double(per16), 0.45 * double(per8));
  EXPECT_LT(double(per8), whole_fp32);  // below the whole fp32 model each rank used to build
}

// The search stores the same numbers the function computes, with the hardware's ranks per node, and
// the report and JSON show them.
TEST(HostMemory, SearchReportAndJsonCarryIt) {
  PlanRequest req;
  req.model = preset_model("mistral-7b");
  GpuSpec g = GpuCatalog::load(FTDIST_SOURCE_DIR "/cluster/gpus.toml").find("a100-80gb");
  req.hardware.push_back({"", g, g.gpus_per_node, 64});
  req.base.seq_len = 1024;
  req.base.offload_optimizer = true;
  req.total_tokens = 10000.0 * 1024;
  req.stage = Stage::Full;
  const PlanResult res = search(req);
  ASSERT_GE(res.recommended, 0);
  int multi_node = 0;
  for (const Candidate& c : res.candidates) {
    if (c.memory.total() == 0) continue;  // never laid out
    const int rpn = c.nodes > 1 ? g.gpus_per_node : c.gpus;
    multi_node += c.nodes > 1;
    const HostMemory h = estimate_host_memory(req.model, c.setup, rpn);
    EXPECT_EQ(c.host.ranks_per_node, rpn) << c.gpus << " GPUs, " << c.nodes << " nodes";
    EXPECT_EQ(c.host.load_peak, h.load_peak);
    EXPECT_EQ(c.host.steady, h.steady);
  }
  EXPECT_GT(multi_node, 0);

  const Candidate& best = res.candidates[res.recommended];
  PlanReport report{req, res, {}, nlohmann::ordered_json::object(), "test", "launch"};
  const nlohmann::ordered_json j = plan_json(report);
  const auto& hj = j["recommendation"]["host_memory"];
  EXPECT_EQ(hj["per_rank_load_peak_bytes"].get<uint64_t>(), best.host.load_peak);
  EXPECT_EQ(hj["per_rank_steady_bytes"].get<uint64_t>(), best.host.steady);
  EXPECT_EQ(hj["ranks_per_node"].get<int>(), best.host.ranks_per_node);
  EXPECT_EQ(hj["per_node_load_peak_bytes"].get<uint64_t>(), best.host.load_peak * uint64_t(best.host.ranks_per_node));
  EXPECT_EQ(hj["per_node_steady_bytes"].get<uint64_t>(), best.host.steady * uint64_t(best.host.ranks_per_node));
  EXPECT_EQ(j["recommendation"]["host_memory_bytes"].get<uint64_t>(), best.memory.host.total());
  EXPECT_EQ(j["candidates"].size(), res.candidates.size());
  for (const auto& c : j["candidates"]) EXPECT_TRUE(c.contains("host_memory"));

  const std::string table = plan_table(report);
  char expect[128];
  std::snprintf(expect, sizeof(expect), "host memory: %.2f GiB per rank while loading, %.2f GiB steady",
                double(best.host.load_peak) / double(kGiB), double(best.host.steady) / double(kGiB));
  EXPECT_NE(table.find(expect), std::string::npos) << table;
  std::snprintf(expect, sizeof(expect), "%.2f GiB per node while loading (%d rank",
                double(best.host.node_load_peak()) / double(kGiB), best.host.ranks_per_node);
  EXPECT_NE(table.find(expect), std::string::npos) << table;
}

}  // namespace
