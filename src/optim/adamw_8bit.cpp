// 8-bit AdamW on flat shards: the dynamic maps, the CPU loop over blocks (at::parallel_for) and the
// dispatch to kernels/adamw_8bit.cu for CUDA tensors.
#include "ftdist/optim/adamw_8bit.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "adamw_scalars.h"
#include "ftdist/core/check.h"
#ifdef FTDIST_WITH_KERNELS
#include <c10/cuda/CUDAStream.h>

#include "adamw_8bit.cuh"
#include "ftdist/core/cuda_check.h"
#endif

namespace ftdist::optim {
namespace {

constexpr int64_t kBlock = plan::kQuantBlock;

std::array<float, 256> make_dynamic_map(bool is_signed) {
  std::vector<double> v;
  double scale = 1e-6;  // 10^(e - 6), by exact steps
  for (int e = 0; e < 7; ++e, scale *= 10) {
    const int count = is_signed ? 1 << e : 1 << (e + 1);
    for (int k = 0; k < count; ++k) {  // midpoints of linspace(0.1, 1, count + 1)
      const double lo = 0.1 + 0.9 * k / count, hi = 0.1 + 0.9 * (k + 1) / count;
      v.push_back(scale * (lo + hi) / 2);
      if (is_signed) v.push_back(-scale * (lo + hi) / 2);
    }
  }
  v.push_back(0.0);
  v.push_back(1.0);
  FT_CHECK(v.size() == 256, ErrorKind::Internal, "dynamic map of " << v.size() << " values");
  std::sort(v.begin(), v.end());
  std::array<float, 256> out;
  for (int i = 0; i < 256; ++i) out[size_t(i)] = float(v[size_t(i)]);
  return out;
}

// Floats as order-preserving unsigned keys, and back.
uint32_t float_key(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
float key_float(uint32_t k) {
  const uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// std::lower_bound over the map, started from a table: for each of the 2^16 ranges of floats that
// share their key's top 16 bits, the lower bound of the range's smallest float. A range is narrower
// than the map's code spacing, so the walk from there takes a step or two instead of 8 halvings.
struct LowerBound {
  const std::array<float, 256>& map;
  std::vector<uint16_t> start;
  explicit LowerBound(const std::array<float, 256>& m) : map(m), start(size_t(1) << 16) {
    for (uint32_t t = 0; t < (1u << 16); ++t)
      start[t] = uint16_t(std::lower_bound(map.begin(), map.end(), key_float(t << 16)) - map.begin());
  }
  int operator()(float x) const {
    int i = start[float_key(x) >> 16];
    while (i < 256 && map[size_t(i)] < x) ++i;
    return i;
  }
};

const LowerBound& lower_bound_of(bool is_signed) {
  static const LowerBound s(dynamic_map(true)), u(dynamic_map(false));
  return is_signed ? s : u;
}

// The index of the code nearest x in the sorted map (ties: the lower one; NaN: code 0), as the kernel's.
int nearest_code(const std::array<float, 256>& map, const LowerBound& bound, float x) {
  if (std::isnan(x)) return 0;
  const int lo = bound(x);
  if (lo == 256) return 255;
  if (lo == 0) return 0;
  return (x - map[size_t(lo - 1)] <= map[size_t(lo)] - x) ? lo - 1 : lo;
}

struct Quantized {  // one moment: stored codes and per-block absmax
  uint8_t* q;
  float* absmax;
  const std::array<float, 256>& map;
  const LowerBound& bound;
  int zero;
  float value(int64_t i, float scale) const { return map[uint8_t(q[i] + zero)] * scale; }
  void store(int64_t i, float x, float scale) { q[i] = uint8_t(nearest_code(map, bound, scale > 0.f ? x / scale : 0.f) - zero); }
};

// Block `blk` of [0, n): the fp32 update of master and moments, then requantization.
template <typename T, typename G>
void block_step(T* p, Quantized m, Quantized v, const G* g, c10::BFloat16* out, const std::vector<Segment>& segs, int64_t blk,
                int64_t n, const AdamWScalars& s_decay, const AdamWScalars& s) {
  const int64_t begin = blk * kBlock, end = std::min(n, begin + kBlock);
  float mf[kBlock], vf[kBlock], m_max = 0.f, v_max = 0.f;
  const float m_scale = m.absmax[blk], v_scale = v.absmax[blk];
  auto seg = std::upper_bound(segs.begin(), segs.end(), begin, [](int64_t i, const Segment& x) { return i < x.end; });
  for (int64_t i = begin; i < end; ++i) {
    while (i >= seg->end) ++seg;
    const float gi = static_cast<float>(g[i]);
    float pi = static_cast<float>(p[i]) * (seg->decay ? s_decay.decay : 1.f);
    const float mi = m.value(i, m_scale) * s.beta1 + gi * s.omb1;
    const float vi = v.value(i, v_scale) * s.beta2 + s.omb2 * gi * gi;
    const float denom = std::sqrt(vi) / s.bc2_sqrt + s.eps;
    pi = pi + (-s.step_size) * (mi / denom);
    p[i] = static_cast<T>(pi);
    if (out) out[i] = c10::BFloat16(pi);
    mf[i - begin] = mi, vf[i - begin] = vi;
    m_max = std::max(m_max, std::fabs(mi)), v_max = std::max(v_max, vi);
  }
  m.absmax[blk] = m_max, v.absmax[blk] = v_max;
  for (int64_t i = begin; i < end; ++i) m.store(i, mf[i - begin], m_max), v.store(i, vf[i - begin], v_max);
}

template <typename T, typename G>
void adamw_8bit_cpu(const at::Tensor& master, const std::vector<at::Tensor>& st, const at::Tensor& grad, const at::Tensor& out,
                    const std::vector<Segment>& segs, const AdamWScalars& s_decay, const AdamWScalars& s) {
  const int64_t n = master.numel(), blocks = (n + kBlock - 1) / kBlock;
  Quantized m{st[0].data_ptr<uint8_t>(), st[1].data_ptr<float>(), dynamic_map(true), lower_bound_of(true), dynamic_map_zero(true)};
  Quantized v{st[2].data_ptr<uint8_t>(), st[3].data_ptr<float>(), dynamic_map(false), lower_bound_of(false), dynamic_map_zero(false)};
  T* p = master.data_ptr<T>();
  const G* g = grad.data_ptr<G>();
  c10::BFloat16* o = out.defined() ? out.data_ptr<c10::BFloat16>() : nullptr;
  at::parallel_for(0, blocks, 4, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) block_step(p, m, v, g, o, segs, b, n, s_decay, s);
  });
}

#ifdef FTDIST_WITH_KERNELS
void adamw_8bit_cuda(const at::Tensor& master, const std::vector<at::Tensor>& st, const at::Tensor& grad, const at::Tensor& out,
                     const std::vector<Range>& decay, const AdamWScalars& s_decay, const AdamWScalars& s) {
  auto a = std::make_unique<kernels::AdamW8bitArgs>();
  FT_CHECK(decay.size() <= size_t(kernels::AdamW8bitArgs::kMaxRanges), ErrorKind::Internal,
           "adamw-8bit on a GPU takes at most " << kernels::AdamW8bitArgs::kMaxRanges << " decay ranges per shard, got " << decay.size());
  a->master = master.data_ptr();
  a->master_bf16 = master.scalar_type() == at::kBFloat16;
  a->exp_avg_q = st[0].data_ptr<uint8_t>(), a->exp_avg_absmax = st[1].data_ptr<float>();
  a->exp_avg_sq_q = st[2].data_ptr<uint8_t>(), a->exp_avg_sq_absmax = st[3].data_ptr<float>();
  a->grad = grad.data_ptr();
  a->grad_type = grad.scalar_type() == at::kFloat ? kernels::GradType::F32 : kernels::GradType::BF16;
  a->param_bf16 = out.defined() ? reinterpret_cast<uint16_t*>(out.data_ptr<c10::BFloat16>()) : nullptr;
  a->n = master.numel();
  a->num_ranges = int(decay.size());
  for (size_t r = 0; r < decay.size(); ++r) a->range_begin[r] = decay[r].begin, a->range_end[r] = decay[r].end;
  std::copy(dynamic_map(true).begin(), dynamic_map(true).end(), a->signed_map);
  std::copy(dynamic_map(false).begin(), dynamic_map(false).end(), a->unsigned_map);
  a->signed_zero = dynamic_map_zero(true), a->unsigned_zero = dynamic_map_zero(false);
  a->decay_factor = s_decay.decay, a->beta1 = s.beta1, a->one_minus_beta1 = s.omb1, a->beta2 = s.beta2, a->one_minus_beta2 = s.omb2;
  a->bias_correction2_sqrt = s.bc2_sqrt, a->step_size = s.step_size, a->eps = s.eps;
  FT_CUDA_CHECK(kernels::launch_adamw_8bit(*a, c10::cuda::getCurrentCUDAStream(master.get_device()).stream()));
}
#endif

}  // namespace

const std::array<float, 256>& dynamic_map(bool is_signed) {
  static const std::array<float, 256> s = make_dynamic_map(true), u = make_dynamic_map(false);
  return is_signed ? s : u;
}

int dynamic_map_zero(bool is_signed) {
  const auto& m = dynamic_map(is_signed);
  return int(std::find(m.begin(), m.end(), 0.f) - m.begin());
}

AdamW8bit::AdamW8bit(AdamWConfig config, at::Tensor master, std::vector<Range> decay, at::Tensor param_out)
    : cfg_(config), master_(std::move(master)), param_out_(std::move(param_out)), decay_(std::move(decay)) {
  check_master_and_output(master_, param_out_, decay_, "AdamW8bit");
  check_adamw_config(cfg_);
  const int64_t n = master_.numel(), blocks = (n + plan::kQuantBlock - 1) / plan::kQuantBlock;
  const at::TensorOptions o = master_.options();
  states_ = {at::zeros({n}, o.dtype(at::kByte)), at::zeros({blocks}, o.dtype(at::kFloat)), at::zeros({n}, o.dtype(at::kByte)),
             at::zeros({blocks}, o.dtype(at::kFloat))};  // the order of plan::optimizer_states(adamw-8bit)
}

void AdamW8bit::step(const at::Tensor& grad, double lr) {
  check_grad(grad, master_);
  FT_CHECK_ARG(std::isfinite(lr) && lr >= 0, "AdamW: learning rate must be finite and >= 0, got " << lr);
  ++step_;
  const AdamWScalars s_decay = adamw_scalars(cfg_, lr, step_, true), s = adamw_scalars(cfg_, lr, step_, false);
  if (master_.is_cuda()) {
#ifdef FTDIST_WITH_KERNELS
    adamw_8bit_cuda(master_, states_, grad, param_out_, decay_, s_decay, s);
#else
    FT_CHECK(false, ErrorKind::Internal, "8-bit AdamW on CUDA tensors needs ftdist built with its CUDA kernels (FTDIST_CUDA)");
#endif
    return;
  }
  const std::vector<Segment> segs = segments(master_.numel(), decay_);
  const bool f32 = master_.scalar_type() == at::kFloat, gf32 = grad.scalar_type() == at::kFloat;
  if (f32 && gf32) adamw_8bit_cpu<float, float>(master_, states_, grad, param_out_, segs, s_decay, s);
  else if (f32) adamw_8bit_cpu<float, c10::BFloat16>(master_, states_, grad, param_out_, segs, s_decay, s);
  else if (gf32) adamw_8bit_cpu<c10::BFloat16, float>(master_, states_, grad, param_out_, segs, s_decay, s);
  else adamw_8bit_cpu<c10::BFloat16, c10::BFloat16>(master_, states_, grad, param_out_, segs, s_decay, s);
}

namespace {
at::Tensor dequantize(const at::Tensor& q, const at::Tensor& absmax, bool is_signed) {
  const auto& map = dynamic_map(is_signed);
  at::Tensor codes = at::from_blob(const_cast<float*>(map.data()), {256}, at::kFloat).to(q.device());
  at::Tensor index = (q.to(at::kLong) + dynamic_map_zero(is_signed)).remainder(256);
  at::Tensor scale = absmax.repeat_interleave(plan::kQuantBlock).narrow(0, 0, q.numel());
  return codes.index({index}) * scale;
}
}  // namespace

at::Tensor AdamW8bit::exp_avg() const { return dequantize(states_[0], states_[1], true); }
at::Tensor AdamW8bit::exp_avg_sq() const { return dequantize(states_[2], states_[3], false); }

}  // namespace ftdist::optim
