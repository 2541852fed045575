// 8-bit AdamW: AdamW whose two moments are stored blockwise-quantized to one byte per element
// (the bitsandbytes scheme, Dettmers et al. 2022), with an fp32 master (bf16 in bf16-pure).
//
// Codes: each moment element is a byte naming one of 256 values of a "dynamic map" — for exponents
// e = 0..6, 2^e (exp_avg: signed map, with each value's negative) or 2^(e+1) (exp_avg_sq:
// unsigned map) values at the midpoints of linspace(0.1, 1, count + 1), times 10^(e-6); then 0 and
// 1; sorted ascending (computed in double, rounded to float). The stored byte is the code's index
// minus the index of 0, mod 256, so that a zeroed buffer holds zeros.
// Blocks: plan::kQuantBlock consecutive elements from the shard's start (shards start on a block
// boundary of the unit, see plan::shard_size) share one fp32 absmax per moment.
// One step, per block: every element's moments are dequantized (code value x the block's absmax),
// updated in fp32 exactly as AdamW does (decoupled decay inside the decay ranges, bias correction)
// and the master updated from them; then each moment's new absmax (max |m|, max v) is taken over
// the block and each element requantized to the nearest code of value / absmax (ties to the lower
// code; an all-zero block stores zeros). CPU: at::parallel_for over blocks; CUDA: kernels/adamw_8bit.cu.
#pragma once

#include <array>

#include "ftdist/optim/adamw.h"

namespace ftdist::optim {

class AdamW8bit : public Optimizer {
 public:
  AdamW8bit(AdamWConfig config, at::Tensor master, std::vector<Range> decay, at::Tensor param_out = {});
  void step(const at::Tensor& grad, double lr) override;
  plan::OptimizerKind kind() const override { return plan::OptimizerKind::AdamW8bit; }
  // The moments dequantized to fp32 (tests, inspection).
  at::Tensor exp_avg() const;
  at::Tensor exp_avg_sq() const;

 private:
  AdamWConfig cfg_;
  at::Tensor master_, param_out_;
  std::vector<Range> decay_;
};

// The sorted code values of the signed (exp_avg) or unsigned (exp_avg_sq) map, and the index of 0.
const std::array<float, 256>& dynamic_map(bool is_signed);
int dynamic_map_zero(bool is_signed);

}  // namespace ftdist::optim
