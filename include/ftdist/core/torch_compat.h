// Every difference between LibTorch versions lives here, and only here (DESIGN.md §9).
// ftdist is built and tested against the LibTorch of PyTorch 2.11 (scripts/setup.sh pins it).
#pragma once

#include <ATen/ATen.h>
#include <torch/version.h>  // TORCH_VERSION_MAJOR / TORCH_VERSION_MINOR

#define FTDIST_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

static_assert(FTDIST_TORCH_AT_LEAST(2, 1), "ftdist needs LibTorch 2.1 or newer");

namespace ftdist::compat {

// Fused scaled-dot-product attention (flash / memory-efficient kernels on GPU, math on CPU) where
// this LibTorch has it; `available_sdpa` says whether it does. q (b, h, s, d), k/v (b, h, s_k, d);
// `mask` (s, s_k) bool (true = attend) or undefined with `causal`.
constexpr bool available_sdpa = FTDIST_TORCH_AT_LEAST(2, 0);
inline at::Tensor sdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                       bool causal, double scale) {
#if FTDIST_TORCH_AT_LEAST(2, 1)
  return at::scaled_dot_product_attention(q, k, v, mask.defined() ? c10::optional<at::Tensor>(mask) : c10::nullopt, 0.0,
                                          causal && !mask.defined(), scale);
#else
  static_assert(FTDIST_TORCH_AT_LEAST(2, 1), "the scale argument of scaled_dot_product_attention needs LibTorch 2.1");
  return at::Tensor();
#endif
}

// Tensor::is_contiguous() plus "dense and in row-major order", which is what the communication
// layer hands to MPI/NCCL as a raw pointer.
inline bool is_dense_contiguous(const at::Tensor& t) {
  return t.is_contiguous() && !t.is_sparse() && t.layout() == at::kStrided;
}

}  // namespace ftdist::compat
