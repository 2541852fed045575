// Optimizers over flat fp32 (or, in bf16-pure, bf16) shards (docs/runtime.md#optimizer): AdamW (decoupled weight decay, bias correction)
// and SGD with momentum. One pass per step reads the gradient shard (fp32 or bf16) and updates the
// fp32 master shard and the states, and writes the compute-dtype parameter shard the next
// all-gather sends. Weight decay applies only inside `decay` ranges (the matrices of the unit
// layout, see decay_ranges()), never to norms and biases. CPU: at::parallel_for over the shard;
// CUDA: kernels/fused_adamw.cu.
//
//   AdamW opt(cfg, master_shard, decay_ranges(unit, shard_begin, shard_len), bf16_param_shard);
//   opt.step(grad_shard, schedule.lr_at(step));
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "ftdist/plan/model_spec.h"

namespace ftdist::optim {

struct Range {
  int64_t begin = 0;  // element offsets within the shard
  int64_t end = 0;
};

// The ranges of [shard_begin, shard_begin + shard_len) of a unit's flat buffer that hold matrices
// (weights with two or more dimensions), relative to the shard start.
std::vector<Range> decay_ranges(const plan::ModelSpec::Unit& unit, int64_t shard_begin, int64_t shard_len);

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

class AdamW {
 public:
  // master: fp32, contiguous, on CPU or CUDA. param_out: the compute-dtype shard written each step
  // (undefined: none). States are allocated beside master, zeroed, in master's dtype. A bf16
  // master (bf16-pure) is the parameter shard itself and its states are bf16: each element is
  // computed in fp32 and rounded to nearest on store (no param_out then).
  AdamW(AdamWConfig config, at::Tensor master, std::vector<Range> decay, at::Tensor param_out = {});

  void step(const at::Tensor& grad, double lr);

  int64_t steps() const { return step_; }
  const at::Tensor& exp_avg() const { return exp_avg_; }
  const at::Tensor& exp_avg_sq() const { return exp_avg_sq_; }
  const at::Tensor& master() const { return master_; }
  // For resuming: the states and the step count (shapes must match).
  void load_state(const at::Tensor& exp_avg, const at::Tensor& exp_avg_sq, int64_t step);

 private:
  AdamWConfig cfg_;
  at::Tensor master_, exp_avg_, exp_avg_sq_, param_out_;
  std::vector<Range> decay_;
  int64_t step_ = 0;
};

struct SgdConfig {
  double momentum = 0.9;
  double weight_decay = 0.0;  // L2, added to the gradient (as torch.optim.SGD), on decay ranges only
};

class SgdMomentum {
 public:
  SgdMomentum(SgdConfig config, at::Tensor master, std::vector<Range> decay, at::Tensor param_out = {});
  void step(const at::Tensor& grad, double lr);
  const at::Tensor& momentum_buffer() const { return buf_; }

 private:
  SgdConfig cfg_;
  at::Tensor master_, buf_, param_out_;
  std::vector<Range> decay_;
  int64_t step_ = 0;
};

// The pieces of [0, n) in order, each with whether it lies inside a decay range.
struct Segment {
  int64_t begin, end;
  bool decay;
};
std::vector<Segment> segments(int64_t n, const std::vector<Range>& decay);

}  // namespace ftdist::optim
