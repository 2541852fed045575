// AdamW (decoupled weight decay, bias correction) over a flat fp32 (or, in bf16-pure, bf16) shard
// (docs/runtime.md#optimizer). One pass per step reads the gradient shard (fp32 or bf16) and updates
// the master shard and both moments, and writes the compute-dtype parameter shard. CPU:
// at::parallel_for over the shard; CUDA: kernels/fused_adamw.cu.
//
//   AdamW opt(cfg, master_shard, decay_ranges(unit, shard_begin, shard_len), bf16_param_shard);
//   opt.step(grad_shard, schedule.lr_at(step));
#pragma once

#include "ftdist/optim/optimizer.h"

namespace ftdist::optim {

class AdamW : public Optimizer {
 public:
  // master: fp32, contiguous, on CPU or CUDA. param_out: the compute-dtype shard written each step
  // (undefined: none). States are allocated beside master, zeroed, in master's dtype. A bf16
  // master (bf16-pure) is the parameter shard itself and its states are bf16: each element is
  // computed in fp32 and rounded to nearest on store (no param_out then).
  AdamW(AdamWConfig config, at::Tensor master, std::vector<Range> decay, at::Tensor param_out = {});

  void step(const at::Tensor& grad, double lr) override;
  plan::OptimizerKind kind() const override { return plan::OptimizerKind::AdamW; }

  const at::Tensor& exp_avg() const { return states_[0]; }
  const at::Tensor& exp_avg_sq() const { return states_[1]; }
  const at::Tensor& master() const { return master_; }
  // For tests: the states and the step count (shapes must match).
  void load_state(const at::Tensor& exp_avg, const at::Tensor& exp_avg_sq, int64_t step);

 private:
  AdamWConfig cfg_;
  at::Tensor master_, param_out_;
  std::vector<Range> decay_;
};

}  // namespace ftdist::optim
