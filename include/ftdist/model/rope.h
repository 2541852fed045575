// Rotary position embeddings, computed the way Transformers' Llama/Mistral/Qwen2 classes compute
// them: inv_freq = 1 / theta^(2i/d) in fp32 (llama3 scaling optional), angles = position x inv_freq,
// cos/sin of [angles, angles], applied as x*cos + rotate_half(x)*sin.
#pragma once

#include <ATen/ATen.h>

#include "ftdist/plan/model_spec.h"

namespace ftdist::model {

// (head_dim / 2,) fp32 inverse frequencies, with the config's rope scaling.
at::Tensor rope_inv_freq(const plan::ModelSpec& spec);

struct RopeTable {
  at::Tensor cos;  // (s, head_dim), in the compute dtype
  at::Tensor sin;
};
RopeTable rope_table(const plan::ModelSpec& spec, int64_t seq_len, const at::TensorOptions& options);

// x: (b, heads, s, head_dim)
at::Tensor apply_rope(const at::Tensor& x, const RopeTable& table);

}  // namespace ftdist::model
