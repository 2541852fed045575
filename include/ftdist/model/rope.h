// Rotary position embeddings, computed the way Transformers' Llama/Mistral/Qwen2/Qwen3/Phi3 classes
// compute them: inv_freq = 1 / theta^(2i/d) in fp32 (scaled by the config's rope_type: llama3,
// linear, dynamic, yarn, longrope), angles = position x inv_freq, cos/sin of [angles, angles] (times
// yarn's or longrope's attention factor), applied as x*cos + rotate_half(x)*sin. d is
// spec.rotary_dim(): head_dim, or with Phi-3's partial_rotary_factor the leading d dimensions of each
// head (the rest pass through unchanged).
//
// Two scalings depend on the sequence's length: dynamic (the base grows beyond
// max_position_embeddings) and longrope (the long factors beyond the pre-training context). A
// sequence takes the frequencies of its own length; examples packed in one row each take those of
// their own length (model::LlamaModel::context), so that packing changes nothing. (Transformers,
// given packed position_ids, takes the longest example's length for the whole batch, and its dynamic
// scaling keeps the longest length seen so far; one sequence per forward is the same in both.)
#pragma once

#include <ATen/ATen.h>

#include "ftdist/plan/model_spec.h"

namespace ftdist::model {

// (rotary_dim / 2,) fp32 inverse frequencies, with the config's rope scaling, for a sequence of
// `seq_len` tokens. The length matters to dynamic scaling (beyond max_position_embeddings the base
// grows with it: Transformers' dynamic NTK for the sequence at hand) and to longrope (the long
// factors beyond rope_original_max_position, the short ones up to it); 0: the plain frequencies.
at::Tensor rope_inv_freq(const plan::ModelSpec& spec, int64_t seq_len = 0);

// The length that decides the frequencies of a `length`-token sequence: sequences with the same
// scaling length have the same table. 0 where the frequencies are the plain ones (every length
// without a length-dependent scaling).
int64_t rope_scaling_length(const plan::ModelSpec& spec, int64_t length);

struct RopeTable {
  at::Tensor cos;  // (rows, rotary_dim), in the compute dtype
  at::Tensor sin;
};
// Rows for positions 0..seq_len-1 of a seq_len-token sequence.
RopeTable rope_table(const plan::ModelSpec& spec, int64_t seq_len, const at::TensorOptions& options);
// Rows for positions 0..rows-1 with the frequencies of a sequence whose scaling length
// (rope_scaling_length) is `scaling_length`.
RopeTable rope_table(const plan::ModelSpec& spec, int64_t rows, int64_t scaling_length, const at::TensorOptions& options);

// x: (b, heads, s, head_dim); rotates its first table.cos.size(-1) dimensions.
at::Tensor apply_rope(const at::Tensor& x, const RopeTable& table);

}  // namespace ftdist::model
