// Rotary position embeddings, computed the way Transformers' Llama/Mistral/Qwen2/Qwen3/Phi3 classes
// compute them: inv_freq = 1 / theta^(2i/d) in fp32 (llama3 scaling optional), angles = position x
// inv_freq, cos/sin of [angles, angles], applied as x*cos + rotate_half(x)*sin. d is
// spec.rotary_dim(): head_dim, or with Phi-3's partial_rotary_factor the leading d dimensions of each
// head (the rest pass through unchanged).
#pragma once

#include <ATen/ATen.h>

#include "ftdist/plan/model_spec.h"

namespace ftdist::model {

// (rotary_dim / 2,) fp32 inverse frequencies, with the config's rope scaling.
at::Tensor rope_inv_freq(const plan::ModelSpec& spec);

struct RopeTable {
  at::Tensor cos;  // (s, rotary_dim), in the compute dtype
  at::Tensor sin;
};
RopeTable rope_table(const plan::ModelSpec& spec, int64_t seq_len, const at::TensorOptions& options);

// x: (b, heads, s, head_dim); rotates its first table.cos.size(-1) dimensions.
at::Tensor apply_rope(const at::Tensor& x, const RopeTable& table);

}  // namespace ftdist::model
