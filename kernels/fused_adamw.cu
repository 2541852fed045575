#include <cuda_bf16.h>

#include <cmath>

#include "fused_adamw.cuh"

namespace ftdist::kernels {
namespace {

__device__ __forceinline__ void adamw_element(float& p, float& m, float& v, float g, const AdamWArgs& a) {
  p = p * a.decay_factor;
  m = m * a.beta1 + g * a.one_minus_beta1;
  v = v * a.beta2 + a.one_minus_beta2 * g * g;
  const float denom = sqrtf(v) / a.bias_correction2_sqrt + a.eps;
  p = p + (-a.step_size) * (m / denom);
}

__device__ __forceinline__ float load_grad(const AdamWArgs& a, int64_t i) {
  if (a.grad_type == GradType::F32) return static_cast<const float*>(a.grad)[i];
  return __bfloat162float(static_cast<const __nv_bfloat16*>(a.grad)[i]);
}

__device__ __forceinline__ void scalar_step(const AdamWArgs& a, int64_t i) {
  float p = a.master[i], m = a.exp_avg[i], v = a.exp_avg_sq[i];
  adamw_element(p, m, v, load_grad(a, i), a);
  a.master[i] = p;
  a.exp_avg[i] = m;
  a.exp_avg_sq[i] = v;
  if (a.param_bf16) reinterpret_cast<__nv_bfloat16*>(a.param_bf16)[i] = __float2bfloat16_rn(p);
}

__global__ void fused_adamw_scalar(AdamWArgs a) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n; i += stride) scalar_step(a, i);
}

// Four elements per thread and iteration: float4 loads of master, exp_avg, exp_avg_sq and an fp32
// gradient (16 bytes each), or 8 bytes of bf16 gradient; then the scalar tail.
__global__ void fused_adamw_vec4(AdamWArgs a) {
  const int64_t nvec = a.n / 4;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  float4* p4 = reinterpret_cast<float4*>(a.master);
  float4* m4 = reinterpret_cast<float4*>(a.exp_avg);
  float4* v4 = reinterpret_cast<float4*>(a.exp_avg_sq);
  for (int64_t i = first; i < nvec; i += stride) {
    float4 p = p4[i], m = m4[i], v = v4[i];
    float g[4];
    if (a.grad_type == GradType::F32) {
      const float4 gv = reinterpret_cast<const float4*>(a.grad)[i];
      g[0] = gv.x, g[1] = gv.y, g[2] = gv.z, g[3] = gv.w;
    } else {
      const uint2 raw = reinterpret_cast<const uint2*>(a.grad)[i];
      const __nv_bfloat162 lo = *reinterpret_cast<const __nv_bfloat162*>(&raw.x);
      const __nv_bfloat162 hi = *reinterpret_cast<const __nv_bfloat162*>(&raw.y);
      g[0] = __low2float(lo), g[1] = __high2float(lo), g[2] = __low2float(hi), g[3] = __high2float(hi);
    }
    adamw_element(p.x, m.x, v.x, g[0], a);
    adamw_element(p.y, m.y, v.y, g[1], a);
    adamw_element(p.z, m.z, v.z, g[2], a);
    adamw_element(p.w, m.w, v.w, g[3], a);
    p4[i] = p, m4[i] = m, v4[i] = v;
    if (a.param_bf16) {
      __nv_bfloat162 lo = __floats2bfloat162_rn(p.x, p.y), hi = __floats2bfloat162_rn(p.z, p.w);
      uint2 out;
      out.x = *reinterpret_cast<uint32_t*>(&lo);
      out.y = *reinterpret_cast<uint32_t*>(&hi);
      reinterpret_cast<uint2*>(a.param_bf16)[i] = out;
    }
  }
  const int64_t tail = nvec * 4 + first;
  if (tail < a.n) scalar_step(a, tail);
}

bool aligned(const void* p, uintptr_t bytes) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

bool fused_adamw_vectorizable(const AdamWArgs& a) {
  const uintptr_t grad_align = a.grad_type == GradType::F32 ? 16 : 8;
  return aligned(a.master, 16) && aligned(a.exp_avg, 16) && aligned(a.exp_avg_sq, 16) && aligned(a.grad, grad_align) &&
         aligned(a.param_bf16, 8);
}

cudaError_t launch_fused_adamw(const AdamWArgs& a, cudaStream_t stream) {
  if (a.n < 0) return cudaErrorInvalidValue;
  if (a.n == 0) return cudaSuccess;
  if (!a.master || !a.exp_avg || !a.exp_avg_sq || !a.grad) return cudaErrorInvalidValue;
  for (float s : {a.decay_factor, a.beta1, a.beta2, a.one_minus_beta1, a.one_minus_beta2, a.bias_correction2_sqrt,
                  a.step_size, a.eps})
    if (!std::isfinite(s)) return cudaErrorInvalidValue;
  if (a.bias_correction2_sqrt <= 0.f) return cudaErrorInvalidValue;
  constexpr int kThreads = 256;
  const bool vec = fused_adamw_vectorizable(a);
  const int64_t work = vec ? (a.n + 3) / 4 : a.n;
  const int blocks = int(std::min<int64_t>((work + kThreads - 1) / kThreads, 65535));
  if (vec) fused_adamw_vec4<<<blocks, kThreads, 0, stream>>>(a);
  else fused_adamw_scalar<<<blocks, kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace ftdist::kernels
