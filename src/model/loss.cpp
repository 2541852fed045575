#include "ftdist/model/loss.h"

#include <torch/csrc/autograd/custom_function.h>

#include "ftdist/core/check.h"

namespace ftdist::model {

at::Tensor shift_labels(const at::Tensor& labels) {
  FT_CHECK_ARG(labels.dim() == 2, "labels must be (batch, seq), got " << labels.sizes());
  const int64_t b = labels.size(0), s = labels.size(1);
  at::Tensor tail = at::full({b, 1}, kIgnoreIndex, labels.options().dtype(at::kLong));
  if (s <= 1) return tail.narrow(1, 0, s);
  return at::cat({labels.narrow(1, 1, s - 1).to(at::kLong), tail}, 1);
}

namespace {
int64_t count_targets(const at::Tensor& targets) { return (targets != kIgnoreIndex).sum().item<int64_t>(); }
// The loss runs in fp32 for bf16/fp16/fp32 logits (as Transformers does) and in fp64 for fp64.
at::ScalarType loss_dtype(at::ScalarType t) { return at::promote_types(t, at::kFloat); }
}  // namespace

at::Tensor causal_lm_loss_sum(const at::Tensor& logits, const at::Tensor& labels) {
  at::Tensor targets = shift_labels(labels).reshape({-1});
  at::Tensor flat = logits.reshape({-1, logits.size(-1)}).to(loss_dtype(logits.scalar_type()));
  return at::cross_entropy_loss(flat, targets, {}, at::Reduction::Sum, kIgnoreIndex, 0.0);
}

int64_t counted_targets(const at::Tensor& labels) { return count_targets(shift_labels(labels)); }

LossSum causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels) {
  return {causal_lm_loss_sum(logits, labels), counted_targets(labels)};
}

namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Summed cross-entropy of linear(hidden, weight) against targets, chunk by chunk.
struct ChunkedCrossEntropy : public torch::autograd::Function<ChunkedCrossEntropy> {
  static at::Tensor chunk_logits(const at::Tensor& h, const at::Tensor& w) {
    return at::linear(h, w).to(loss_dtype(h.scalar_type()));
  }

  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                            const at::Tensor& targets, int64_t chunk) {
    at::Tensor sum = at::zeros({}, hidden.options().dtype(loss_dtype(hidden.scalar_type())));
    for (int64_t start = 0; start < hidden.size(0); start += chunk) {
      int64_t n = std::min(chunk, hidden.size(0) - start);
      at::Tensor logits = chunk_logits(hidden.narrow(0, start, n), weight);
      sum += at::cross_entropy_loss(logits, targets.narrow(0, start, n), {}, at::Reduction::Sum, kIgnoreIndex, 0.0);
    }
    ctx->save_for_backward({hidden, weight, targets});
    ctx->saved_data["chunk"] = chunk;
    return sum;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &hidden = saved[0], &weight = saved[1], &targets = saved[2];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const at::Tensor g = grad_out[0];
    at::Tensor grad_hidden = at::empty_like(hidden);
    at::Tensor grad_weight = at::zeros(weight.sizes(), weight.options().dtype(loss_dtype(weight.scalar_type())));
    for (int64_t start = 0; start < hidden.size(0); start += chunk) {
      int64_t n = std::min(chunk, hidden.size(0) - start);
      at::Tensor h = hidden.narrow(0, start, n), t = targets.narrow(0, start, n);
      // d(sum CE)/d(logits) = softmax - onehot on counted rows, 0 on ignored ones.
      at::Tensor grad = at::softmax(chunk_logits(h, weight), -1);
      at::Tensor valid = t != kIgnoreIndex;
      grad.scatter_add_(1, t.clamp_min(0).unsqueeze(1), at::full({n, 1}, -1.0, grad.options()));
      grad = grad * valid.unsqueeze(1).to(grad.scalar_type()) * g;  // (n, V) in the loss dtype
      grad_hidden.narrow(0, start, n).copy_(at::matmul(grad.to(hidden.scalar_type()), weight));
      // accumulated in the loss dtype, in place: no (V, h) temporary per chunk
      grad_weight.addmm_(grad.t(), h.to(grad_weight.scalar_type()));
    }
    return {grad_hidden, grad_weight.to(weight.scalar_type()), at::Tensor(), at::Tensor()};
  }
};
}  // namespace

at::Tensor chunked_causal_lm_loss_sum(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                      int64_t chunk_tokens) {
  FT_CHECK_ARG(chunk_tokens >= 1, "loss chunk size must be >= 1, got " << chunk_tokens);
  at::Tensor targets = shift_labels(labels).reshape({-1});
  return ChunkedCrossEntropy::apply(hidden.reshape({-1, hidden.size(-1)}), weight, targets, chunk_tokens);
}

LossSum chunked_causal_lm_loss(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                               int64_t chunk_tokens) {
  return {chunked_causal_lm_loss_sum(hidden, weight, labels, chunk_tokens), counted_targets(labels)};
}

}  // namespace ftdist::model
