#include "ftdist/model/rope.h"

#include <algorithm>
#include <cmath>

#include "ftdist/core/check.h"

namespace ftdist::model {

namespace {

// YaRN: per dimension pair, the plain frequency (extrapolation) for the fast-rotating ones, the
// frequency divided by `factor` (interpolation) for the slow ones, a linear ramp between the pairs
// that turn beta_fast and beta_slow times over the pre-training context.
at::Tensor yarn_inv_freq(const plan::ModelSpec& spec, const at::Tensor& inv_freq) {
  const double dim = double(spec.rotary_dim()), base = spec.rope_theta;
  auto correction_dim = [&](double rotations) {
    return dim * std::log(double(spec.rope_original_max_position) / (rotations * 2 * M_PI)) / (2 * std::log(base));
  };
  double low = correction_dim(spec.rope_beta_fast), high = correction_dim(spec.rope_beta_slow);
  if (spec.rope_truncate) low = std::floor(low), high = std::ceil(high);
  low = std::max(low, 0.0), high = std::min(high, dim - 1);
  if (low == high) high += 0.001;
  const at::Tensor ramp = ((at::arange(inv_freq.size(0), at::TensorOptions().dtype(at::kFloat)) - low) / (high - low)).clamp(0, 1);
  const at::Tensor extrapolation = 1 - ramp;
  return inv_freq / spec.rope_factor * (1 - extrapolation) + inv_freq * extrapolation;
}

}  // namespace

at::Tensor rope_inv_freq(const plan::ModelSpec& spec, int64_t seq_len) {
  const int64_t dim = spec.rotary_dim();
  at::Tensor exponent = at::arange(0, dim, 2, at::TensorOptions().dtype(at::kLong)).to(at::kFloat) / double(dim);
  double theta = spec.rope_theta;
  if (spec.rope_type == "dynamic" && seq_len > spec.max_position) {  // NTK: a larger base for the longer sequence
    const double f = spec.rope_factor;
    theta *= std::pow(f * double(seq_len) / double(spec.max_position) - (f - 1), double(dim) / double(dim - 2));
  }
  if (spec.rope_type == "longrope") {  // per-frequency divisors: the long set beyond the pre-training context
    const std::vector<double>& f = seq_len > spec.rope_original_max_position ? spec.rope_long_factor : spec.rope_short_factor;
    FT_CHECK_ARG(int64_t(f.size()) * 2 == dim, "longrope needs " << dim / 2 << " factors, got " << f.size());
    const at::Tensor ext = at::tensor(f, at::TensorOptions().dtype(at::kDouble)).to(at::kFloat);
    return (ext * at::pow(theta, exponent)).reciprocal();
  }
  at::Tensor inv_freq = at::pow(theta, exponent).reciprocal();
  if (spec.rope_type == "linear") {
    inv_freq = inv_freq / spec.rope_factor;
  } else if (spec.rope_type == "yarn") {
    inv_freq = yarn_inv_freq(spec, inv_freq);
  } else if (spec.rope_type == "llama3") {
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
    FT_CHECK_ARG(spec.rope_type == "default" || spec.rope_type == "dynamic", "unsupported rope_type " << spec.rope_type);
  }
  return inv_freq;
}

int64_t rope_scaling_length(const plan::ModelSpec& spec, int64_t length) {
  if (spec.rope_type == "longrope") return length > spec.rope_original_max_position ? spec.rope_original_max_position + 1 : 0;
  if (spec.rope_type == "dynamic") return length > spec.max_position ? length : 0;
  return 0;
}

RopeTable rope_table(const plan::ModelSpec& spec, int64_t seq_len, const at::TensorOptions& options) {
  return rope_table(spec, seq_len, rope_scaling_length(spec, seq_len), options);
}

RopeTable rope_table(const plan::ModelSpec& spec, int64_t rows, int64_t scaling_length, const at::TensorOptions& options) {
  at::Tensor inv_freq = rope_inv_freq(spec, scaling_length);
  at::Tensor pos = at::arange(rows, at::TensorOptions().dtype(at::kLong)).to(at::kFloat);
  at::Tensor freqs = pos.unsqueeze(-1) * inv_freq.unsqueeze(0);  // (s, d/2), fp32
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  at::TensorOptions out = options.requires_grad(false);
  const double scale = spec.rope_attention_factor;  // (yarn, longrope; 1 otherwise)
  return {(emb.cos() * scale).to(out), (emb.sin() * scale).to(out)};
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
