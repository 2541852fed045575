// Rotary position embeddings, computed the way Transformers' Llama/Mistral/Qwen2/Qwen3/Phi3 classes
// compute them: inv_freq = 1 / theta^(2i/d) in fp32 (scaled by the config's rope_type: llama3,
// linear, dynamic, yarn), angles = position x inv_freq, cos/sin of [angles, angles] (times yarn's
// attention factor), applied as x*cos + rotate_half(x)*sin. d is
// spec.rotary_dim(): head_dim, or with Phi-3's partial_rotary_factor the leading d dimensions of each
// head (the rest pass through unchanged).
#pragma once

#include <ATen/ATen.h>

#include "ftdist/plan/model_spec.h"

namespace ftdist::model {

// (rotary_dim / 2,) fp32 inverse frequencies, with the config's rope scaling. `seq_len` matters to
// dynamic scaling only: beyond max_position_embeddings the base grows with it (Transformers'
// dynamic NTK, computed for the sequence at hand; within it, the plain frequencies).
at::Tensor rope_inv_freq(const plan::ModelSpec& spec, int64_t seq_len = 0);

struct RopeTable {
  at::Tensor cos;  // (s, rotary_dim), in the compute dtype
  at::Tensor sin;
};
RopeTable rope_table(const plan::ModelSpec& spec, int64_t seq_len, const at::TensorOptions& options);

// x: (b, heads, s, head_dim); rotates its first table.cos.size(-1) dimensions.
at::Tensor apply_rope(const at::Tensor& x, const RopeTable& table);

}  // namespace ftdist::model
