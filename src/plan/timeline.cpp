// The step timeline (plan/timeline.h): the persistent buffers of estimate_memory(), and per phase
// what the runtime has alive on top of them. Each term names the tensors it stands for.
#include "ftdist/plan/timeline.h"

#include <algorithm>

#include "ftdist/core/bytes.h"
#include "ftdist/core/check.h"

namespace ftdist::plan {
namespace {

uint64_t bytes(double b) { return b <= 0 ? 0 : uint64_t(b + 0.5); }

}  // namespace

StepTimeline step_timeline(const ModelSpec& m, const RunSetup& s) {
  const MemoryBreakdown whole = estimate_memory(m, s);
  const StagePolicy policy = stage_policy(s.stage);
  const int n = s.shard_group;
  const UnitLayout u = unit_layout(m, n, shard_alignment(s.optimizer));
  const double c = s.precision == Precision::Fp32 ? 4 : 2;
  const double tokens = double(s.micro_batch) * double(s.seq_len);
  const bool ckpt = s.activation_checkpointing == ActivationCheckpointing::Full;
  const double per_layer_all = tokens * activation_bytes_per_token_layer(m, s);  // a layer's activations
  const double layer_saved = ckpt ? tokens * c * double(m.hidden) : per_layer_all;  // what a layer leaves
  const double hidden = tokens * c * double(m.hidden);  // one (b, s, h) activation
  const double fp32_hidden = tokens * 4.0 * double(m.hidden);  // a layer's fp32 (b, s, h) temporary at its peak
  const double mask = attention_mask_bytes(m, s);
  const double vocab = tokens * double(m.vocab);
  const bool sharded = policy.shard_params;
  const bool gathers = sharded && n > 1;

  // What every phase has: the persistent buffers (and the gather buffers of full / hybrid, allocated once).
  MemoryBreakdown base;
  for (MemCategory cat : {MemCategory::params_sharded, MemCategory::master, MemCategory::optimizer, MemCategory::grads_sharded})
    base[cat] = whole[cat];
  base.host = whole.host;
  if (gathers && policy.reshard_after_forward) base[MemCategory::unsharded_params] = whole[MemCategory::unsharded_params];
  if (s.no_sync && sharded)  // the unsharded accumulators, kept from the first micro-batch on
    base[MemCategory::unsharded_grads] = uint64_t(u.padded_numel(n)) * uint64_t(s.precision == Precision::Fp32 ? 4 : s.precision == Precision::Bf16Pure ? 2 : float_type_bytes(s.grad_accum_dtype));
  base[MemCategory::activations] = bytes(mask);  // one attention mask for the whole pass

  // Units in order: embed (or root), layers, head (none when tied).
  struct Unit {
    std::string name;
    int64_t numel, shard;
    bool layer;
  };
  std::vector<Unit> units;
  const std::vector<ModelSpec::Unit> edges = m.edge_units();
  units.push_back({edges.front().name, u.edges.front().numel, u.edges.front().shard, false});
  for (int64_t i = 0; i < m.layers; ++i) units.push_back({"layers." + std::to_string(i), u.layer_numel, u.layer_shard, true});
  if (edges.size() > 1) units.push_back({edges.back().name, u.edges.back().numel, u.edges.back().shard, false});
  auto gathered = [&](const Unit& x) { return double(x.shard) * n * c; };  // grad-op: a unit gathered (padded)

  StepTimeline t;
  // Each phase: the bytes alive at its start (the previous phase's end) or at its own peak, whichever
  // is more. `level` is what is alive beyond `base` at the end of the phase just recorded, with its
  // split by category.
  MemoryBreakdown level;
  auto add = [&](const std::string& name, const MemoryBreakdown& peak, const MemoryBreakdown& end) {
    MemoryBreakdown b = base;
    const MemoryBreakdown& top = peak.total() >= level.total() ? peak : level;
    for (MemCategory cat : all_mem_categories()) b[cat] += top[cat];
    const double fixed = (s.overheads.cuda_context_gib + (policy.replicate_groups ? 3 : 1) * s.overheads.nccl_gib) * double(kGiB);
    b[MemCategory::overhead] = bytes(fixed + s.overheads.fragmentation * double(b.total()));
    t.phases.push_back({name, b});
    level = end;
  };
  // The forward context (rotary tables in the compute dtype, the token ids) lives through the pass.
  const double context = 2.0 * double(s.seq_len) * double(m.head_dim) * c + 8.0 * tokens;
  auto act = [&](double v) {
    MemoryBreakdown b;
    b[MemCategory::activations] = bytes(v + context);
    return b;
  };

  // grad-op keeps every unit gathered from its forward to its backward.
  double gradop_gathered = 0;
  double saved = 0;  // activations saved so far (with the output of the last unit run)
  for (size_t k = 0; k < units.size(); ++k) {
    const Unit& x = units[k];
    if (gathers && !policy.reshard_after_forward) gradop_gathered += gathered(x);
    MemoryBreakdown peak, end;
    if (k == 0) {
      saved += hidden;  // the embedding's output (the first layer's input)
      peak = end = act(saved);
    } else if (x.layer) {
      // its saved tensors (its input was counted as the previous output); at its peak one (b, s, h)
      // temporary more. Checkpointed: the layer's activations exist while it runs, then only its output.
      const double before = saved;
      saved += layer_saved;
      peak = act(ckpt ? before + per_layer_all : saved + fp32_hidden);
      end = act(saved);
    } else {
      saved += hidden;  // the final norm's output (lm_head's input)
      end = act(saved);
      peak = act(saved + (c == 2 ? fp32_hidden : 0));  // the norm's fp32 upcast of its input in bf16
      peak[MemCategory::logits] = end[MemCategory::logits] = bytes(vocab * c);
    }
    peak[MemCategory::unsharded_params] = end[MemCategory::unsharded_params] = bytes(gradop_gathered);
    add("forward of " + x.name, peak, end);
  }
  {
    MemoryBreakdown b = act(saved);
    b[MemCategory::unsharded_params] = bytes(gradop_gathered);
    b[MemCategory::logits] = bytes(vocab * c + vocab * 4 + (c == 4 ? 0 : vocab * 4));  // logits, fp32 copy, log-probabilities
    add("loss", b, b);
  }

  // Backward, units in reverse. A unit's gradient: its parameters' gradients (compute dtype) and the
  // flat gradient they are copied into (the reduce dtype when sharded and reducing every micro-batch,
  // the accumulator's with no_sync, the compute dtype when replicated), alive together at the
  // unit's post-backward (its end), with the gradient of its input.
  const double r = float_type_bytes(s.reduce_dtype);
  const double accum = s.precision == Precision::Fp32 ? 4 : s.precision == Precision::Bf16Pure ? 2 : float_type_bytes(s.grad_accum_dtype);
  const double flat_bytes = !sharded ? c : s.no_sync ? accum : r;
  const double workspace = tokens * 2.0 * c * double(m.intermediate);  // grads of gate and up outputs together
  std::vector<size_t> order;
  if (m.tie_embeddings) order.push_back(0);  // the root's lm_head use comes back first
  for (size_t k = units.size(); k-- > 0;) order.push_back(k);
  double remaining = saved - hidden;  // the saved activations; lm_head's input goes with its backward
  for (size_t step = 0; step < order.size(); ++step) {
    const Unit& x = units[order[step]];
    const double padded = double(x.shard) * n;  // the unit's flat, padded to N x S
    const double grads = double(x.numel) * c + padded * flat_bytes;
    const double converted = sharded && s.no_sync ? padded * r : 0;  // the accumulator's copy in the reduce dtype
    MemoryBreakdown peak, end;
    if (x.layer) {
      remaining -= layer_saved;
      // Its own backward peaks in the MLP's: the gradients of the gate and up outputs (workspace) and
      // the down projection's weight gradient, over its saved tensors (recomputed when checkpointed)
      // or, where the unit's gradient is larger, over the gradient being assembled at its end.
      // Two candidates: inside its backward, its saved tensors (recomputed when checkpointed) with the
      // MLP's gradient workspace (the gradients of the gate and up outputs) and the down projection's
      // weight gradient; at its post-backward, the outgoing gradient, the unit's gradient and, sharded
      // over several ranks, the reduce-scatter's output.
      // (recomputed in bf16: with the RMSNorm's fp32 upcast of its input alive)
      const double own = ckpt ? hidden + per_layer_all + (c == 2 ? fp32_hidden : 0) : layer_saved;
      // The MLP's backward comes first; the attention's later, where eager attention adds the
      // gradient of its probabilities (fp32, heads x s x s per sequence).
      const double mlp_weights = double(m.hidden) * double(m.intermediate) * c;
      const double attn = s.attention == Attention::Eager ? 4.0 * double(m.heads) * double(s.seq_len) * double(s.seq_len) * double(s.micro_batch) : 0;
      const double mlp = std::max(workspace + mlp_weights, attn);
      const double rs_out = sharded ? double(x.shard) * r : 0;  // (one rank too: the same path)
      const bool inside = own + mlp > hidden + grads + converted + rs_out;
      peak = act(remaining + (inside ? own + mlp : hidden));
      if (!inside) {
        peak[MemCategory::unsharded_grads] = bytes(grads);
        peak[MemCategory::comm_buffers] = bytes(converted + rs_out);
      }
      end = act(remaining + hidden);
    } else if (step == 0) {  // head (or the root's lm_head part): the loss's backward first
      peak = act(remaining + hidden);
      // The cross-entropy's backward: the log-probabilities, their gradient and the logits' gradient in
      // fp32; in bf16 also the fp32 copy's gradient and its bf16 conversion (4 x 4 + 2 bytes per logit).
      peak[MemCategory::logits] = bytes(c == 4 ? vocab * 4 * 3 : vocab * (4 * 4 + c));
      end = act(remaining + hidden);
    } else {  // embedding
      remaining = 0;
      peak = act(hidden);
      end = act(0);
    }
    if (!x.layer) {
      peak[MemCategory::unsharded_grads] = bytes(grads);
      peak[MemCategory::comm_buffers] = bytes(converted + (sharded ? double(x.shard) * r : 0));
    }
    end[MemCategory::unsharded_grads] = bytes(grads);
    end[MemCategory::comm_buffers] = bytes(converted);
    peak[MemCategory::unsharded_params] = end[MemCategory::unsharded_params] = bytes(gradop_gathered);
    if (gathers && !policy.reshard_after_forward) gradop_gathered -= gathered(x);
    add("backward of " + x.name, peak, end);
  }

  // The step: with a global norm every unit's reduced gradient held (comm_buffers), and the norm's
  // fp64 copy of one gradient and its square (chunks of 2^20 elements at the most); then the update.
  {
    MemoryBreakdown b;
    // Sharded stages hold nothing (the norm reads the gradient shards themselves); `optimizer` the
    // reduce-scatter outputs, made one unit at a time from a converted copy where the reduce dtype is
    // not the compute dtype; `none` the gradients in the reduce dtype, when that is not the compute dtype.
    const double clip = s.global_norm ? 16.0 * double(std::min<int64_t>(u.max_unit_shard(), int64_t(1) << 20)) : 0;
    double held = 0, transient = clip;
    if (s.data_parallel() == 1 && !sharded) {
      // one rank: the optimizer reads the replicated gradient as it is (nothing held)
    } else if (policy.gather_after_step) {
      held = double(s.global_norm ? u.shard_numel() : 0) * r;
      transient = std::max(clip, double(u.max_unit_shard()) * (r != c ? n * r + (s.global_norm ? 0 : r) : (s.global_norm ? 0 : r)));
    } else if (!sharded && r != c) {  // converted to the reduce dtype for the all-reduce
      const int64_t largest = std::max(u.layer_numel, u.max_edge_numel());
      held = double(s.global_norm ? m.param_count() : largest) * r;
    }
    b[MemCategory::comm_buffers] = bytes(held + transient);
    add("optimizer step", b, MemoryBreakdown{});
  }
  return t.phases.empty() ? t : (t.peak = size_t(std::max_element(t.phases.begin(), t.phases.end(), [](const TimelinePhase& a, const TimelinePhase& b) {
                                                return a.alive.total() < b.alive.total();
                                              }) - t.phases.begin()),
                                 t);
}

}  // namespace ftdist::plan
