// RunSetup — how one training job is laid out on its ranks: sharding stage, group sizes, precision,
// optimizer, activation checkpointing, micro-batch. The memory model, the time model and (later) the runtime
// all read this one struct.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

namespace ftdist::plan {

// FSDP names first, ZeRO names accepted as aliases (docs/architecture.md#stages).
enum class Stage { Full, GradOp, Optimizer, None, Hybrid };
enum class Precision { Bf16Mixed, Fp32, Bf16Pure };
enum class OptimizerKind { AdamW, AdamW8bit, SgdMomentum };

// Activation checkpointing: which decoder layers keep only their input in forward and run their
// forward again in backward. The first `layers` of them (0: none; kAll: every layer, "full"; K: the
// first K). The first, not K spread over the model: backward meets the first layers last, when the
// later layers' saved activations are already freed, so their recomputation adds its activations
// to the least; the last layer's recomputation would add them on top of everything the forward left
// (docs/memory.md#partial-checkpointing has the measured comparison).
struct ActivationCheckpointing {
  static constexpr int64_t kAll = -1;
  static const ActivationCheckpointing None, Full;
  int64_t layers = 0;

  static constexpr ActivationCheckpointing first(int64_t k) { return ActivationCheckpointing{k}; }
  // Layers recomputed of a model with `model_layers`.
  constexpr int64_t count(int64_t model_layers) const { return layers < 0 ? model_layers : std::min(layers, model_layers); }
  constexpr bool covers(int64_t layer, int64_t model_layers) const { return layer < count(model_layers); }
  // A number of layers (K), not one of the named settings none / full.
  constexpr bool partial() const { return layers > 0; }
  constexpr bool operator==(const ActivationCheckpointing& o) const { return layers == o.layers; }
  constexpr bool operator!=(const ActivationCheckpointing& o) const { return layers != o.layers; }
};
inline constexpr ActivationCheckpointing ActivationCheckpointing::None{0};
inline constexpr ActivationCheckpointing ActivationCheckpointing::Full{ActivationCheckpointing::kAll};

enum class Attention { Flash, Eager };
enum class FloatType { Bf16, Fp32 };

// What a sharding stage does, decided once, here: the memory model and the runtime (fsdp/) read
// these instead of testing the stage.
//   stage      shard_params  reshard_after_forward  shard_states  gather_after_step  replicate_groups
//   full       yes           yes                    yes           -                  -
//   grad-op    yes           - (kept to backward)   yes           -                  -
//   optimizer  - (replica)   -                      yes           yes                -
//   none       - (replica)   -                      - (replica)   -                  -
//   hybrid     yes           yes                    yes           -                  yes
struct StagePolicy {
  bool shard_params = false;           // parameters live as shards, gathered unit by unit
  bool reshard_after_forward = false;  // a unit's gathered parameters are freed after its forward, gathered again for its backward
  bool shard_states = false;           // master and optimizer states sharded over the shard group
  bool gather_after_step = false;      // the replica is refreshed by an all-gather of the updated shards
  bool replicate_groups = false;       // shard groups replicated; gradient shards all-reduced across them
};
StagePolicy stage_policy(Stage s);
// How many ranks share one copy of the sharded state (RunSetup::shard_group), decided here only:
// 1 in `none`, `hybrid_group` in `hybrid` (ranks per shard group, already resolved: the run
// config's 0, "the ranks of one node", is turned into a number by the trainer's resolve step), all
// `world` ranks otherwise. Error(BadInput) when a hybrid group does not divide `world`.
int shard_group_size(Stage stage, int world, int hybrid_group);
// parallel.shard_group (--shard-group) as a number of ranks: as given, or 0 for the ranks of one node.
inline int hybrid_group_ranks(int requested, int ranks_per_node) { return requested > 0 ? requested : ranks_per_node; }

const char* stage_name(Stage s);
Stage stage_from_name(const std::string& name);  // full|zero3|3, grad-op|zero2|2, optimizer|zero1|1, none|ddp|zero0|0, hybrid|hsdp
const char* precision_name(Precision p);
Precision precision_from_name(const std::string& name);  // bf16-mixed | fp32 | bf16-pure
const char* optimizer_name(OptimizerKind o);
OptimizerKind optimizer_from_name(const std::string& name);  // adamw | adamw-8bit | sgd-momentum
std::string activation_checkpointing_name(ActivationCheckpointing c);  // none | full | K
ActivationCheckpointing activation_checkpointing_from_name(const std::string& name);  // none | full | K (0..)
// For sentences: "none", "full", or "17 of 32 layers".
std::string activation_checkpointing_text(ActivationCheckpointing c, int64_t model_layers);
// Error(BadInput) naming `where` when K exceeds the model's layers.
void check_activation_checkpointing(ActivationCheckpointing c, int64_t model_layers, const std::string& where);
const char* attention_name(Attention a);
Attention attention_from_name(const std::string& name);  // flash | eager
const char* float_type_name(FloatType t);
FloatType float_type_from_name(const std::string& name, const std::string& what);  // bf16 | fp32
inline int float_type_bytes(FloatType t) { return t == FloatType::Bf16 ? 2 : 4; }

// Terms of the memory bill that are not tensors of the model: explicit, documented, configurable.
// Calibrated on an H200 with the pinned torch 2.11 / NCCL 2.28 (bench/gpu_validate.sh,
// bench/RESULTS-gpu.md, 2026-11-27): the first CUDA tensor and a cuBLAS product took 0.67 GiB
// outside the caching allocator's pool, a one-rank NCCL communicator 0.55 GiB more (ftdist makes
// one at every world size; more peers and channels take more), and the pool's peak exceeded the
// peak allocated by 3.3 % to 15.5 % over seven models and settings (mean 9.7 %: the largest with
// 152k-entry vocabularies and with no_sync accumulation); the 10 % of each GPU the planner leaves
// unused (PlanRequest::headroom) covers the worst of them.
struct Overheads {
  double cuda_context_gib = 0.75;  // CUDA context, cuBLAS/cuDNN workspaces, kernels loaded (0.67 measured)
  double nccl_gib = 0.55;          // NCCL communicator buffers (channels x peers x NCCL_BUFFSIZE; 0.55 measured on one rank)
  double fragmentation = 0.10;     // caching-allocator slack, as a fraction of all other bytes (3.3-15.5 % measured)
};

// Host (CPU RAM) memory of one rank process that is not a tensor of the model (host_memory.h adds
// the tensors). One constant each, to be calibrated against measured runs.
struct HostOverheads {
  // Every rank: the resident LibTorch and MPI libraries and the runtime's own small host state.
  // Measured: 370-380 MiB peak RSS per rank training the bundled tiny model (125k parameters) on 2
  // CPU ranks, where the tensors are a few MiB.
  double process_gib = 0.375;
  // GPU runs only: CUDA driver and runtime host memory, NCCL host buffers. An assumption, not yet
  // measured on a GPU.
  double cuda_host_gib = 1.0;
};

struct RunSetup {
  Stage stage = Stage::Full;
  int shard_group = 1;  // N: ranks that share one copy of the sharded state (1 for `none`)
  int replicas = 1;     // groups holding a copy each (data-parallel degree = shard_group * replicas)
  Precision precision = Precision::Bf16Mixed;
  FloatType reduce_dtype = FloatType::Fp32;      // dtype gradients are reduced in
  FloatType grad_accum_dtype = FloatType::Fp32;  // the gradient shard (accumulation buffer)
  OptimizerKind optimizer = OptimizerKind::AdamW;
  ActivationCheckpointing activation_checkpointing = ActivationCheckpointing::None;
  Attention attention = Attention::Flash;
  int64_t micro_batch = 1;  // sequences per rank per forward
  int64_t seq_len = 2048;
  // Whole examples packed per sequence (data.packing = "documents"): attention masked to each
  // example by one (b, 1, s, s) mask per forward (every attention kind reads it), RoPE tables per
  // token ((b, s, d) each) instead of per position.
  bool packed_documents = false;
  // The loss over chunks of this many tokens (fsdp::FsdpConfig::loss_chunk; 0: all logits at once).
  int64_t loss_chunk = 0;
  int prefetch = 2;          // unsharded layer buffers in flight (the one computing + prefetched)
  bool offload_optimizer = false;  // master + optimizer states in host memory
  bool no_sync = false;  // keep unsharded fp32 gradients across micro-batches, reduce once per step
  // The step takes the global gradient norm before any update (gradient clipping, or skipping
  // non-finite steps): in `optimizer` and `none` every unit's reduced gradient is then kept until
  // the norm is known, instead of one unit's at a time. The trainer clips by default.
  bool global_norm = true;
  Overheads overheads;
  // The runtime's device is the CPU: its "device" memory is host memory (host_memory.h), and the
  // CUDA terms of `host_overheads` do not apply.
  bool host_device = false;
  HostOverheads host_overheads;

  int data_parallel() const { return shard_group * replicas; }
  bool sharded_params() const { return stage_policy(stage).shard_params; }
};

}  // namespace ftdist::plan
