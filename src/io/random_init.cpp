#include "ftdist/io/random_init.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

#include "ftdist/core/check.h"

namespace ftdist::io {
namespace {

// splitmix64's finalizer: a bijection of 64-bit integers with full avalanche.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t unit_key(uint64_t seed, uint64_t unit) { return mix(mix(seed) ^ (unit * 0xd1b54a32d192ed03ull)); }

// Both normals of pair p (elements 2p and 2p + 1) of the stream `key`.
void normal_pair(uint64_t key, uint64_t p, double* z0, double* z1) {
  const uint64_t a = mix(key + 2 * p), b = mix(key + 2 * p + 1);
  const double u1 = double((a >> 11) + 1) * 0x1.0p-53;  // (0, 1]: the log is finite
  const double u2 = double(b >> 11) * 0x1.0p-53;        // [0, 1)
  const double r = std::sqrt(-2.0 * std::log(u1)), t = 2.0 * M_PI * u2;
  *z0 = r * std::cos(t);
  *z1 = r * std::sin(t);
}

// dst[k] = std * z(key, first + k), k < n.
void fill_normal(uint64_t key, int64_t first, int64_t n, double std, float* dst) {
  at::parallel_for(0, n, 1 << 14, [&](int64_t lo, int64_t hi) {
    for (int64_t k = lo; k < hi;) {
      const int64_t i = first + k;
      double z[2];
      normal_pair(key, uint64_t(i) >> 1, &z[0], &z[1]);
      dst[k++] = float(std * z[i & 1]);
      if ((i & 1) == 0 && k < hi) dst[k++] = float(std * z[1]);  // the pair's second, while here
    }
  });
}

constexpr int64_t kChunk = 1 << 20;  // elements generated at a time when `out` is not fp32 on the CPU

}  // namespace

float RandomInit::normal(uint64_t seed, uint64_t unit, int64_t index) {
  double z[2];
  normal_pair(unit_key(seed, unit), uint64_t(index) >> 1, &z[0], &z[1]);
  return float(z[index & 1]);
}

RandomInit::RandomInit(plan::ModelSpec spec, std::string config_text, uint64_t seed)
    : spec_(std::move(spec)), units_(spec_.units()), config_text_(std::move(config_text)),
      name_("random init (seed " + std::to_string(seed) + ")"), seed_(seed) {}

void RandomInit::read_unit_range(size_t unit, int64_t begin, const at::Tensor& out) const {
  FT_CHECK(unit < units_.size(), ErrorKind::Internal, "random init: unit " << unit << " of " << units_.size());
  FT_CHECK_ARG(out.is_contiguous() && begin >= 0, "random init: the output must be contiguous, the range start >= 0");
  const bool direct = out.device().is_cpu() && out.scalar_type() == at::kFloat;
  at::Tensor chunk = direct ? at::Tensor() : at::empty({std::min<int64_t>(kChunk, out.numel())}, at::kFloat);
  const at::Tensor flat = out.view({-1});
  const uint64_t key = unit_key(seed_, unit);
  // The unit's tensors in flat order, then zero padding: [offset, offset + numel) each.
  auto fill = [&](int64_t lo, int64_t hi, float* dst) {  // unit elements [lo, hi) into dst
    int64_t offset = 0;
    for (const plan::ModelSpec::Tensor& t : units_[unit].tensors) {
      const int64_t numel = plan::shape_numel(t.shape);
      const int64_t a = std::max(lo, offset), b = std::min(hi, offset + numel);
      if (a < b) {
        if (t.shape.size() >= 2) fill_normal(key, a, b - a, spec_.initializer_range, dst + (a - lo));
        else std::fill(dst + (a - lo), dst + (b - lo), t.name.find("norm") != std::string::npos ? 1.0f : 0.0f);
        if (spec_.pad_token_id >= 0 && t.name == "model.embed_tokens.weight") {  // the pad row: 0
          const int64_t p0 = std::max(a, offset + spec_.pad_token_id * spec_.hidden);
          const int64_t p1 = std::min(b, offset + (spec_.pad_token_id + 1) * spec_.hidden);
          if (p0 < p1) std::fill(dst + (p0 - lo), dst + (p1 - lo), 0.0f);
        }
      }
      offset += numel;
    }
    if (hi > offset) std::fill(dst + (std::max(lo, offset) - lo), dst + (hi - lo), 0.0f);  // padding
  };
  if (direct) return fill(begin, begin + out.numel(), flat.data_ptr<float>());
  for (int64_t k = 0; k < out.numel(); k += kChunk) {
    const int64_t n = std::min(kChunk, out.numel() - k);
    fill(begin + k, begin + k + n, chunk.data_ptr<float>());
    flat.narrow(0, k, n).copy_(chunk.narrow(0, 0, n));
  }
}

}  // namespace ftdist::io
