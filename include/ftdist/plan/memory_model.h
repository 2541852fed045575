// The memory model: bytes per rank, per category, for one RunSetup of one model. The runtime
// allocates exactly these buffers and reports its measured peaks under the same names
// (docs/architecture.md#memory-categories), so a plan that says "fits" is held to it.
//
//   MemoryBreakdown m = estimate_memory(model, setup);
//   m.total();  m[MemCategory::optimizer];
//
// Units: one per decoder layer, plus two edge units — `embed` (the embedding) and `head` (final norm
// and lm_head) — or, with tied embeddings, one `root` unit holding the shared matrix and the norm.
// (Splitting embedding and head, as torchtitan does, keeps a 128k-vocabulary model from holding
// both big matrices gathered at once.) Each unit's parameters form one flat buffer padded to a
// multiple of the shard group N; a rank owns a contiguous shard of S = padded / N elements
// (unit_layout(); with adamw-8bit S is also a multiple of its quantization block: optimizer_state.h).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "ftdist/plan/model_spec.h"
#include "ftdist/plan/optimizer_state.h"
#include "ftdist/plan/run_setup.h"

namespace ftdist::plan {

enum class MemCategory {
  params_sharded,    // persistent compute-dtype parameters: the shard (full, grad-op, hybrid) or a replica
  master,            // fp32 master copy (bf16-mixed), sharded except in `none`
  optimizer,         // optimizer states (AdamW: exp_avg, exp_avg_sq)
  grads_sharded,     // gradient accumulation: the fp32 shard, or full bf16 grads (optimizer, none)
  unsharded_params,  // gathered parameters: the largest edge unit + `prefetch` layer gather buffers (full); all units less own slices (grad-op)
  unsharded_grads,   // unsharded gradients before reduce-scatter: the largest edge unit + `prefetch` layer gather buffers
  activations,       // tensors autograd saves (derivation in memory_model.cpp) + backward workspace
  logits,            // lm_head output, its fp32 copy for the loss, the fp32 gradient of the logits
  comm_buffers,      // reduce-scatter outputs and dtype-conversion buffers
  overhead,          // CUDA context, NCCL, allocator fragmentation
};
constexpr int kNumMemCategories = 10;
const char* mem_category_name(MemCategory c);
const std::array<MemCategory, kNumMemCategories>& all_mem_categories();

// Optimizer offload (RunSetup::offload_optimizer) keeps each rank's master and optimizer states in
// host memory, and passes every unit's gradient shard down and its new parameters up through
// kOffloadSlots staging slots, each sized to the largest unit's shard: the gradient (the dtype the
// optimizer reads, step_grad_bytes()) and, in bf16-mixed, the bf16 parameters converted from the
// fp32 master (in fp32 and bf16-pure the master goes up as it is). Two slots: one unit's gradient
// comes down while the host updates the previous one.
constexpr int kOffloadSlots = 2;
struct OffloadHostBytes {
  uint64_t master = 0;     // fp32 (bf16 in bf16-pure), over the rank's state elements
  uint64_t optimizer = 0;  // the optimizer's states
  uint64_t staging = 0;    // kOffloadSlots x largest state length x (gradient + bf16-mixed parameter bytes)
  uint64_t total() const { return master + optimizer + staging; }
};
// The parts of OffloadHostBytes under the names memory tables print them ("host: master", ...).
struct OffloadHostPart {
  const char* name;
  uint64_t OffloadHostBytes::*bytes;
};
const std::array<OffloadHostPart, 3>& offload_host_parts();
// Bytes per element of the parameters in compute: 4 in fp32, else 2.
int compute_bytes(Precision p);
// Bytes per element of the gradient shard (and the no_sync accumulators): grad_accum_dtype in
// bf16-mixed, the master's dtype otherwise (4 in fp32, 2 in bf16-pure).
int grad_accum_bytes(const RunSetup& s);
// Bytes per element of the offloaded master: 4, or 2 in bf16-pure (whose master is bf16).
int offload_master_bytes(Precision p);
// Bytes per element of the gradient the optimizer step reads: the gradient shard's dtype in the
// sharded stages (grad_accum_dtype; 2 in bf16-pure, 4 in fp32), the reduce dtype in `optimizer` and `none`
// (the compute dtype on one rank, where nothing is reduced).
int step_grad_bytes(const RunSetup& s);

struct MemoryBreakdown {
  std::array<uint64_t, kNumMemCategories> bytes{};
  OffloadHostBytes host;  // with offload: what lives in host memory instead (0 otherwise)
  // The input of the largest gradient reduction (a whole unit's gradient, reduce dtype; 0 on one
  // rank): what a CPU runtime's MPI library copies into its own buffers (plan/host_memory.h).
  uint64_t largest_reduction_bytes = 0;
  uint64_t operator[](MemCategory c) const { return bytes[static_cast<int>(c)]; }
  uint64_t& operator[](MemCategory c) { return bytes[static_cast<int>(c)]; }
  uint64_t total() const;
  uint64_t model_states() const;  // params_sharded + master + optimizer + grads_sharded
  // What a rank's memory budget must hold: the device's categories, and on a CPU runtime (whose
  // device memory is host memory, RunSetup::host_device) the offloaded host bytes as well.
  uint64_t budgeted(bool host_device) const { return total() + (host_device ? host.total() : 0); }
};

struct UnitLayout {
  struct Edge {
    std::string name;   // embed | head | root (tied)
    int64_t numel = 0;
    int64_t shard = 0;  // S: plan::shard_size(numel, N, alignment)
  };
  int64_t layer_numel = 0;  // parameters of one decoder layer
  int64_t layer_shard = 0;  // S of one layer: plan::shard_size(layer_numel, N, alignment)
  int64_t layers = 0;
  std::vector<Edge> edges;  // embed + head, or root when tied

  int64_t edge_shards() const;
  int64_t max_edge_shard() const;
  int64_t max_edge_numel() const;
  int64_t shard_numel() const { return layers * layer_shard + edge_shards(); }  // per rank
  int64_t padded_numel(int n) const { return shard_numel() * n; }
  int64_t max_unit_shard() const { return std::max(layer_shard, max_edge_shard()); }
  // Bytes of optimizer `o`'s states summed over the units (each unit's own blocks): over every
  // rank's shard, or over whole units when the states are not sharded (`none`).
  uint64_t optimizer_bytes(OptimizerKind o, Precision p, bool sharded_states) const;
};
// The units over a shard group of `shard_group` ranks, shards aligned to `alignment` elements
// (plan::shard_alignment of the optimizer).
UnitLayout unit_layout(const ModelSpec& model, int shard_group, int64_t alignment = 1);

// Bytes one rank's activations take per token per layer, everything saved for backward, with
// flash attention (eager adds the score matrix, which grows with the sequence).
double activation_bytes_per_token_layer(const ModelSpec& model, const RunSetup& setup);
// The same for layer `layer`: where only some layers attend through the sliding window (Qwen's
// max_window_layers, Ministral's layer_types), the others attend plainly causally, with k and v
// read grouped by a fused kernel instead of expanded.
double layer_activation_bytes_per_token(const ModelSpec& model, const RunSetup& setup, int64_t layer);

// Eager attention's largest forward moment, per token of one layer: what the layer has saved when
// its scores are formed (the first norm's output and rstd, q, k and v as the product reads them,
// Qwen3's q/k norm inputs, which a checkpointed layer's forward, run without autograd, no longer
// holds), plus the scores (b, heads, s, s) in the compute dtype, their fp32 copy when that is
// narrower, and the fp32 probabilities softmax writes. 0 with flash attention. With a long sequence
// and a narrow model it exceeds the whole layer's saved activations (which keep the probabilities,
// not the scores).
double eager_attention_forward_bytes_per_token(const ModelSpec& model, const RunSetup& setup, bool checkpointed);

// The additive attention mask every layer of a forward shares (s x s in the compute dtype): eager
// attention, and flash with a sliding window shorter than the sequence; else 0. Part of `activations`.
double attention_mask_bytes(const ModelSpec& model, const RunSetup& setup);

// What a micro-batch's forward leaves alive for backward (the decoder layers — only their inputs
// when checkpointed — and the final norm), on one rank. `activations` adds the backward's extra.
double saved_activation_bytes(const ModelSpec& model, const RunSetup& setup);

// The loss chunk (tokens) the planner and the trainer choose by default: none below a vocabulary of
// 64k; above, the largest power of two (128..8192) whose chunk backward (12 bytes per fp32 logit)
// stays within 1 GiB — and none when the logits a forward makes (`tokens` x V x 12) are not more
// than that chunk's and lm_head's fp32 weight gradient (V x h x 4) together: chunking would cost.
int64_t default_loss_chunk(const ModelSpec& model, int64_t tokens);
// The chunked loss's bytes at its largest (the logits category): `chunk_tokens` x V x 12 for one
// chunk's fp32 logits, softmax and gradient, plus lm_head's fp32 weight gradient V x h x 4.
double chunked_loss_bytes(const ModelSpec& model, double chunk_tokens);

// `explain`, when given, receives one line per category: the formula with numbers substituted.
MemoryBreakdown estimate_memory(const ModelSpec& model, const RunSetup& setup,
                                std::vector<std::string>* explain = nullptr);

}  // namespace ftdist::plan
