// adamw_8bit — one step of blockwise 8-bit AdamW over a flat shard on the GPU (the algorithm of
// include/ftdist/optim/adamw_8bit.h, which the CPU loop implements too). One CTA per quantization
// block of kBlock elements (256 threads x 8): dequantize both moments with the block's old absmax,
// update master and moments in fp32, write master (fp32 or bf16) and the optional bf16 parameter
// shard, reduce the block's new absmax of each moment, requantize to the nearest code.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "fused_adamw.cuh"

namespace ftdist::kernels {

struct AdamW8bitArgs {
  static constexpr int kBlock = 2048;    // elements per quantization block (plan::kQuantBlock)
  static constexpr int kMaxRanges = 64;  // weight-decay ranges passed by value
  void* master = nullptr;                // (n,) fp32, or bf16 when master_bf16
  bool master_bf16 = false;
  uint8_t* exp_avg_q = nullptr;          // (n,) stored codes (index - zero index, mod 256)
  float* exp_avg_absmax = nullptr;       // (ceil(n / kBlock),)
  uint8_t* exp_avg_sq_q = nullptr;       // (n,)
  float* exp_avg_sq_absmax = nullptr;    // (ceil(n / kBlock),)
  const void* grad = nullptr;            // (n,) fp32 or bf16
  GradType grad_type = GradType::F32;
  uint16_t* param_bf16 = nullptr;        // (n,) bf16 output, or null
  int64_t n = 0;
  // Decay ranges [begin, end) in elements, sorted and disjoint; decay_factor applies inside them.
  int num_ranges = 0;
  int64_t range_begin[kMaxRanges] = {}, range_end[kMaxRanges] = {};
  float signed_map[256] = {}, unsigned_map[256] = {};  // the sorted code values (exp_avg, exp_avg_sq)
  int signed_zero = 0, unsigned_zero = 0;               // the index of 0 in each map
  // Per-step scalars, as for fused_adamw:
  float decay_factor = 1.f, beta1 = 0.9f, one_minus_beta1 = 0.1f, beta2 = 0.999f, one_minus_beta2 = 0.001f;
  float bias_correction2_sqrt = 1.f, step_size = 0.f, eps = 1e-8f;
};

// Checks the preconditions (non-null pointers when n > 0, ranges sorted inside [0, n), at most
// kMaxRanges, finite scalars, sorted maps) and launches on `stream`. Returns cudaErrorInvalidValue
// without launching when one fails.
cudaError_t launch_adamw_8bit(const AdamW8bitArgs& args, cudaStream_t stream);

}  // namespace ftdist::kernels
