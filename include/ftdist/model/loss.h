// Causal-LM cross-entropy as Transformers computes it: position t predicts labels[t + 1], labels of
// -100 are ignored, the loss is computed on fp32 logits, and the mean is over the counted tokens.
//
//   LossSum l = causal_lm_loss(logits, labels);                       // plain: (b, s, V) logits
//   LossSum l = chunked_causal_lm_loss(hidden, lm_head_w, labels, 1024); // never all fp32 logits
//   at::Tensor mean = l.sum / l.count;
#pragma once

#include <ATen/ATen.h>

namespace ftdist::model {

constexpr int64_t kIgnoreIndex = -100;

struct LossSum {
  at::Tensor sum;     // fp32 scalar, differentiable: the summed token losses
  int64_t count = 0;  // tokens that counted
};

// labels (b, s) -> the (b, s) targets: labels shifted left by one, -100 at the last position.
at::Tensor shift_labels(const at::Tensor& labels);

LossSum causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels);
// The two halves of it: the differentiable sum (no host read, so no wait for a device), and the
// number of labels that count (read on the host; cheap for labels still on the CPU).
at::Tensor causal_lm_loss_sum(const at::Tensor& logits, const at::Tensor& labels);
int64_t counted_targets(const at::Tensor& labels);

// The same loss from the final hidden states (b, s, h) and the lm_head weight (V, h), in chunks of
// `chunk_tokens` tokens: fp32 logits exist for one chunk at a time, in forward and (recomputed) in
// backward. Same value and gradients as causal_lm_loss(at::linear(hidden, weight), labels).
LossSum chunked_causal_lm_loss(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                               int64_t chunk_tokens);
// Its summed loss alone (no count: no host wait), what training takes (fsdp::FsdpConfig::loss_chunk).
at::Tensor chunked_causal_lm_loss_sum(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                      int64_t chunk_tokens);

}  // namespace ftdist::model
