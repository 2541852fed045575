// SGD with momentum over a flat fp32 (or, in bf16-pure, bf16) shard, as torch.optim.SGD computes it
// (dampening 0, no Nesterov; L2 weight decay added to the gradient inside the decay ranges; the
// momentum buffer starts at the first gradient). CPU: at::parallel_for; CUDA: ATen ops.
//
//   SgdMomentum opt({0.9, 0.0}, master_shard, decay_ranges(unit, begin, len), bf16_param_shard);
//   opt.step(grad_shard, lr);
#pragma once

#include "ftdist/optim/optimizer.h"

namespace ftdist::optim {

class SgdMomentum : public Optimizer {
 public:
  SgdMomentum(SgdConfig config, at::Tensor master, std::vector<Range> decay, at::Tensor param_out = {});
  void step(const at::Tensor& grad, double lr) override;
  plan::OptimizerKind kind() const override { return plan::OptimizerKind::SgdMomentum; }
  const at::Tensor& momentum_buffer() const { return states_[0]; }

 private:
  SgdConfig cfg_;
  at::Tensor master_, param_out_;
  std::vector<Range> decay_;
};

}  // namespace ftdist::optim
