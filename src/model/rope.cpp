#include "ftdist/model/rope.h"

#include <cmath>

#include "ftdist/core/check.h"

namespace ftdist::model {

at::Tensor rope_inv_freq(const plan::ModelSpec& spec) {
  const int64_t dim = spec.rotary_dim();
  at::Tensor exponent = at::arange(0, dim, 2, at::TensorOptions().dtype(at::kLong)).to(at::kFloat) / double(dim);
  at::Tensor inv_freq = at::pow(spec.rope_theta, exponent).reciprocal();
  if (spec.rope_type == "llama3") {
    // Llama 3.1: long wavelengths divided by `factor`, short ones kept, a smooth blend between.
    const double factor = spec.rope_factor;
    const double old_len = double(spec.rope_original_max_position);
    const double low_wavelen = old_len / spec.rope_low_freq_factor;
    const double high_wavelen = old_len / spec.rope_high_freq_factor;
    at::Tensor wavelen = (2.0 * M_PI) / inv_freq;
    at::Tensor scaled = at::where(wavelen > low_wavelen, inv_freq / factor, inv_freq);
    at::Tensor smooth = (old_len / wavelen - spec.rope_low_freq_factor) /
                        (spec.rope_high_freq_factor - spec.rope_low_freq_factor);
    at::Tensor smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
    at::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    inv_freq = at::where(medium, smoothed, scaled);
  } else {
    FT_CHECK_ARG(spec.rope_type == "default", "unsupported rope_type " << spec.rope_type);
  }
  return inv_freq;
}

RopeTable rope_table(const plan::ModelSpec& spec, int64_t seq_len, const at::TensorOptions& options) {
  at::Tensor inv_freq = rope_inv_freq(spec);
  at::Tensor pos = at::arange(seq_len, at::TensorOptions().dtype(at::kLong)).to(at::kFloat);
  at::Tensor freqs = pos.unsqueeze(-1) * inv_freq.unsqueeze(0);  // (s, d/2), fp32
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  at::TensorOptions out = options.requires_grad(false);
  return {emb.cos().to(out), emb.sin().to(out)};
}

at::Tensor apply_rope(const at::Tensor& x, const RopeTable& t) {
  const int64_t rotated_dims = t.cos.size(-1);
  if (rotated_dims < x.size(-1))  // partial rotary: the tail of each head passes through
    return at::cat({apply_rope(x.narrow(-1, 0, rotated_dims), t), x.narrow(-1, rotated_dims, x.size(-1) - rotated_dims)}, -1);
  const int64_t half = x.size(-1) / 2;
  at::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  at::Tensor rotated = at::cat({x2.neg(), x1}, -1);
  return x * t.cos + rotated * t.sin;  // (s, d) broadcasts over (b, h, s, d)
}

}  // namespace ftdist::model
