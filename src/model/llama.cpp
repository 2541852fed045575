#include "ftdist/model/llama.h"

#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <limits>
#include <map>

#include "ftdist/core/check.h"
#include "ftdist/core/suggest.h"
#include "ftdist/core/torch_compat.h"

namespace ftdist::model {

namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// RMSNorm with the arithmetic of Transformers' forward, as one autograd node that keeps only its
// input and the per-token 1/rms for backward (autograd through the plain ops would also keep the
// normalized copy: one more hidden-size tensor per norm — the memory model counts this version).
struct RmsNormFn : public torch::autograd::Function<RmsNormFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, double eps) {
    at::Tensor xf = x.to(at::promote_types(x.scalar_type(), at::kFloat));  // fp32 (x itself in fp32), or fp64 for fp64
    at::Tensor rstd = at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
    ctx->save_for_backward({x, weight, rstd});
    // In place on what it owns: beside x at most its fp32 copy and that squared (bf16), or the square
    // and then the output (fp32), as the memory model counts (plan/timeline.cpp)
    at::Tensor y = xf.is_same(x) ? xf * rstd : xf.mul_(rstd);
    xf.reset();
    at::Tensor out = y.to(x.scalar_type());
    y.reset();
    return weight.scalar_type() == out.scalar_type() ? out.mul_(weight) : weight * out;
  }
  // The backward holds at most three fp32 (b, s, h) temporaries at once (xhat, g' and one product):
  // mixed-dtype products promote without a converted copy,
  // and the last steps run in place on tensors it owns. The arithmetic is the same operation by
  // operation as rstd * (g' - xhat * mean(g' * xhat)).
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1], &rstd = saved[2];
    const at::ScalarType acc = rstd.scalar_type();
    const at::Tensor& g = grads[0];  // (not written to: autograd may hand the same tensor elsewhere)
    at::Tensor xhat = x * rstd;  // (b, s, h) acc: recomputed, not kept
    at::Tensor grad_weight;
    {
      // d(weight * xhat)/dweight = xhat as the forward rounded it; the product in acc
      at::Tensor rounded = xhat.to(x.scalar_type()).to(acc);
      at::Tensor prod = rounded.is_same(xhat) ? g * xhat : rounded.mul_(g);
      grad_weight = prod.reshape({-1, x.size(-1)}).sum(0);
    }
    // d/dx of xhat = rstd * (g' - xhat * mean(g' * xhat)), g' = g * weight
    at::Tensor gw = g * weight.to(acc);
    at::Tensor dot = (gw * xhat).mean(-1, /*keepdim=*/true);
    at::Tensor grad_x = gw.sub_(xhat.mul_(dot)).mul_(rstd);
    xhat.reset();
    return {grad_x.to(x.scalar_type()), grad_weight.to(weight.scalar_type()), at::Tensor()};
  }
};
}  // namespace

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) { return RmsNormFn::apply(x, weight, eps); }

at::Tensor attention_mask(int64_t s, int64_t window, plan::Attention kind, const at::TensorOptions& options) {
  if (kind == plan::Attention::Flash && compat::available_sdpa && window == 0) return at::Tensor();
  at::Tensor i = at::arange(s, at::TensorOptions().dtype(at::kLong)).unsqueeze(1);
  at::Tensor j = at::arange(s, at::TensorOptions().dtype(at::kLong)).unsqueeze(0);
  at::Tensor attend = j <= i;
  if (window > 0) attend = attend.logical_and(i - j < window);
  at::Tensor mask = at::zeros({s, s}, at::TensorOptions().dtype(options.dtype()));
  mask.masked_fill_(attend.logical_not(), -std::numeric_limits<double>::infinity());
  return mask.to(options.device());
}

at::Tensor document_mask(const at::Tensor& position_ids, int64_t window, const at::TensorOptions& options) {
  // An example starts where its position is 0; token i attends to j in its own example at j <= i
  // (and, windowed, i - j < window: positions count from the example's start, so the difference is
  // the same).
  const at::Tensor pos = position_ids.to(at::kCPU);
  const at::Tensor example = (pos == 0).cumsum(1);  // (b, s)
  at::Tensor attend = example.unsqueeze(2) == example.unsqueeze(1);
  const at::Tensor i = pos.unsqueeze(2), j = pos.unsqueeze(1);
  attend = attend.logical_and(j <= i);
  if (window > 0) attend = attend.logical_and(i - j < window);
  at::Tensor mask = at::zeros(attend.sizes(), at::TensorOptions().dtype(options.dtype()));
  mask.masked_fill_(attend.logical_not(), -std::numeric_limits<double>::infinity());
  return mask.unsqueeze(1).to(options.device());  // (b, 1, s, s)
}

bool fused_attention_reads_grouped_heads(const at::Tensor& q, const at::Tensor& mask) {
  if (!compat::available_sdpa || !compat::sdpa_gqa || mask.defined()) return false;
  return q.is_cpu() || q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf;
}

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                            plan::Attention kind) {
  const double scale = 1.0 / std::sqrt(double(q.size(-1)));
  FT_CHECK(!mask.defined() || mask.scalar_type() == q.scalar_type(), ErrorKind::Internal,
           "attention mask in " << mask.scalar_type() << " for queries in " << q.scalar_type());
  if (kind == plan::Attention::Flash && compat::available_sdpa) return compat::sdpa(q, k, v, mask, true, scale);
  // Eager, as Transformers' eager path: scores in the compute dtype plus the additive mask (which
  // keeps nothing for backward), softmax in (at least) fp32.
  FT_CHECK(mask.defined(), ErrorKind::Internal, "eager attention needs attention_mask()");
  // One (b, heads, s, s) scores tensor beside the probabilities: scaled and masked in place (autograd
  // keeps q and k for the product, nothing of the scores), released once softmax has read it.
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1));
  scores.mul_(scale).add_(mask);
  at::Tensor probs = at::softmax(scores, -1, at::promote_types(q.scalar_type(), at::kFloat)).to(q.scalar_type());
  scores.reset();
  return at::matmul(probs, v);
}

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t window,
                            plan::Attention kind) {
  return causal_attention(q, k, v, attention_mask(q.size(2), window, kind, q.options()), kind);
}

namespace {
int index_of(const std::vector<plan::ModelSpec::Tensor>& specs, const std::string& suffix) {
  for (size_t i = 0; i < specs.size(); ++i)
    if (ends_with(specs[i].name, suffix)) return int(i);
  return -1;
}
}  // namespace

LlamaModel::LlamaModel(plan::ModelSpec spec, const at::TensorOptions& options, plan::Attention attention)
    : spec_(std::move(spec)), attention_(attention) {
  spec_.validate("model");
  for (const plan::ModelSpec::Unit& u : spec_.units()) {
    UnitParams up;
    up.name = u.name;
    up.specs = u.tensors;
    up.numel = u.numel();
    units_.push_back(std::move(up));
    bind(units_.size() - 1, at::empty({units_.back().numel}, options));
  }
  const auto& layer = units_[1].specs;
  LayerTensors& s = layer_tensors_;
  s.q = index_of(layer, "q_proj.weight");
  s.k = index_of(layer, "k_proj.weight");
  s.v = index_of(layer, "v_proj.weight");
  s.o = index_of(layer, "o_proj.weight");
  s.gate = index_of(layer, "gate_proj.weight");
  s.up = index_of(layer, "up_proj.weight");
  s.down = index_of(layer, "down_proj.weight");
  s.ln1 = index_of(layer, "input_layernorm.weight");
  s.ln2 = index_of(layer, "post_attention_layernorm.weight");
  s.qb = index_of(layer, "q_proj.bias");
  s.kb = index_of(layer, "k_proj.bias");
  s.vb = index_of(layer, "v_proj.bias");
  s.ob = index_of(layer, "o_proj.bias");
  s.gb = index_of(layer, "gate_proj.bias");
  s.ub = index_of(layer, "up_proj.bias");
  s.db = index_of(layer, "down_proj.bias");
  s.qn = index_of(layer, "q_norm.weight");
  s.kn = index_of(layer, "k_norm.weight");
}

void LlamaModel::bind(size_t u, const at::Tensor& flat) {
  UnitParams& up = units_.at(u);
  FT_CHECK(flat.dim() == 1 && flat.numel() >= up.numel, ErrorKind::Internal,
           "bind(" << up.name << "): a 1-D buffer of at least " << up.numel << " elements is needed, got " << flat.sizes());
  up.flat = flat;
  up.params.clear();
  int64_t offset = 0;
  for (size_t i = 0; i < up.specs.size(); ++i) {
    const auto& t = up.specs[i];
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    up.params.push_back(flat.narrow(0, offset, n).view(t.shape));
    by_name_[t.name] = {u, i};
    offset += n;
  }
}

void LlamaModel::bind_params(size_t u, const at::Tensor& flat, std::vector<at::Tensor> params) {
  UnitParams& up = units_.at(u);
  FT_CHECK(params.size() == up.specs.size(), ErrorKind::Internal,
           "bind_params(" << up.name << "): " << params.size() << " tensors for " << up.specs.size() << " parameters");
  for (size_t i = 0; i < params.size(); ++i)
    FT_CHECK(params[i].sizes() == c10::IntArrayRef(up.specs[i].shape), ErrorKind::Internal,
             "bind_params(" << up.name << "): " << up.specs[i].name << " has shape " << params[i].sizes());
  up.flat = flat;
  up.params = std::move(params);
}

const at::Tensor& LlamaModel::param(const std::string& name) const {
  auto it = by_name_.find(name);
  FT_CHECK_ARG(it != by_name_.end(), "the model has no parameter \"" << name << "\"");
  return units_[it->second.first].params[it->second.second];
}

ForwardContext LlamaModel::context(int64_t seq_len) const { return cached_context(seq_len, /*masks=*/true); }

const ForwardContext& LlamaModel::cached_context(int64_t seq_len, bool masks) const {
  const at::Tensor& any = units_.front().flat;
  const at::Tensor& cached = context_cache_.rope.cos;
  if (!cached.defined() || context_cache_.seq_len != seq_len || cached.device() != any.device() ||
      cached.scalar_type() != any.scalar_type()) {
    ForwardContext c;
    c.rope = rope_table(spec_, seq_len, any.options());
    c.seq_len = seq_len;
    context_cache_ = std::move(c);
    context_masks_ = false;
  }
  if (masks && !context_masks_) {
    context_cache_.causal_mask = attention_mask(seq_len, 0, attention_, any.options());
    // A window no shorter than the sequence masks nothing beyond causality: those layers use causal_mask.
    if (spec_.sliding_window > 0 && seq_len > spec_.sliding_window)
      context_cache_.window_mask = attention_mask(seq_len, spec_.sliding_window, attention_, any.options());
    context_masks_ = true;
  }
  return context_cache_;
}

namespace {
// The (b, 1, s, d) cos and sin of packed examples (positions restart at 0 where an example starts):
// each token's row of the table of its example's length — `whole`, the table of an s-token
// sequence, unless the length changes the frequencies (rope_scaling_length), as dynamic and longrope
// scaling do. pos: (b, s) int64 on the CPU, in [0, s).
RopeTable example_rope(const plan::ModelSpec& spec, const RopeTable& whole, const at::Tensor& pos) {
  const int64_t b = pos.size(0), s = pos.size(1);
  const at::Tensor example = (pos == 0).cumsum(1);  // (b, s) which example of its row each token is in
  const at::Tensor length = at::zeros({b, s + 1}, at::kLong).scatter_reduce(1, example, pos + 1, "amax").gather(1, example);
  std::vector<at::Tensor> cos = {whole.cos}, sin = {whole.sin};  // the tables, stacked below
  std::map<int64_t, int64_t> table_of_scaling = {{rope_scaling_length(spec, s), 0}}, table_of_length;
  at::Tensor index = pos.clone();  // (b, s) each token's row in the stacked tables
  const int64_t* len = length.data_ptr<int64_t>();
  int64_t* row = index.data_ptr<int64_t>();
  for (int64_t t = 0; t < b * s; ++t) {
    auto known = table_of_length.find(len[t]);
    if (known == table_of_length.end()) {
      const int64_t scaling = rope_scaling_length(spec, len[t]);
      auto [it, added] = table_of_scaling.emplace(scaling, int64_t(cos.size()));
      if (added) {
        RopeTable own = rope_table(spec, s, scaling, whole.cos.options());
        cos.push_back(own.cos), sin.push_back(own.sin);
      }
      known = table_of_length.emplace(len[t], it->second).first;
    }
    row[t] += known->second * s;
  }
  const at::Tensor rows = index.view({-1}).to(whole.cos.device());
  auto gather = [&](const std::vector<at::Tensor>& t) {
    return (t.size() == 1 ? t[0] : at::cat(t, 0)).index_select(0, rows).view({b, 1, s, t[0].size(-1)});
  };
  return {gather(cos), gather(sin)};
}
}  // namespace

ForwardContext LlamaModel::context(int64_t seq_len, const at::Tensor& position_ids) const {
  if (!position_ids.defined()) return context(seq_len);
  FT_CHECK_ARG(position_ids.dim() == 2 && position_ids.size(1) == seq_len && position_ids.scalar_type() == at::kLong,
               "position_ids must be (batch, " << seq_len << ") int64, got " << position_ids.sizes() << " " << position_ids.scalar_type());
  const ForwardContext& table = cached_context(seq_len, /*masks=*/false);  // positions are < seq_len: the table's rows
  if (context_masks_) {  // a plain forward's masks (an eval set of plain text): not kept through positioned steps,
    context_cache_.causal_mask = at::Tensor();  // whose plan has no s x s mask
    context_cache_.window_mask = at::Tensor();
    context_masks_ = false;
  }
  const at::Tensor pos = position_ids.to(at::kCPU).contiguous();
  FT_CHECK_ARG(pos.numel() == 0 || (pos.min().item<int64_t>() >= 0 && pos.max().item<int64_t>() < seq_len),
               "position_ids must be in [0, " << seq_len << ")");
  ForwardContext c;
  c.seq_len = seq_len;
  c.rope = example_rope(spec_, table.rope, pos);
  c.causal_mask = document_mask(pos, 0, table.rope.cos.options());
  if (spec_.sliding_window > 0 && seq_len > spec_.sliding_window)
    c.window_mask = document_mask(pos, spec_.sliding_window, table.rope.cos.options());
  return c;
}

// (the pad row takes no gradient from its lookups, as Transformers' padding_idx)
at::Tensor LlamaModel::embed(const at::Tensor& ids) const { return at::embedding(units_.front().params[0], ids, spec_.pad_token_id); }

at::Tensor LlamaModel::attention(int64_t i, const at::Tensor& x, const ForwardContext& ctx) const {
  const size_t u = layer_unit(i);
  const int64_t b = x.size(0), s = x.size(1), hd = spec_.head_dim;
  // (b, s, heads, d) -> Qwen3's per-head RMSNorm where the model has one -> (b, heads, s, d)
  auto project = [&](int w, int bias_index, int norm, int64_t heads) {
    at::Tensor y = at::linear(x, p(u, w), bias(u, bias_index)).view({b, s, heads, hd});
    if (norm >= 0) y = rms_norm(y, p(u, norm), spec_.rms_norm_eps);
    return y.transpose(1, 2);
  };
  const LayerTensors& t = layer_tensors_;
  at::Tensor q = apply_rope(project(t.q, t.qb, t.qn, spec_.heads), ctx.rope);
  at::Tensor k = apply_rope(project(t.k, t.kb, t.kn, spec_.kv_heads), ctx.rope);
  at::Tensor v = project(t.v, t.vb, -1, spec_.kv_heads);
  const at::Tensor& mask = spec_.layer_uses_window(i) && ctx.window_mask.defined() ? ctx.window_mask : ctx.causal_mask;
  const int64_t groups = spec_.heads / spec_.kv_heads;
  // Query head h reads kv head h / groups: in place where the fused kernel can (k, v stay
  // (b, hkv, s, d), which is what autograd keeps), else expanded to every query head. The planner
  // counts the same (plan::activation_bytes_per_token_layer).
  const bool grouped_in_kernel = attention_ == plan::Attention::Flash && fused_attention_reads_grouped_heads(q, mask);
  if (groups > 1 && !grouped_in_kernel) {
    k = k.repeat_interleave(groups, 1);
    v = v.repeat_interleave(groups, 1);
  }
  at::Tensor o = causal_attention(q, k, v, mask, attention_);
  o = o.transpose(1, 2).reshape({b, s, spec_.q_dim()});
  return at::linear(o, p(u, layer_tensors_.o), bias(u, layer_tensors_.ob));
}

at::Tensor LlamaModel::layer(int64_t i, const at::Tensor& x, const ForwardContext& ctx) const {
  const size_t u = layer_unit(i);
  at::Tensor h = x + attention(i, rms_norm(x, p(u, layer_tensors_.ln1), spec_.rms_norm_eps), ctx);
  at::Tensor n = rms_norm(h, p(u, layer_tensors_.ln2), spec_.rms_norm_eps);
  at::Tensor gate = at::linear(n, p(u, layer_tensors_.gate), bias(u, layer_tensors_.gb));
  at::Tensor up = at::linear(n, p(u, layer_tensors_.up), bias(u, layer_tensors_.ub));
  return h + at::linear(at::silu(gate) * up, p(u, layer_tensors_.down), bias(u, layer_tensors_.db));
}

at::Tensor LlamaModel::final_norm(const at::Tensor& x) const {
  return rms_norm(x, param("model.norm.weight"), spec_.rms_norm_eps);
}

const at::Tensor& LlamaModel::lm_head_weight() const {
  return spec_.tie_embeddings ? param("model.embed_tokens.weight") : param("lm_head.weight");
}

at::Tensor LlamaModel::forward_hidden(const at::Tensor& ids, const at::Tensor& position_ids) const {
  FT_CHECK_ARG(ids.dim() == 2, "input_ids must be (batch, seq), got " << ids.sizes());
  ForwardContext ctx = context(ids.size(1), position_ids);
  at::Tensor h = embed(ids);
  for (int64_t i = 0; i < spec_.layers; ++i) h = layer(i, h, ctx);
  return final_norm(h);
}

at::Tensor LlamaModel::forward(const at::Tensor& ids, const at::Tensor& position_ids) const {
  return at::linear(forward_hidden(ids, position_ids), lm_head_weight());
}

}  // namespace ftdist::model
