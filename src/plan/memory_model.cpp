// The memory model. Every term is a buffer the runtime allocates (docs/architecture.md#memory-categories); the derivations
// are written next to the code that computes them.
#include "ftdist/plan/memory_model.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "explain.h"
#include "ftdist/core/bytes.h"
#include "ftdist/core/check.h"
#include "ftdist/plan/limits.h"

namespace ftdist::plan {

const char* mem_category_name(MemCategory c) {
  switch (c) {
    case MemCategory::params_sharded: return "params_sharded";
    case MemCategory::master: return "master";
    case MemCategory::optimizer: return "optimizer";
    case MemCategory::grads_sharded: return "grads_sharded";
    case MemCategory::unsharded_params: return "unsharded_params";
    case MemCategory::unsharded_grads: return "unsharded_grads";
    case MemCategory::activations: return "activations";
    case MemCategory::logits: return "logits";
    case MemCategory::comm_buffers: return "comm_buffers";
    case MemCategory::overhead: return "overhead";
  }
  return "?";
}

const std::array<MemCategory, kNumMemCategories>& all_mem_categories() {
  static const std::array<MemCategory, kNumMemCategories> all = {
      MemCategory::params_sharded, MemCategory::master,          MemCategory::optimizer,
      MemCategory::grads_sharded,  MemCategory::unsharded_params, MemCategory::unsharded_grads,
      MemCategory::activations,    MemCategory::logits,          MemCategory::comm_buffers,
      MemCategory::overhead};
  return all;
}

uint64_t MemoryBreakdown::total() const {
  uint64_t t = 0;
  for (uint64_t b : bytes) t += b;
  return t;
}

uint64_t MemoryBreakdown::model_states() const {
  return (*this)[MemCategory::params_sharded] + (*this)[MemCategory::master] + (*this)[MemCategory::optimizer] +
         (*this)[MemCategory::grads_sharded];
}

int64_t UnitLayout::edge_shards() const {
  int64_t n = 0;
  for (const Edge& e : edges) n += e.shard;
  return n;
}
int64_t UnitLayout::max_edge_shard() const {
  int64_t n = 0;
  for (const Edge& e : edges) n = std::max(n, e.shard);
  return n;
}
int64_t UnitLayout::max_edge_numel() const {
  int64_t n = 0;
  for (const Edge& e : edges) n = std::max(n, e.numel);
  return n;
}

uint64_t UnitLayout::optimizer_bytes(OptimizerKind o, Precision p, bool sharded_states) const {
  uint64_t b = uint64_t(layers) * optimizer_state_bytes(o, p, sharded_states ? layer_shard : layer_numel);
  for (const Edge& e : edges) b += optimizer_state_bytes(o, p, sharded_states ? e.shard : e.numel);
  return b;
}

UnitLayout unit_layout(const ModelSpec& model, int shard_group, int64_t alignment) {
  FT_CHECK_ARG(shard_group >= 1, "shard group size must be >= 1, got " << shard_group);
  auto shard_of = [&](int64_t numel) { return shard_size(numel, shard_group, alignment); };
  UnitLayout u;
  u.layers = model.layers;
  u.layer_numel = model.layer_params();
  u.layer_shard = shard_of(u.layer_numel);
  for (const ModelSpec::Unit& unit : model.edge_units()) u.edges.push_back({unit.name, unit.numel(), shard_of(unit.numel())});
  return u;
}

namespace {

int master_bytes(Precision p) { return p == Precision::Bf16Mixed ? 4 : 0; }  // else the params are the master

}  // namespace

const std::array<OffloadHostPart, 3>& offload_host_parts() {
  static const std::array<OffloadHostPart, 3> parts = {{{"host: master", &OffloadHostBytes::master},
                                                        {"host: optimizer", &OffloadHostBytes::optimizer},
                                                        {"host: staging", &OffloadHostBytes::staging}}};
  return parts;
}

int compute_bytes(Precision p) { return p == Precision::Fp32 ? 4 : 2; }

int grad_accum_bytes(const RunSetup& s) {
  if (s.precision == Precision::Fp32) return 4;
  if (s.precision == Precision::Bf16Pure) return 2;
  return float_type_bytes(s.grad_accum_dtype);
}

int offload_master_bytes(Precision p) { return p == Precision::Bf16Pure ? 2 : 4; }

int step_grad_bytes(const RunSetup& s) {
  if (stage_policy(s.stage).shard_params) return grad_accum_bytes(s);
  return s.data_parallel() == 1 ? compute_bytes(s.precision) : float_type_bytes(s.reduce_dtype);  // one rank: unconverted
}

namespace {

struct Explainer {
  std::vector<std::string>* out;
  bool on() const { return out != nullptr; }  // formulas are built only when asked for
  void line(MemCategory c, const std::string& formula, uint64_t bytes) const {
    if (out) out->push_back(explain_line(mem_category_name(c), formula, bytes));
  }
};

std::string num(double v) { return explain_num(v); }

}  // namespace

// Per token and layer, what autograd keeps until backward (c = compute bytes, 2 for bf16):
//   input RMSNorm      its input x (c·h) and 1/rms (4); one autograd node (model/llama.cpp), so
//                      the normalized copy is not kept
//   q/k/v projections  their shared input, the normed x (c·h)
//   q/k RMSNorm        (Qwen3) their inputs, the q and k projections (c·hq + c·hkv), and 1/rms
//                      per head (4·(heads + kv_heads)); one autograd node each, as above
//   attention (flash)  q after RoPE (c·hq), k and v (2·c·hkv), the output o (c·hq, also o_proj's
//                      input), logsumexp (4 per head). RoPE multiplies by constant cos/sin tables
//                      and keeps nothing per token (a partial rotation's slices and concatenation
//                      keep nothing either).
//   residual add       nothing
//   post-attn RMSNorm  its input (c·h), 1/rms (4)
//   gate/up            their shared input, the normed x (c·h)
//   SwiGLU             gate output g (c·I) for SiLU's backward, silu(g) and up u (2·c·I) for the
//                      product's backward, the product (c·I) as down_proj's input
// Sum: c·(4h + 2hq + 2hkv + 4I) + 8 + 4·heads, plus c·(hq + hkv) + 4·(heads + kv_heads) with q/k
// norms. (For Llama-2-7B in bf16: 153,736 B ≈ 37.5·h; the Megatron estimate with dropout masks and a
// 4h GELU MLP is 34·h.)
// Eager attention keeps the probabilities instead of the logsumexp: the fp32 softmax output (4)
// and, in bf16, its bf16 copy (2), for every head and every key position (the whole (s, s) score
// matrix, a sliding window only masks it); and k and v expanded to all query heads (GQA),
// 2·c·(hq − hkv). Flash attention keeps k and v expanded too where its kernel cannot read grouped
// heads (model::fused_attention_reads_grouped_heads): with a sliding window shorter than the
// sequence (a masked kernel), and in fp32 on a GPU.
namespace {
// Per token, c bytes an element: Qwen3's q/k norms keep their inputs and an fp32 rstd per head.
double qk_norm_bytes(const ModelSpec& m, double c) {
  return m.qk_norm ? c * double(m.q_dim() + m.kv_dim()) + 4.0 * double(m.heads + m.kv_heads) : 0;
}
// Per token: k and v repeated to every query head, beyond their own.
double expanded_kv_bytes(const ModelSpec& m, double c) { return 2.0 * c * double(m.q_dim() - m.kv_dim()); }
// A layer's bytes per token; `uses_window`: it attends through the model's sliding window.
double layer_bytes_per_token(const ModelSpec& m, const RunSetup& s, bool uses_window) {
  const double c = compute_bytes(s.precision);
  double bytes = c * (4.0 * m.hidden + 2.0 * m.q_dim() + 2.0 * m.kv_dim() + 4.0 * m.intermediate) + 8.0 + qk_norm_bytes(m, c);
  const double expanded_kv = expanded_kv_bytes(m, c);
  if (s.attention == Attention::Eager) {
    bytes += (4.0 + (c == 2 ? 2.0 : 0.0)) * m.heads * double(s.seq_len) + expanded_kv;
  } else {
    bytes += 4.0 * m.heads;
    const bool windowed = uses_window && m.sliding_window > 0 && s.seq_len > m.sliding_window;
    const bool fp32_on_gpu = s.precision == Precision::Fp32 && !s.host_device;
    if (windowed || fp32_on_gpu || s.packed_documents) bytes += expanded_kv;  // (a mask: k/v expanded)
  }
  return bytes;
}
}  // namespace

double activation_bytes_per_token_layer(const ModelSpec& m, const RunSetup& s) { return layer_bytes_per_token(m, s, true); }

double layer_activation_bytes_per_token(const ModelSpec& m, const RunSetup& s, int64_t layer) {
  return layer_bytes_per_token(m, s, m.layer_uses_window(layer));
}

double eager_attention_forward_bytes_per_token(const ModelSpec& m, const RunSetup& s, bool checkpointed) {
  if (s.attention != Attention::Eager) return 0;
  const double c = compute_bytes(s.precision);
  // (eager attention reads k and v expanded to every query head)
  const double saved = c * (m.hidden + m.q_dim() + 2.0 * m.kv_dim()) + 4.0 + expanded_kv_bytes(m, c) + (checkpointed ? 0 : qk_norm_bytes(m, c));
  const double scores = double(m.heads) * double(s.seq_len);  // elements per token
  return saved + scores * (c + (c < 4 ? 4.0 : 0.0) + 4.0);
}

// The additive attention mask, (s, s) in the compute dtype, one for every layer of a forward
// (model::ForwardContext): eager attention always, flash only for a sliding window shorter than the
// sequence (plain causal flash attention masks in the kernel).
double attention_mask_bytes(const ModelSpec& m, const RunSetup& s) {
  const bool windowed = m.sliding_window > 0 && s.seq_len > m.sliding_window;
  const double one = double(compute_bytes(s.precision)) * double(s.seq_len) * double(s.seq_len);
  if (s.packed_documents)  // per sequence, for every kind; a windowed one beside it
    return one * double(s.micro_batch) * (windowed ? 2 : 1);
  if (s.attention == Attention::Flash && !windowed) return 0;
  return one * (windowed && s.attention == Attention::Eager ? 2 : 1);
}

int64_t default_loss_chunk(const ModelSpec& m, int64_t tokens) {
  if (m.vocab < 65536) return 0;
  int64_t chunk = 8192;
  while (chunk > 128 && 12.0 * double(chunk) * double(m.vocab) > double(kGiB)) chunk /= 2;
  const double whole = 12.0 * double(tokens) * double(m.vocab);
  return chunked_loss_bytes(m, double(std::min(chunk, tokens))) < whole ? chunk : 0;
}

double chunked_loss_bytes(const ModelSpec& m, double chunk_tokens) {
  return 12.0 * chunk_tokens * double(m.vocab) + 4.0 * double(m.vocab) * double(m.hidden);
}

double saved_activation_bytes(const ModelSpec& m, const RunSetup& s) {
  const double tokens = double(s.micro_batch) * double(s.seq_len);
  const double c = compute_bytes(s.precision);
  const double root = 2.0 * c * m.hidden;  // final norm input and output (lm_head's input)
  double layers = 0;  // checkpointed layers keep their input only
  for (int64_t i = 0; i < m.layers; ++i)
    layers += s.activation_checkpointing.covers(i, m.layers) ? c * m.hidden : layer_activation_bytes_per_token(m, s, i);
  return tokens * (layers + root);
}

namespace {

// What every term below reads: the model, the setup, the stage's policy and the unit layout over
// the shard group of N ranks, in the compute (c) and reduce (r) dtypes.
struct Terms {
  const ModelSpec& m;
  const RunSetup& s;
  Explainer ex;
  StagePolicy policy;
  UnitLayout u;
  int n, c, r;
  int64_t total, shard;
  double tokens;  // b*s: the micro-batch's tokens
};

// Parameters, master weights, optimizer states and the gradient shard: what a rank keeps between steps.
void add_model_states(const Terms& t, MemoryBreakdown& b) {
  const RunSetup& s = t.s;
  const UnitLayout& u = t.u;
  const int n = t.n, c = t.c;
  const int64_t total = t.total, shard = t.shard;
  const std::string C = std::to_string(c);
  // Sharded stages keep a compute-dtype shard (the all-gather source); optimizer/none keep a replica.
  const StagePolicy& policy = t.policy;
  const bool sharded = policy.shard_params;
  // The optimizer stage's replicated parameters and gradients are flat buffers padded to N x S
  // (the all-gather / reduce-scatter operands); `none` (N = 1) has no padding.
  const int64_t param_elems = sharded ? shard : (policy.gather_after_step ? u.padded_numel(n) : total);
  b[MemCategory::params_sharded] = uint64_t(param_elems) * c;
  if (t.ex.on()) t.ex.line(MemCategory::params_sharded,
          (sharded ? "shard S " + std::to_string(shard) : "replica " + std::to_string(total)) + " x " + C, b[MemCategory::params_sharded]);

  // Master and optimizer states are sharded over N in every stage but `none` (where N = 1).
  const int64_t state_elems = policy.shard_states ? shard : total;
  uint64_t master = uint64_t(state_elems) * master_bytes(s.precision);
  uint64_t optim = u.optimizer_bytes(s.optimizer, s.precision, policy.shard_states);
  b[MemCategory::master] = s.offload_optimizer ? 0 : master;
  if (t.ex.on()) t.ex.line(MemCategory::master, s.offload_optimizer ? "0 (offloaded to host memory)" :
                           std::to_string(state_elems) + " x " + std::to_string(master_bytes(s.precision)), b[MemCategory::master]);
  b[MemCategory::optimizer] = s.offload_optimizer ? 0 : optim;
  if (t.ex.on()) t.ex.line(MemCategory::optimizer, s.offload_optimizer ? "0 (offloaded to host memory)" :
                           std::to_string(state_elems) + " x " + num(double(optim) / double(std::max<int64_t>(state_elems, 1))) + " (" + optimizer_name(s.optimizer) + ")", b[MemCategory::optimizer]);
  if (s.offload_optimizer) {
    // In host memory: a master of its own in every precision (the device keeps the compute-dtype
    // parameters), the states, and the staging slots over the largest unit's state elements.
    b.host.master = uint64_t(state_elems) * offload_master_bytes(s.precision);
    b.host.optimizer = optim;
    const int per_elem = step_grad_bytes(s) + (s.precision == Precision::Bf16Mixed ? 2 : 0);
    b.host.staging = uint64_t(kOffloadSlots) * uint64_t(u.max_unit_shard()) * uint64_t(per_elem);
    if (t.ex.on()) {
      t.ex.out->push_back(explain_line("host: master", std::to_string(state_elems) + " x " + std::to_string(offload_master_bytes(s.precision)), b.host.master));
      t.ex.out->push_back(explain_line("host: optimizer", std::string(optimizer_name(s.optimizer)) + " states of " + std::to_string(state_elems) + " elements", b.host.optimizer));
      t.ex.out->push_back(explain_line("host: staging", std::to_string(kOffloadSlots) + " slots x largest unit " + std::to_string(u.max_unit_shard()) +
                                                            " x (gradient " + std::to_string(step_grad_bytes(s)) +
                                                            (s.precision == Precision::Bf16Mixed ? " + bf16 parameters 2)" : ")"), b.host.staging));
    }
  }

  // Sharded stages accumulate into the gradient shard; optimizer/none keep full compute-dtype grads.
  const int g = sharded ? grad_accum_bytes(s) : c;
  b[MemCategory::grads_sharded] = uint64_t(param_elems) * g;
  if (t.ex.on()) t.ex.line(MemCategory::grads_sharded, std::to_string(param_elems) + " x " + std::to_string(g), b[MemCategory::grads_sharded]);
}

// Gathered parameters (sharded stages) and unsharded gradients, and the largest reduction.
void add_gathered(const Terms& t, MemoryBreakdown& b) {
  const RunSetup& s = t.s;
  const UnitLayout& u = t.u;
  const int n = t.n, c = t.c;
  const int64_t shard = t.shard;
  const bool sharded = t.policy.shard_params;
  const StagePolicy& policy = t.policy;
  const std::string C = std::to_string(c);
  const uint64_t layer_full = uint64_t(u.layer_shard) * n * c;  // one gathered layer, padded
  const uint64_t edge_full = uint64_t(u.max_edge_shard()) * n * c;  // the largest edge unit, gathered
  // The largest single gradient reduction: one unit's whole (padded) gradient in the reduce dtype.
  if (s.data_parallel() > 1)
    b.largest_reduction_bytes = uint64_t(std::max(u.layer_shard, u.max_edge_shard())) * n * float_type_bytes(s.reduce_dtype);
  if (sharded && n > 1) {
    if (!policy.reshard_after_forward) {  // grad-op
      // Kept from forward until each unit's backward, so at the end of forward every unit is
      // gathered: N shards, the rank's own slice included, beside the shard it keeps
      // (FsdpUnit gathers param_shard_ into a separate full_ buffer). One shard more than ZeRO-2's
      // in-place bill of 2Ψ + (2+K)Ψ/N: 2Ψ + (4+K)Ψ/N, measured by bench step on 2 ranks.
      b[MemCategory::unsharded_params] = uint64_t(n) * uint64_t(shard) * c;
      if (t.ex.on()) t.ex.line(MemCategory::unsharded_params, "N " + std::to_string(n) + " x shard " + std::to_string(shard) +
                                                 " x " + C + " (every unit gathered, beside the rank's own shard)",
              b[MemCategory::unsharded_params]);
    } else {
      // Layers use `prefetch` preallocated gather buffers. Of the edge units one is gathered at a time: the
      // embedding at the start of forward (its backward needs no weights), the head from the end
      // of forward through its backward, which comes first.
      b[MemCategory::unsharded_params] = edge_full + uint64_t(s.prefetch) * layer_full;
      if (t.ex.on()) t.ex.line(MemCategory::unsharded_params, "largest edge unit N x S_edge x " + C + " (" + std::to_string(edge_full) + ") + prefetch " +
                                                 std::to_string(s.prefetch) + " x N x S_layer x " + C + " (" +
                                                 std::to_string(layer_full) + ")",
              b[MemCategory::unsharded_params]);
    }
  } else {
    if (t.ex.on()) t.ex.line(MemCategory::unsharded_params, sharded ? "0 (one rank: the shard is the whole)" : "0 (parameters are replicated)", 0);
  }
  if (sharded) {
    // An edge unit's gradient (the head's first, the embedding's last) arrives twice over: its
    // parameters' gradients (the lm_head or embedding matrix) and the flat gradient autograd sums
    // them into for the reduce-scatter coexist (measured: a 136M-parameter tied root on 2 ranks
    // peaks at two root units of gradients); the layers' gradients, each alive while it is produced
    // and while it is reduce-scattered, take the prefetch gather buffers.
    b[MemCategory::unsharded_grads] = 2 * edge_full + uint64_t(s.prefetch) * layer_full;
    std::string formula = "2 x largest edge unit " + std::to_string(edge_full) + " (its parameter gradients and the flat "
                          "gradient they are summed into) + prefetch " + std::to_string(s.prefetch) + " x layer " +
                          std::to_string(layer_full);
    if (s.no_sync) {  // every unit's unsharded gradient (accumulation dtype), kept until the step's last micro-batch
      const int a = grad_accum_bytes(s);
      b[MemCategory::unsharded_grads] += uint64_t(u.padded_numel(n)) * a;
      formula += " + no_sync accumulators N x S x " + std::to_string(a) + " (" + std::to_string(u.padded_numel(n) * a) + ")";
    }
    if (t.ex.on()) t.ex.line(MemCategory::unsharded_grads, formula, b[MemCategory::unsharded_grads]);
  } else {
    // Full gradients are persistent (grads_sharded); the unit being reduced has its parameters'
    // gradients and the flat copy they are gathered into for the all-reduce, in the compute dtype,
    // beside them for a moment.
    b[MemCategory::unsharded_grads] = 2 * std::max(edge_full, layer_full);
    if (t.ex.on())
      t.ex.line(MemCategory::unsharded_grads, "2 x largest unit " + std::to_string(std::max(edge_full, layer_full)) +
                                                  " (its parameter gradients and their flat copy, compute dtype)",
                b[MemCategory::unsharded_grads]);
  }
}

// Activations: what forward leaves for backward (saved_activation_bytes()) plus what backward adds on top.
void add_activations(const Terms& t, MemoryBreakdown& b) {
  const ModelSpec& m = t.m;
  const RunSetup& s = t.s;
  const int c = t.c;
  const double tokens = t.tokens;
  const double per_layer = activation_bytes_per_token_layer(m, s);
  const double root_act = 2.0 * c * m.hidden;             // final norm input and output (lm_head's input)
  const double workspace = 2.0 * c * m.intermediate;      // backward: grads of gate and up outputs together
  const double mask = attention_mask_bytes(m, s);
  const int64_t k = s.activation_checkpointing.count(m.layers);
  const std::string layers = k == 0 ? "L " + std::to_string(m.layers) + " x " + num(per_layer) + " B/token/layer"
                             : k == m.layers ? "L " + std::to_string(m.layers) + " x input " + std::to_string(c * m.hidden)
                                             : std::to_string(m.layers - k) + " layers x " + num(per_layer) + " B/token + " +
                                                   std::to_string(k) + " checkpointed x input " + std::to_string(c * m.hidden);
  // With every layer checkpointed, the last one's activations exist again while it is recomputed,
  // on top of all the inputs; with the first K only, each recomputation comes after the saved
  // activations of the layers above it are freed (and adds less than they held).
  const bool recompute_on_top = k == m.layers;
  const double act = saved_activation_bytes(m, s) + tokens * (workspace + (recompute_on_top ? per_layer : 0)) + mask;
  std::string act_formula = "b*s " + num(tokens) + " x (" + layers + (recompute_on_top ? " + one recomputed layer " + num(per_layer) : "") +
                " + root " + num(root_act) + " + backward workspace " + num(workspace) + ")";
  if (mask > 0) act_formula += " + attention mask s*s x " + std::to_string(c) + (mask > double(c) * double(s.seq_len) * double(s.seq_len) ? " x 2 (causal and windowed)" : "");
  b[MemCategory::activations] = clamp_bytes(act);
  if (t.ex.on()) t.ex.line(MemCategory::activations, act_formula, b[MemCategory::activations]);
}

// Logits, at the larger of their two moments (the step's timeline has both): forward's compute-dtype
// logits, an fp32 copy and the fp32 log-probabilities the loss keeps (10 bytes per logit in bf16, 8
// in fp32), and the cross-entropy's backward, the fp32 log-probabilities with their gradient and
// the logits' gradient (12).
void add_logits(const Terms& t, MemoryBreakdown& b) {
  const ModelSpec& m = t.m;
  const int c = t.c;
  const double tokens = t.tokens;
  if (t.s.loss_chunk > 0) {  // one chunk's logits at a time (their backward: 12 bytes per fp32 logit), lm_head's fp32 weight gradient
    const double chunk = std::min(double(t.s.loss_chunk), tokens);
    b[MemCategory::logits] = clamp_bytes(chunked_loss_bytes(m, chunk));
    if (t.ex.on()) t.ex.line(MemCategory::logits, "chunk " + num(chunk) + " tokens x V " + std::to_string(m.vocab) +
                                                      " x 12 + lm_head's fp32 gradient V x h x 4", b[MemCategory::logits]);
    return;
  }
  const int logit_bytes = std::max(c + (c == 4 ? 0 : 4) + 4, 12);
  b[MemCategory::logits] = clamp_bytes(tokens * double(m.vocab) * logit_bytes);
  if (t.ex.on()) t.ex.line(MemCategory::logits, "b*s " + num(tokens) + " x V " + std::to_string(m.vocab) + " x " + std::to_string(logit_bytes),
          b[MemCategory::logits]);
}

// Communication buffers: the operands of gradient reductions beyond the persistent buffers.
void add_comm_buffers(const Terms& t, MemoryBreakdown& b) {
  const RunSetup& s = t.s;
  const StagePolicy& policy = t.policy;
  const UnitLayout& u = t.u;
  const int n = t.n, c = t.c, r = t.r;
  const int64_t total = t.total, shard = t.shard;
  const bool sharded = policy.shard_params;
  const uint64_t max_shard = uint64_t(u.max_unit_shard());
  uint64_t comm = 0;
  std::string comm_formula;
  if (s.data_parallel() == 1) {
    comm_formula = "0 (one rank: no collectives)";
  } else if (sharded) {
    // The reduce-scatter output (one unit's shard in the reduce dtype) before it is added into the
    // gradient shard; with an fp32 reduce of bf16 gradients, the fp32 copy of the unsharded gradient.
    comm = max_shard * r;
    comm_formula = "max S " + std::to_string(max_shard) + " x " + std::to_string(r);
    if (r != c && n > 1) {
      comm += max_shard * n * r;
      comm_formula += " + fp32 copy N x max S x " + std::to_string(r);
    }
  } else if (policy.gather_after_step) {  // optimizer
    // Step end: each unit's reduce-scatter output (its gradient shard in the reduce dtype), one
    // unit's at a time, or every unit's when the global norm is taken first; plus, when the reduce
    // dtype is not the compute dtype, the converted copy of one unit's whole gradient.
    const uint64_t outputs = s.global_norm ? uint64_t(shard) : max_shard;
    comm = outputs * r;
    comm_formula = (s.global_norm ? "every unit's S " + std::to_string(shard) : "max S " + std::to_string(max_shard)) +
                   " x " + std::to_string(r);
    if (r != c) {
      comm += max_shard * n * r;
      comm_formula += " + converted gradient N x max S x " + std::to_string(r);
    }
  } else if (r != c) {
    // none: the gradient converted to the reduce dtype and all-reduced, one unit at a time, or every
    // unit's when the global norm is taken first.
    const int64_t largest = std::max(u.layer_numel, u.max_edge_numel());
    comm = uint64_t(s.global_norm ? total : largest) * r;
    comm_formula = (s.global_norm ? "every unit " + std::to_string(total) : "largest unit " + std::to_string(largest)) +
                   " x " + std::to_string(r);
  } else {
    comm_formula = "0 (in-place all-reduce)";
  }
  b[MemCategory::comm_buffers] = comm;
  if (t.ex.on()) t.ex.line(MemCategory::comm_buffers, comm_formula, comm);
}

// The CUDA context, NCCL buffers and the allocator's fragmentation over everything else. Every GPU
// run has an NCCL communicator, one rank's included (the runtime makes one at every world size);
// hybrid splits two more from it, the shard group's and the replicas' (FsdpModel), each with
// buffers of its own.
void add_overhead(const Terms& t, MemoryBreakdown& b) {
  const RunSetup& s = t.s;
  const int communicators = t.policy.replicate_groups ? 3 : 1;
  const double fixed = (s.overheads.cuda_context_gib + communicators * s.overheads.nccl_gib) * double(kGiB);
  const double frag = s.overheads.fragmentation * double(b.total());
  b[MemCategory::overhead] = clamp_bytes(fixed + frag);
  if (t.ex.on()) t.ex.line(MemCategory::overhead, "CUDA context " + num(s.overheads.cuda_context_gib) + " GiB + NCCL " +
                                     (communicators > 1 ? std::to_string(communicators) + " communicators x " : "") +
                                     num(s.overheads.nccl_gib) + " GiB + fragmentation " +
                                     num(s.overheads.fragmentation) + " x the rest",
          b[MemCategory::overhead]);
}

}  // namespace

MemoryBreakdown estimate_memory(const ModelSpec& m, const RunSetup& s, std::vector<std::string>* explain) {
  FT_CHECK_ARG(s.micro_batch >= 1, "--micro-batch must be >= 1, got " << s.micro_batch);
  FT_CHECK_ARG(s.seq_len >= 1, "--seq-len must be >= 1, got " << s.seq_len);
  FT_CHECK_ARG(s.prefetch >= 1, "prefetch depth must be >= 1, got " << s.prefetch);
  const UnitLayout u = unit_layout(m, s.shard_group, shard_alignment(s.optimizer));
  const Terms t{m, s, Explainer{explain}, stage_policy(s.stage), u, s.shard_group, compute_bytes(s.precision),
                float_type_bytes(s.reduce_dtype), m.param_count(), u.shard_numel(), double(s.micro_batch) * double(s.seq_len)};
  MemoryBreakdown b;
  add_model_states(t, b);
  add_gathered(t, b);
  add_activations(t, b);
  add_logits(t, b);
  add_comm_buffers(t, b);
  add_overhead(t, b);  // last: its fragmentation is a fraction of the rest
  return b;
}

}  // namespace ftdist::plan
