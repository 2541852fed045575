// The step timeline (plan/timeline.h): the persistent buffers of estimate_memory(), and per phase
// what the runtime has alive on top of them. Each term names the tensors it stands for.
#include "ftdist/plan/timeline.h"

#include <algorithm>

#include "ftdist/core/bytes.h"
#include "ftdist/core/check.h"
#include "ftdist/plan/limits.h"

namespace ftdist::plan {
namespace {

uint64_t bytes(double b) { return clamp_bytes(b + 0.5); }  // (saturating: a sum past kMaxBytes does not fit)

// The quantities every phase reads, then the phases in the order the runtime runs them.
class TimelineBuilder {
 public:
  TimelineBuilder(const ModelSpec& model, const RunSetup& setup);
  StepTimeline build() {
    forward();
    loss();
    backward();
    optimizer_step();
    t_.peak = size_t(std::max_element(t_.phases.begin(), t_.phases.end(), [](const TimelinePhase& a, const TimelinePhase& b) {
                       return a.alive.total() < b.alive.total();
                     }) - t_.phases.begin());
    return t_;
  }

 private:
  struct Unit {
    std::string name;
    int64_t numel, shard;
    bool layer;
    bool ckpt = false;  // a checkpointed layer: keeps only its output, runs its forward again in backward
    double act = 0;      // a layer's activations (layer_activation_bytes_per_token: with or without the window)
  };
  double layer_saved(const Unit& x) const { return x.ckpt ? hidden_ : x.act; }  // what a layer leaves
  void forward();
  void loss();
  void backward();
  void optimizer_step();
  MemoryBreakdown head_backward_peak(const Unit& x, double remaining, double grads, double converted) const;
  // Each phase: the bytes alive at its start (the previous phase's end) or at its own peak, whichever
  // is more; `level_` is what is alive beyond `base_` at the end of the phase just recorded.
  void add(const std::string& name, const MemoryBreakdown& peak, const MemoryBreakdown& end);
  MemoryBreakdown act(double v) const {  // activations, with the forward context
    MemoryBreakdown b;
    b[MemCategory::activations] = bytes(v + context_);
    return b;
  }
  double gathered(const Unit& x) const { return double(x.shard) * n_ * c_; }  // grad-op: a unit gathered (padded)
  bool gradop() const { return gathers_ && !policy_.reshard_after_forward; }

  const ModelSpec& m_;
  const RunSetup& s_;
  const MemoryBreakdown whole_;
  const StagePolicy policy_;
  const int n_;
  const UnitLayout u_;
  const double c_, r_, tokens_;  // compute and reduce bytes per element; b x s
  const bool sharded_, gathers_;
  double attention_forward_, attention_forward_ckpt_, hidden_, fp32_hidden_, vocab_, context_;
  bool chunk_;           // a chunked loss (RunSetup::loss_chunk)
  double chunk_vocab_;   // its logits per chunk: min(chunk, b x s) x V
  MemoryBreakdown base_, level_;
  std::vector<Unit> units_;
  StepTimeline t_;
  double gradop_gathered_ = 0;  // grad-op keeps every unit gathered from its forward to its backward
  double saved_ = 0;            // activations saved so far (with the output of the last unit run)
};

TimelineBuilder::TimelineBuilder(const ModelSpec& m, const RunSetup& s)
    : m_(m), s_(s), whole_(estimate_memory(m, s)), policy_(stage_policy(s.stage)), n_(s.shard_group),
      u_(unit_layout(m, s.shard_group, shard_alignment(s.optimizer))), c_(compute_bytes(s.precision)),
      r_(float_type_bytes(s.reduce_dtype)), tokens_(double(s.micro_batch) * double(s.seq_len)),
      sharded_(policy_.shard_params), gathers_(sharded_ && n_ > 1) {
  attention_forward_ = tokens_ * eager_attention_forward_bytes_per_token(m, s, false);  // eager attention's softmax
  attention_forward_ckpt_ = tokens_ * eager_attention_forward_bytes_per_token(m, s, true);
  hidden_ = tokens_ * c_ * double(m.hidden);                                      // one (b, s, h) activation
  fp32_hidden_ = tokens_ * 4.0 * double(m.hidden);  // a layer's fp32 (b, s, h) temporary at its peak
  vocab_ = tokens_ * double(m.vocab);
  chunk_ = s.loss_chunk > 0;
  chunk_vocab_ = std::min(double(s.loss_chunk), tokens_) * double(m.vocab);
  // The forward context (rotary tables in the compute dtype, the token ids) lives through the pass;
  // with packed examples also each token's rotary rows and its position id.
  context_ = 2.0 * double(s.seq_len) * double(m.head_dim) * c_ + 8.0 * tokens_ +
             (s.packed_documents ? 2.0 * tokens_ * double(m.head_dim) * c_ + 8.0 * tokens_ : 0);

  // What every phase has: the persistent buffers (and the gather buffers of full / hybrid, allocated once).
  for (MemCategory cat : {MemCategory::params_sharded, MemCategory::master, MemCategory::optimizer, MemCategory::grads_sharded})
    base_[cat] = whole_[cat];
  base_.host = whole_.host;
  if (gathers_ && policy_.reshard_after_forward) base_[MemCategory::unsharded_params] = whole_[MemCategory::unsharded_params];
  if (s.no_sync && sharded_)  // the unsharded accumulators, kept from the first micro-batch on
    base_[MemCategory::unsharded_grads] = uint64_t(u_.padded_numel(n_)) * uint64_t(grad_accum_bytes(s));
  base_[MemCategory::activations] = bytes(attention_mask_bytes(m, s));  // one attention mask for the whole pass

  // Units in order: embed (or root), layers, head (none when tied).
  const std::vector<ModelSpec::Unit> edges = m.edge_units();
  units_.push_back({edges.front().name, u_.edges.front().numel, u_.edges.front().shard, false});
  for (int64_t i = 0; i < m.layers; ++i)
    units_.push_back({"layers." + std::to_string(i), u_.layer_numel, u_.layer_shard, true, s.activation_checkpointing.covers(i, m.layers),
                      tokens_ * layer_activation_bytes_per_token(m, s, i)});
  if (edges.size() > 1) units_.push_back({edges.back().name, u_.edges.back().numel, u_.edges.back().shard, false});
}

void TimelineBuilder::add(const std::string& name, const MemoryBreakdown& peak, const MemoryBreakdown& end) {
  MemoryBreakdown b = base_;
  const MemoryBreakdown& top = peak.total() >= level_.total() ? peak : level_;
  for (MemCategory cat : all_mem_categories()) b[cat] += top[cat];
  const double fixed = (s_.overheads.cuda_context_gib + (policy_.replicate_groups ? 3 : 1) * s_.overheads.nccl_gib) * double(kGiB);
  b[MemCategory::overhead] = bytes(fixed + s_.overheads.fragmentation * double(b.total()));
  t_.phases.push_back({name, b});
  level_ = end;
}

void TimelineBuilder::forward() {
  for (size_t k = 0; k < units_.size(); ++k) {
    const Unit& x = units_[k];
    if (gradop()) gradop_gathered_ += gathered(x);
    MemoryBreakdown peak, end;
    if (k == 0) {
      saved_ += hidden_;  // the embedding's output (the first layer's input)
      peak = end = act(saved_);
    } else if (x.layer) {
      // its saved tensors (its input was counted as the previous output); at its peak one (b, s, h)
      // temporary more. Checkpointed: the layer's activations exist while it runs, then only its output.
      // Eager attention's softmax may be larger still: the scores beside their fp32 probabilities.
      const double before = saved_;
      saved_ += layer_saved(x);
      peak = act(x.ckpt ? std::max(before + x.act, before + attention_forward_ckpt_)
                        : std::max(saved_ + fp32_hidden_, before + attention_forward_));
      end = act(saved_);
    } else {
      saved_ += hidden_;  // the final norm's output (lm_head's input)
      end = act(saved_);
      // the norm's temporaries: in bf16 its input's fp32 copy and that copy squared, before its output
      // (counted in saved_); in fp32 the square, then the output
      peak = act(saved_ + (c_ == 2 ? 2 * fp32_hidden_ - hidden_ : 0));
      if (!chunk_) peak[MemCategory::logits] = end[MemCategory::logits] = bytes(vocab_ * c_);  // (chunked: the loss applies lm_head)
    }
    peak[MemCategory::unsharded_params] = end[MemCategory::unsharded_params] = bytes(gradop_gathered_);
    add("forward of " + x.name, peak, end);
  }
}

void TimelineBuilder::loss() {
  // Tied, the root's lm_head runs here, after the final norm: its input is saved as an untied
  // head's forward saves it.
  if (m_.tie_embeddings) saved_ += hidden_;
  MemoryBreakdown b = act(saved_);
  b[MemCategory::unsharded_params] = bytes(gradop_gathered_);
  // logits, fp32 copy, log-probabilities: of every token, or (chunked) of one chunk, gone at its end
  const double logits = chunk_ ? chunk_vocab_ : vocab_;
  b[MemCategory::logits] = bytes(logits * c_ + logits * 4 + (c_ == 4 ? 0 : logits * 4));
  MemoryBreakdown end = b;
  if (chunk_) end[MemCategory::logits] = 0;
  add("loss", b, end);
}

void TimelineBuilder::backward() {
  // Backward, units in reverse. A unit's gradient: its parameters' gradients (compute dtype) and the
  // flat gradient they are copied into (the reduce dtype when sharded and reducing every micro-batch,
  // the accumulator's with no_sync, the compute dtype when replicated), alive together at the
  // unit's post-backward (its end), with the gradient of its input.
  const double r = r_;
  const double accum = grad_accum_bytes(s_);
  const double flat_bytes = !sharded_ ? c_ : s_.no_sync ? accum : r;
  const double workspace = tokens_ * 2.0 * c_ * double(m_.intermediate);  // grads of gate and up outputs together
  std::vector<size_t> order;
  if (m_.tie_embeddings) order.push_back(0);  // the root's lm_head use comes back first
  for (size_t k = units_.size(); k-- > 0;) order.push_back(k);
  double remaining = saved_ - hidden_;  // the saved activations; lm_head's input goes with its backward
  for (size_t step = 0; step < order.size(); ++step) {
    const Unit& x = units_[order[step]];
    const double padded = double(x.shard) * n_;  // the unit's flat, padded to N x S
    const double grads = double(x.numel) * c_ + padded * flat_bytes;
    const double converted = sharded_ && s_.no_sync ? padded * r : 0;  // the accumulator's copy in the reduce dtype
    MemoryBreakdown peak, end;
    if (x.layer) {
      remaining -= layer_saved(x);
      // Two candidates: inside its backward, its saved tensors (recomputed when checkpointed) with the
      // MLP's gradient workspace (the gradients of the gate and up outputs) and the down projection's
      // weight gradient; at its post-backward, the outgoing gradient, the unit's gradient and, sharded
      // over several ranks, the reduce-scatter's output.
      // (checkpointed: its input and what the recomputation saved; the recomputation's own
      // temporaries are gone before the backward's, which are larger)
      const double own = x.ckpt ? hidden_ + x.act : x.act;
      // The MLP's backward comes first; the attention's later, where eager attention adds the
      // gradient of its probabilities (fp32, heads x s x s per sequence).
      const double h = double(m_.hidden), i = double(m_.intermediate), q = double(m_.q_dim());
      const double mlp = workspace + h * i * c_;
      // Eager attention's backward, after the MLP's and o_proj's: their saved tensors gone (the second
      // norm's input and output, o_proj's input, the MLP's four (b, s, i), the bf16 probabilities), their
      // weights' gradients held; the residual's and the attention output's gradients, and beside the
      // fp32 probabilities their gradient and the scores' gradient (fp32).
      double attn = 0;
      if (s_.attention == Attention::Eager) {
        const double probs = 4.0 * double(m_.heads) * double(s_.seq_len) * double(s_.seq_len) * double(s_.micro_batch);
        const double released = tokens_ * c_ * (2 * h + q + 4 * i) + (c_ == 2 ? probs / 2 : 0);
        attn = -released + (3 * h * i + q * h + h) * c_ + tokens_ * c_ * (h + q) + 2 * probs;
      }
      const double rs_out = sharded_ ? double(x.shard) * r : 0;  // (one rank too: the same path)
      const double inner = std::max(mlp, attn);
      const bool inside = own + inner > hidden_ + grads + converted + rs_out;
      peak = act(remaining + (inside ? own + inner : hidden_));
      if (!inside) {
        peak[MemCategory::unsharded_grads] = bytes(grads);
        peak[MemCategory::comm_buffers] = bytes(converted + rs_out);
      }
      end = act(remaining + hidden_);
    } else if (step == 0) {  // head (or the root's lm_head part): the loss's backward first
      peak = head_backward_peak(x, remaining, grads, converted);
      end = act(remaining + hidden_);
    } else {  // embedding
      remaining = 0;
      peak = act(hidden_);
      end = act(0);
    }
    if (!x.layer && step != 0) {
      peak[MemCategory::unsharded_grads] = bytes(grads);
      peak[MemCategory::comm_buffers] = bytes(converted + (sharded_ ? double(x.shard) * r : 0));
    }
    end[MemCategory::unsharded_grads] = bytes(grads);
    end[MemCategory::comm_buffers] = bytes(converted);
    peak[MemCategory::unsharded_params] = end[MemCategory::unsharded_params] = bytes(gradop_gathered_);
    if (gradop()) gradop_gathered_ -= gathered(x);
    add("backward of " + x.name, peak, end);
  }

}

// The head's backward (or the root's lm_head part): the largest of its moments, one after the other.
MemoryBreakdown TimelineBuilder::head_backward_peak(const Unit& x, double remaining, double grads, double converted) const {
  auto largest = [](std::initializer_list<MemoryBreakdown> m) {
    return std::max(m, [](const MemoryBreakdown& a, const MemoryBreakdown& b) { return a.total() < b.total(); });
  };
  // Last, the unit's post-backward: its gradients and their flat copy, the reduce-scatter's output.
  MemoryBreakdown post = act(remaining + hidden_);
  post[MemCategory::unsharded_grads] = bytes(grads);
  post[MemCategory::comm_buffers] = bytes(converted + (sharded_ ? double(x.shard) * r_ : 0));
  // The final norm's backward, after lm_head's: the gradient of its output and three fp32 (b, s, h)
  // temporaries at once (model/llama.cpp RmsNormFn), lm_head's weight gradient held.
  MemoryBreakdown norm = act(remaining + hidden_ + 3 * fp32_hidden_);
  norm[MemCategory::unsharded_grads] = bytes(double(m_.vocab) * double(m_.hidden) * c_);
  if (chunk_) {
    // Per chunk: the chunk's logits recomputed, their softmax and the gradient (fp32: 12 bytes per
    // logit), beside the whole input's gradient and lm_head's fp32 weight gradient it accumulates
    // in place; at the end that gradient in the compute dtype beside it.
    const double w = double(m_.vocab) * double(m_.hidden);
    MemoryBreakdown ce = act(remaining + 2 * hidden_);
    ce[MemCategory::logits] = bytes(chunk_vocab_ * 12);
    ce[MemCategory::unsharded_grads] = bytes(w * 4);
    MemoryBreakdown out = act(remaining + 2 * hidden_);
    out[MemCategory::unsharded_grads] = bytes(w * (4 + (c_ == 2 ? 2 : 0)));
    return largest({ce, out, norm, post});
  }
  // The cross-entropy's backward: the fp32 log-probabilities with their gradient and the logits' gradient.
  MemoryBreakdown ce = act(remaining + hidden_);
  ce[MemCategory::logits] = bytes(vocab_ * 4 * 3);
  // lm_head's backward: the logits' gradient (compute dtype) with the input's and then the weight's.
  MemoryBreakdown mm = act(remaining + 2 * hidden_);
  mm[MemCategory::logits] = bytes(vocab_ * c_);
  mm[MemCategory::unsharded_grads] = bytes(double(x.numel) * c_);
  return largest({ce, mm, norm, post});
}

void TimelineBuilder::optimizer_step() {
  // The step: with a global norm every unit's reduced gradient held (comm_buffers), and the norm's
  // fp64 copy of one gradient and its square (chunks of 2^20 elements at the most); then the update.
  {
    MemoryBreakdown b;
    // Sharded stages hold nothing (the norm reads the gradient shards themselves); `optimizer` the
    // reduce-scatter outputs, made one unit at a time from a converted copy where the reduce dtype is
    // not the compute dtype; `none` the gradients in the reduce dtype, when that is not the compute dtype.
    const double clip = s_.global_norm ? 16.0 * double(std::min<int64_t>(u_.max_unit_shard(), int64_t(1) << 20)) : 0;
    double held = 0, transient = clip;
    if (s_.data_parallel() == 1 && !sharded_) {
      // one rank: the optimizer reads the replicated gradient as it is (nothing held)
    } else if (policy_.gather_after_step) {
      const double r = r_;
      held = double(s_.global_norm ? u_.shard_numel() : 0) * r;
      transient = std::max(clip, double(u_.max_unit_shard()) * (r != c_ ? n_ * r + (s_.global_norm ? 0 : r) : (s_.global_norm ? 0 : r)));
    } else if (!sharded_ && r_ != c_) {  // converted to the reduce dtype for the all-reduce
      const int64_t largest = std::max(u_.layer_numel, u_.max_edge_numel());
      held = double(s_.global_norm ? m_.param_count() : largest) * r_;
    }
    b[MemCategory::comm_buffers] = bytes(held + transient);
    add("optimizer step", b, MemoryBreakdown{});
  }
}

}  // namespace

StepTimeline step_timeline(const ModelSpec& model, const RunSetup& setup) { return TimelineBuilder(model, setup).build(); }

PeakMemory peak_memory(const ModelSpec& model, const RunSetup& setup) {
  const StepTimeline t = step_timeline(model, setup);
  PeakMemory p{t.peak_phase().alive, t.peak_phase().name, estimate_memory(model, setup)};
  for (const TimelinePhase& ph : t.phases)
    for (MemCategory cat : all_mem_categories()) p.categories[cat] = std::max(p.categories[cat], ph.alive[cat]);
  return p;
}

}  // namespace ftdist::plan
