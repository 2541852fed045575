#include <cuda_bf16.h>

#include <cmath>

#include "adamw_8bit.cuh"

namespace ftdist::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kPerThread = AdamW8bitArgs::kBlock / kThreads;
static_assert(kThreads == 256 && kThreads >= AdamW8bitArgs::kMaxRanges, "one thread per map entry loads the tables");

// The index of the code nearest x in the sorted map (ties: the lower one; NaN: code 0, as on the CPU).
__device__ __forceinline__ int nearest_code(const float* map, float x) {
  if (x != x) return 0;
  int lo = 0, hi = 256;  // first index with map[i] >= x
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (map[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  if (lo == 256) return 255;
  if (lo == 0) return 0;
  return (x - map[lo - 1] <= map[lo] - x) ? lo - 1 : lo;
}

__device__ __forceinline__ bool decayed(const int64_t* begin, const int64_t* end, int ranges, int64_t i) {
  for (int r = 0; r < ranges; ++r)
    if (i >= begin[r] && i < end[r]) return true;
  return false;
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
  for (int off = 16; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  float m = 0.f;
  for (int w = 0; w < kThreads / 32; ++w) m = fmaxf(m, scratch[w]);
  __syncthreads();
  return m;
}

__global__ void __launch_bounds__(kThreads) adamw_8bit_kernel(AdamW8bitArgs a) {
  // The maps and ranges, indexed at run time, go to shared memory (not read from the parameter space per element).
  __shared__ float smap[256], umap[256], scratch[kThreads / 32];
  __shared__ int64_t range_begin[AdamW8bitArgs::kMaxRanges], range_end[AdamW8bitArgs::kMaxRanges];
  smap[threadIdx.x] = a.signed_map[threadIdx.x];
  umap[threadIdx.x] = a.unsigned_map[threadIdx.x];
  if (threadIdx.x < AdamW8bitArgs::kMaxRanges) range_begin[threadIdx.x] = a.range_begin[threadIdx.x], range_end[threadIdx.x] = a.range_end[threadIdx.x];
  __syncthreads();
  const int64_t block = blockIdx.x, base = block * AdamW8bitArgs::kBlock;
  const float m_scale = a.exp_avg_absmax[block], v_scale = a.exp_avg_sq_absmax[block];
  float m[kPerThread], v[kPerThread], m_max = 0.f, v_max = 0.f;  // registers: the loops unroll
#pragma unroll
  for (int k = 0; k < kPerThread; ++k) {
    const int64_t i = base + threadIdx.x + int64_t(k) * kThreads;
    m[k] = v[k] = 0.f;
    if (i >= a.n) continue;
    const float g = a.grad_type == GradType::F32 ? static_cast<const float*>(a.grad)[i]
                                                 : __bfloat162float(static_cast<const __nv_bfloat16*>(a.grad)[i]);
    float p = a.master_bf16 ? __bfloat162float(static_cast<const __nv_bfloat16*>(a.master)[i]) : static_cast<const float*>(a.master)[i];
    if (decayed(range_begin, range_end, a.num_ranges, i)) p = p * a.decay_factor;
    const float m0 = smap[uint8_t(a.exp_avg_q[i] + a.signed_zero)] * m_scale;
    const float v0 = umap[uint8_t(a.exp_avg_sq_q[i] + a.unsigned_zero)] * v_scale;
    m[k] = m0 * a.beta1 + g * a.one_minus_beta1;
    v[k] = v0 * a.beta2 + a.one_minus_beta2 * g * g;
    const float denom = sqrtf(v[k]) / a.bias_correction2_sqrt + a.eps;
    p = p + (-a.step_size) * (m[k] / denom);
    if (a.master_bf16) static_cast<__nv_bfloat16*>(a.master)[i] = __float2bfloat16_rn(p);
    else static_cast<float*>(a.master)[i] = p;
    if (a.param_bf16) reinterpret_cast<__nv_bfloat16*>(a.param_bf16)[i] = __float2bfloat16_rn(p);
    m_max = fmaxf(m_max, fabsf(m[k]));
    v_max = fmaxf(v_max, v[k]);
  }
  m_max = block_max(m_max, scratch);
  v_max = block_max(v_max, scratch);
  if (threadIdx.x == 0) a.exp_avg_absmax[block] = m_max, a.exp_avg_sq_absmax[block] = v_max;
#pragma unroll
  for (int k = 0; k < kPerThread; ++k) {
    const int64_t i = base + threadIdx.x + int64_t(k) * kThreads;
    if (i >= a.n) continue;
    const int qm = nearest_code(smap, m_max > 0.f ? m[k] / m_max : 0.f);
    const int qv = nearest_code(umap, v_max > 0.f ? v[k] / v_max : 0.f);
    a.exp_avg_q[i] = uint8_t(qm - a.signed_zero);
    a.exp_avg_sq_q[i] = uint8_t(qv - a.unsigned_zero);
  }
}

bool valid(const AdamW8bitArgs& a) {
  if (a.n < 0 || a.num_ranges < 0 || a.num_ranges > AdamW8bitArgs::kMaxRanges) return false;
  if (a.n > 0 && (!a.master || !a.exp_avg_q || !a.exp_avg_absmax || !a.exp_avg_sq_q || !a.exp_avg_sq_absmax || !a.grad)) return false;
  int64_t pos = 0;
  for (int r = 0; r < a.num_ranges; ++r) {
    if (a.range_begin[r] < pos || a.range_end[r] < a.range_begin[r] || a.range_end[r] > a.n) return false;
    pos = a.range_end[r];
  }
  for (int i = 1; i < 256; ++i)
    if (!(a.signed_map[i - 1] <= a.signed_map[i]) || !(a.unsigned_map[i - 1] <= a.unsigned_map[i])) return false;
  if (a.signed_map[a.signed_zero & 255] != 0.f || a.unsigned_map[a.unsigned_zero & 255] != 0.f) return false;
  for (float s : {a.decay_factor, a.beta1, a.beta2, a.one_minus_beta1, a.one_minus_beta2, a.bias_correction2_sqrt, a.step_size, a.eps})
    if (!std::isfinite(s)) return false;
  return a.bias_correction2_sqrt > 0.f;
}

}  // namespace

cudaError_t launch_adamw_8bit(const AdamW8bitArgs& a, cudaStream_t stream) {
  if (!valid(a)) return cudaErrorInvalidValue;
  if (a.n == 0) return cudaSuccess;
  const int64_t blocks = (a.n + AdamW8bitArgs::kBlock - 1) / AdamW8bitArgs::kBlock;
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  adamw_8bit_kernel<<<unsigned(blocks), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace ftdist::kernels
