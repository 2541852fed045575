// The memory model against the ZeRO paper's model-state identities, and its monotonicity.
#include <gtest/gtest.h>

#include <cmath>

#include "ftdist/core/bytes.h"
#include "ftdist/plan/memory_model.h"
#include "ftdist/plan/presets.h"
#include "ftdist/plan/timeline.h"

using namespace ftdist::plan;

namespace {

// A Llama-shaped model of about 7.5 B parameters (the ZeRO paper's example size).
ModelSpec model_7_5b() {
  ModelSpec m = preset_model("llama-2-7b");
  m.name = "synthetic-7.5b";
  m.intermediate = 16384;
  m.layers = 27;
  return m;
}

// Mixed-precision AdamW with 16-bit gradients: the paper's accounting (K = 12).
RunSetup zero_setup(Stage stage, int n) {
  RunSetup s;
  s.stage = stage;
  s.shard_group = stage == Stage::None ? 1 : n;
  s.replicas = stage == Stage::None ? n : 1;
  s.precision = Precision::Bf16Mixed;
  s.grad_accum_dtype = FloatType::Bf16;
  s.reduce_dtype = FloatType::Bf16;
  s.optimizer = OptimizerKind::AdamW;
  return s;
}

TEST(ZeroIdentities, ModelStatesPerDevice) {
  const ModelSpec m = model_7_5b();
  const double psi = double(m.param_count());
  for (int n : {2, 8, 64}) {
    const UnitLayout u = unit_layout(m, n);
    const double shard = double(u.shard_numel());  // Ψ/N, rounded up per unit
    EXPECT_LE(shard * n - psi, double(n) * (m.layers + 2)) << "padding is less than N per unit";

    auto mem = [&](Stage st) { return estimate_memory(m, zero_setup(st, n)); };
    // plain data parallel: (4 + K)Ψ
    EXPECT_EQ(double(mem(Stage::None).model_states()), 16.0 * psi);
    // stage 1: 4Ψ + KΨ/N (the replicated parameters and gradients are the padded N x S buffers)
    EXPECT_EQ(double(mem(Stage::Optimizer).model_states()), 4.0 * shard * n + 12.0 * shard);
    // stage 2: ZeRO's 2Ψ + (2 + K)Ψ/N has the shards gathered in place; ftdist gathers every unit
    // from forward to backward into buffers beside the rank's own shard: 2Ψ + (4 + K)Ψ/N
    MemoryBreakdown z2 = mem(Stage::GradOp);
    EXPECT_EQ(double(z2.model_states() + z2[MemCategory::unsharded_params]), 2.0 * shard * n + 16.0 * shard);
    // stage 3: (4 + K)Ψ/N
    EXPECT_EQ(double(mem(Stage::Full).model_states()), 16.0 * shard);
  }
}

TEST(ZeroIdentities, PaperExampleFigures) {
  // Ψ = 7.5 B, N = 64: 120 GB, 31.4 GB, 16.6 GB, 1.9 GB (ZeRO §5; decimal GB, rounded to 0.1); stage 2
  // is 16.9 GB here, its shards not gathered in place (2Ψ/N = 0.23 GB more; see ModelStatesPerDevice).
  const ModelSpec m = model_7_5b();
  const double scale = 7.5e9 / double(m.param_count());  // our model has 7.51 B
  auto gb = [&](Stage st) {
    MemoryBreakdown b = estimate_memory(m, zero_setup(st, 64));
    double bytes = double(b.model_states()) + (st == Stage::GradOp ? double(b[MemCategory::unsharded_params]) : 0.0);
    return bytes * scale / 1e9;
  };
  EXPECT_NEAR(gb(Stage::None), 120.0, 0.05);
  EXPECT_NEAR(gb(Stage::Optimizer), 31.4, 0.05);
  EXPECT_NEAR(gb(Stage::GradOp), 16.6 + 2.0 * 7.5 / 64, 0.05);
  EXPECT_NEAR(gb(Stage::Full), 1.9, 0.05);
}

TEST(MemoryModel, DefaultGradientShardIsFp32) {
  const ModelSpec m = preset_model("mistral-7b");
  RunSetup s = zero_setup(Stage::Full, 8);
  s.grad_accum_dtype = FloatType::Fp32;
  const double shard = double(unit_layout(m, 8).shard_numel());
  // 2 (bf16 shard) + 4 (master) + 8 (AdamW) + 4 (fp32 gradient shard) bytes per shard element
  EXPECT_EQ(double(estimate_memory(m, s).model_states()), 18.0 * shard);
}

TEST(MemoryModel, SingleGpuWorkedExampleIs16BytesPerParam) {
  const ModelSpec m = preset_model("mistral-7b");
  RunSetup s = zero_setup(Stage::None, 1);
  MemoryBreakdown b = estimate_memory(m, s);
  EXPECT_EQ(b.model_states(), 16ull * 7241732096ull);  // ≈ 116 GB before activations
  EXPECT_EQ(b[MemCategory::comm_buffers], 0u);         // one rank: no collectives
}

TEST(MemoryModel, MoreGpusNeverMoreShardedBytesPerRank) {
  const ModelSpec m = preset_model("llama-3-8b");
  for (Stage st : {Stage::Full, Stage::GradOp, Stage::Optimizer}) {
    uint64_t prev_states = UINT64_MAX, prev_total = UINT64_MAX;
    for (int n = 1; n <= 512; n *= 2) {
      RunSetup s;
      s.stage = st;
      s.shard_group = n;
      MemoryBreakdown b = estimate_memory(m, s);
      uint64_t sharded = b[MemCategory::master] + b[MemCategory::optimizer] +
                         (st == Stage::Optimizer ? 0 : b[MemCategory::grads_sharded] + b[MemCategory::params_sharded]);
      EXPECT_LE(sharded, prev_states) << stage_name(st) << " N=" << n;
      if (st == Stage::Full && n > 1) {
        EXPECT_LE(b.total(), prev_total) << "N=" << n;
      }
      prev_states = sharded;
      if (n > 1) prev_total = b.total();
    }
  }
}

TEST(MemoryModel, CheckpointingNeverMoreActivations) {
  for (const char* name : {"tinyllama-1.1b", "llama-3-8b", "qwen2.5-0.5b"}) {
    const ModelSpec m = preset_model(name);
    for (int64_t seq : {128, 1024, 8192}) {
      for (int64_t mb : {1, 4}) {
        for (Attention a : {Attention::Flash, Attention::Eager}) {
          RunSetup s;
          s.seq_len = seq;
          s.micro_batch = mb;
          s.attention = a;
          s.activation_checkpointing = ActivationCheckpointing::None;
          uint64_t none = estimate_memory(m, s)[MemCategory::activations];
          s.activation_checkpointing = ActivationCheckpointing::Full;
          uint64_t full = estimate_memory(m, s)[MemCategory::activations];
          EXPECT_LE(full, none) << name << " seq " << seq << " mb " << mb;
          EXPECT_GT(full, 0u);
        }
      }
    }
  }
}

// Where the fused kernel cannot read grouped k/v heads the runtime expands them, and the planner
// counts them expanded (measured on an H200: bench/RESULTS-gpu.md); masks are one (s, s) tensor per
// forward, shared by every layer.
TEST(MemoryModel, GroupedHeadsAndMasksFollowTheKernels) {
  const ModelSpec mistral = preset_model("mistral-7b");  // 32 q / 8 kv heads of 128, window 4096
  const double expanded = 2.0 * 2 * (4096 - 1024);      // bf16 k and v at every query head
  RunSetup s;
  s.precision = Precision::Bf16Mixed;
  s.seq_len = 4096;  // the window covers the sequence: plain causal, grouped heads, no mask
  const double grouped = activation_bytes_per_token_layer(mistral, s);
  EXPECT_EQ(attention_mask_bytes(mistral, s), 0);
  s.seq_len = 8192;  // a window shorter than the sequence: the masked kernel, expanded k/v, one mask
  EXPECT_EQ(activation_bytes_per_token_layer(mistral, s), grouped + expanded);
  EXPECT_EQ(attention_mask_bytes(mistral, s), 2.0 * 8192 * 8192);
  s.attention = Attention::Eager;  // the whole (s, s) score matrix, a causal and a windowed mask
  EXPECT_EQ(activation_bytes_per_token_layer(mistral, s), grouped - 4 * 32 + expanded + 6.0 * 32 * 8192);
  EXPECT_EQ(attention_mask_bytes(mistral, s), 2 * 2.0 * 8192 * 8192);

  const ModelSpec tiny = preset_model("tinyllama-1.1b");  // 32 q / 4 kv heads of 64, no window
  RunSetup f;
  f.precision = Precision::Fp32;
  f.seq_len = 1024;
  f.host_device = true;  // the CPU's fused kernel reads grouped heads in fp32
  const double cpu = activation_bytes_per_token_layer(tiny, f);
  f.host_device = false;  // on a GPU fp32 goes to the memory-efficient kernel, with k/v expanded
  EXPECT_EQ(activation_bytes_per_token_layer(tiny, f), cpu + 2.0 * 4 * (2048 - 256));
  f.precision = Precision::Bf16Mixed;  // bf16 on a GPU: the flash kernel, grouped
  const double bf16 = activation_bytes_per_token_layer(tiny, f);
  f.host_device = true;
  EXPECT_EQ(activation_bytes_per_token_layer(tiny, f), bf16);
  EXPECT_EQ(attention_mask_bytes(tiny, f), 0);
}

// Every GPU run holds one NCCL communicator (one rank's too); hybrid splits two more from it.
TEST(MemoryModel, NcclBuffersPerCommunicator) {
  const ModelSpec m = preset_model("llama-2-7b");
  for (Stage st : {Stage::Full, Stage::Hybrid}) {
    RunSetup s;
    s.stage = st;
    s.shard_group = st == Stage::Hybrid ? 4 : 8;
    s.replicas = st == Stage::Hybrid ? 2 : 1;
    RunSetup more = s;
    more.overheads.nccl_gib += 1.0;
    const double added = double(estimate_memory(m, more)[MemCategory::overhead]) - double(estimate_memory(m, s)[MemCategory::overhead]);
    EXPECT_NEAR(added, (st == Stage::Hybrid ? 3.0 : 1.0) * double(ftdist::kGiB), 1.0) << stage_name(st);
  }
  RunSetup one;
  one.shard_group = 1;
  RunSetup more = one;
  more.overheads.nccl_gib += 1.0;
  EXPECT_NEAR(double(estimate_memory(m, more)[MemCategory::overhead]) - double(estimate_memory(m, one)[MemCategory::overhead]),
              double(ftdist::kGiB), 1.0);
}

TEST(MemoryModel, ActivationsFollowTheSavedTensors) {
  const ModelSpec m = preset_model("llama-2-7b");
  RunSetup s;
  // bf16: 2 x (4h + 2hq + 2hkv + 4I) + fp32 rstd x2 + fp32 logsumexp per head
  EXPECT_EQ(activation_bytes_per_token_layer(m, s), 2.0 * (4 * 4096 + 2 * 4096 + 2 * 4096 + 4 * 11008) + 8 + 4 * 32);
  s.attention = Attention::Eager;  // probabilities (fp32 + bf16 copy) instead of the logsumexp
  s.seq_len = 1000;
  EXPECT_EQ(activation_bytes_per_token_layer(m, s), 153736.0 - 4 * 32 + 6.0 * 32 * 1000);
  // Logits at their larger moment: the cross-entropy's backward, fp32 log-probabilities, their
  // gradient and the logits' gradient (12 bytes per vocabulary entry and token; forward holds 10).
  s.micro_batch = 2;
  s.seq_len = 100;
  EXPECT_EQ(estimate_memory(m, s)[MemCategory::logits], 2ull * 100 * 32000 * 12);
}

TEST(MemoryModel, NoSyncKeepsEveryUnitsFp32Gradient) {
  const ModelSpec m = preset_model("llama-3-8b");
  RunSetup s;
  s.shard_group = 8;
  const uint64_t base = estimate_memory(m, s)[MemCategory::unsharded_grads];
  s.no_sync = true;
  EXPECT_EQ(estimate_memory(m, s)[MemCategory::unsharded_grads] - base, uint64_t(unit_layout(m, 8).padded_numel(8)) * 4);
}

TEST(MemoryModel, OffloadMovesStatesToTheHost) {
  const ModelSpec m = preset_model("llama-3-8b");
  RunSetup s;
  s.shard_group = 4;
  MemoryBreakdown gpu = estimate_memory(m, s);
  s.offload_optimizer = true;
  MemoryBreakdown off = estimate_memory(m, s);
  EXPECT_EQ(off[MemCategory::master] + off[MemCategory::optimizer], 0u);
  EXPECT_EQ(off.host.master + off.host.optimizer, gpu[MemCategory::master] + gpu[MemCategory::optimizer]);
  // Two staging slots of the largest unit's shard: its fp32 gradient and its bf16 parameters.
  const UnitLayout u = unit_layout(m, 4);
  EXPECT_EQ(off.host.staging, uint64_t(kOffloadSlots) * uint64_t(u.max_unit_shard()) * (4 + 2));
  // Everything else on the device is unchanged.
  for (MemCategory c : all_mem_categories())
    if (c != MemCategory::master && c != MemCategory::optimizer && c != MemCategory::overhead) {
      EXPECT_EQ(off[c], gpu[c]) << mem_category_name(c);
    }
}

TEST(MemoryModel, OffloadKeepsAHostMasterInEveryPrecision) {
  const ModelSpec m = preset_model("tinyllama-1.1b");
  for (Stage stage : {Stage::Full, Stage::Optimizer, Stage::None}) {
    RunSetup s;
    s.stage = stage;
    s.shard_group = stage == Stage::None ? 1 : 8;
    s.offload_optimizer = true;
    const UnitLayout u = unit_layout(m, s.shard_group);
    const uint64_t elems = stage == Stage::None ? uint64_t(m.param_count()) : uint64_t(u.shard_numel());
    // fp32: the device's parameters were the master; offloaded, the host keeps an fp32 master of its own.
    s.precision = Precision::Fp32;
    MemoryBreakdown b = estimate_memory(m, s);
    EXPECT_EQ(b[MemCategory::master], 0u);
    EXPECT_EQ(b.host.master, elems * 4) << stage_name(stage);
    EXPECT_EQ(b.host.optimizer, elems * 8);
    EXPECT_EQ(b.host.staging, uint64_t(kOffloadSlots) * uint64_t(u.max_unit_shard()) * 4);  // the fp32 master goes up as is
    // bf16-pure: a bf16 master and bf16 states; a bf16 gradient comes down from the sharded stages.
    s.precision = Precision::Bf16Pure;
    s.reduce_dtype = FloatType::Fp32;
    b = estimate_memory(m, s);
    EXPECT_EQ(b.host.master, elems * 2);
    EXPECT_EQ(b.host.optimizer, elems * 4);
    // (replicated on one rank the gradient is read unconverted: bf16)
    EXPECT_EQ(b.host.staging, uint64_t(kOffloadSlots) * uint64_t(u.max_unit_shard()) * (stage == Stage::Optimizer ? 4 : 2));
  }
}

TEST(MemoryModel, OptimizerAndPrecisionBytes) {
  const ModelSpec m = preset_model("tinyllama-1.1b");
  RunSetup s;
  s.stage = Stage::None;
  const double psi = double(m.param_count());
  s.optimizer = OptimizerKind::SgdMomentum;
  EXPECT_EQ(double(estimate_memory(m, s)[MemCategory::optimizer]), 4.0 * psi);
  s.optimizer = OptimizerKind::AdamW8bit;
  EXPECT_NEAR(double(estimate_memory(m, s)[MemCategory::optimizer]), 2.0 * psi, 0.01 * psi);
  s.optimizer = OptimizerKind::AdamW;
  s.precision = Precision::Bf16Pure;  // bf16 everything: 2 + 2 + 4 = 8 bytes/param with AdamW
  EXPECT_EQ(double(estimate_memory(m, s).model_states()), 8.0 * psi);
  s.precision = Precision::Fp32;      // 4 + 4 + 8
  EXPECT_EQ(double(estimate_memory(m, s).model_states()), 16.0 * psi);
}

TEST(MemoryModel, TotalIsTheSumOfNamedCategories) {
  const ModelSpec m = preset_model("qwen2.5-7b");
  RunSetup s;
  s.shard_group = 8;
  std::vector<std::string> explain;
  MemoryBreakdown b = estimate_memory(m, s, &explain);
  uint64_t sum = 0;
  for (MemCategory c : all_mem_categories()) sum += b[c];
  EXPECT_EQ(sum, b.total());
  ASSERT_EQ(explain.size(), size_t(kNumMemCategories));
  for (int i = 0; i < kNumMemCategories; ++i)
    EXPECT_EQ(explain[i].rfind(mem_category_name(all_mem_categories()[i]), 0), 0u) << explain[i];
}

}  // namespace

// What the planner reports per category (peak_memory().categories, a candidate's memory) is each
// category's own peak: at least what the step's timeline holds of it at any phase, and at least the
// model's own formula, so their sum bounds the step's peak from above (the report's "categories'
// peaks summed" never reads below the peak).
TEST(MemoryModel, EachCategorysPeakBoundsItsTimeline) {
  for (const char* name : {"tinyllama-1.1b", "mistral-7b", "qwen2.5-0.5b"}) {
    const ModelSpec m = preset_model(name);
    for (Stage stage : {Stage::Full, Stage::GradOp, Stage::Optimizer, Stage::None}) {
      for (int n : {1, 4}) {
        for (Precision p : {Precision::Bf16Mixed, Precision::Fp32}) {
          for (int64_t chunk : {int64_t(0), int64_t(1024)}) {
            for (ActivationCheckpointing ck : {ActivationCheckpointing::None, ActivationCheckpointing::Full}) {
              RunSetup s;
              s.stage = stage;
              s.shard_group = stage == Stage::None ? 1 : n;
              s.replicas = stage == Stage::None ? n : 1;
              s.precision = p;
              s.micro_batch = 2;
              s.seq_len = 1024;
              s.loss_chunk = chunk;
              s.activation_checkpointing = ck;
              const PeakMemory peak = peak_memory(m, s);
              const MemoryBreakdown own = estimate_memory(m, s);
              const StepTimeline t = step_timeline(m, s);
              const std::string what = std::string(name) + " " + stage_name(stage) + " n " + std::to_string(n) + " " +
                                       precision_name(p) + " chunk " + std::to_string(chunk) + " ckpt " +
                                       activation_checkpointing_name(ck);
              EXPECT_GE(peak.categories.total(), peak.alive.total()) << what;
              for (MemCategory cat : all_mem_categories()) {
                EXPECT_GE(peak.categories[cat], own[cat]) << what << ": " << mem_category_name(cat);
                for (const TimelinePhase& ph : t.phases)
                  EXPECT_GE(peak.categories[cat], ph.alive[cat]) << what << ": " << mem_category_name(cat) << " at " << ph.name;
              }
            }
          }
        }
      }
    }
  }
}
