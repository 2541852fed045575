// fused_adamw — one pass of AdamW over a flat fp32 shard on the GPU: reads the gradient (fp32 or
// bf16), master, exp_avg, exp_avg_sq; writes master, exp_avg, exp_avg_sq and (optionally) the bf16
// parameter shard. 16-byte vector loads (4 floats) with a scalar tail; scalar throughout when the
// pointers are not aligned for vectors. Arithmetic in the order of torch::optim::AdamW.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace ftdist::kernels {

enum class GradType { F32, BF16 };

struct AdamWArgs {
  float* master = nullptr;       // (n,)
  float* exp_avg = nullptr;      // (n,)
  float* exp_avg_sq = nullptr;   // (n,)
  const void* grad = nullptr;    // (n,) fp32 or bf16
  GradType grad_type = GradType::F32;
  uint16_t* param_bf16 = nullptr;  // (n,) bf16 output, or null
  int64_t n = 0;
  // Per-step scalars, computed on the host in double and rounded once to float:
  float decay_factor = 1.f;      // 1 - lr * weight_decay (1 outside decay ranges)
  float beta1 = 0.9f, one_minus_beta1 = 0.1f;
  float beta2 = 0.999f, one_minus_beta2 = 0.001f;
  float bias_correction2_sqrt = 1.f;  // sqrt(1 - beta2^step)
  float step_size = 0.f;              // lr / (1 - beta1^step)
  float eps = 1e-8f;
};

// Checks the preconditions (non-null pointers when n > 0, n >= 0, finite scalars) and launches on
// `stream`. Returns cudaErrorInvalidValue without launching when a precondition fails.
cudaError_t launch_fused_adamw(const AdamWArgs& args, cudaStream_t stream);

// True when the vectorized path applies to these pointers (16-byte aligned fp32 arrays, 8-byte
// aligned bf16 arrays) — exposed for tests and the benchmark.
bool fused_adamw_vectorizable(const AdamWArgs& args);

}  // namespace ftdist::kernels
