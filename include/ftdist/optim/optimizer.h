// Optimizers over flat shards (docs/runtime.md#optimizer): the interface the FSDP runtime steps,
// the configuration the run config fills, and the weight-decay ranges every optimizer shares.
//
// An optimizer owns the state of one unit's shard — the tensors plan::optimizer_states(kind) lists,
// in that order, on the master's device — and updates the master shard in place from a gradient
// shard (fp32 or bf16), writing the compute-dtype parameter shard the next all-gather sends.
// Weight decay applies only inside `decay` ranges (the matrices of the unit layout, see
// decay_ranges()), never to norms and biases.
//
//   auto opt = make_optimizer(cfg, master_shard, decay_ranges(unit, shard_begin, shard_len), bf16_param_shard);
//   opt->step(grad_shard, schedule.lr_at(step));
//   opt->states();   // what a checkpoint saves (and fills in place to resume), then set_steps()
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "ftdist/plan/model_spec.h"
#include "ftdist/plan/optimizer_state.h"
#include "ftdist/plan/run_setup.h"

namespace ftdist::optim {

struct Range {
  int64_t begin = 0;  // element offsets within the shard
  int64_t end = 0;
};

// The ranges of [shard_begin, shard_begin + shard_len) of a unit's flat buffer that hold matrices
// (weights with two or more dimensions), relative to the shard start.
std::vector<Range> decay_ranges(const plan::ModelSpec::Unit& unit, int64_t shard_begin, int64_t shard_len);

// The pieces of [0, n) in order, each with whether it lies inside a decay range.
struct Segment {
  int64_t begin, end;
  bool decay;
};
std::vector<Segment> segments(int64_t n, const std::vector<Range>& decay);

struct AdamWConfig {  // adamw and adamw-8bit
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;  // decoupled: p *= 1 - lr * weight_decay
};

struct SgdConfig {
  double momentum = 0.9;
  double weight_decay = 0.0;  // L2, added to the gradient (as torch.optim.SGD), on decay ranges only
};

struct OptimizerConfig {
  plan::OptimizerKind kind = plan::OptimizerKind::AdamW;
  AdamWConfig adamw;
  SgdConfig sgd;
  // {"name", and the hyperparameters of `kind`}: what checkpoints record.
  nlohmann::json to_json() const;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update of the master shard from `grad` (fp32 or bf16, as many elements as the master).
  virtual void step(const at::Tensor& grad, double lr) = 0;
  virtual plan::OptimizerKind kind() const = 0;

  int64_t steps() const { return step_; }
  void set_steps(int64_t steps);  // after filling states() from a checkpoint
  // The state tensors, in plan::optimizer_states(kind()) order: flat and contiguous, on the
  // master's device. Filled in place to resume.
  const std::vector<at::Tensor>& states() const { return states_; }
  uint64_t state_bytes() const;
  // Moves the states, before the first step, into the tensors `make` returns for each (same shape,
  // dtype and device; contents are copied over): optimizer offload puts them in pinned host memory.
  void place_states(const std::function<at::Tensor(const at::Tensor&)>& make);

 protected:
  int64_t step_ = 0;
  std::vector<at::Tensor> states_;
};

// master: the fp32 (bf16 in bf16-pure) master shard, contiguous, on the CPU or a GPU. param_out:
// the bf16 parameter shard written each step (undefined: none, the master is the parameters).
std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& cfg, at::Tensor master, std::vector<Range> decay,
                                          at::Tensor param_out = {});

// Shared by the optimizers' preconditions: `t` is contiguous, on master's device, with its numel
// (and fp32 when `fp32`).
void check_shard(const at::Tensor& t, const at::Tensor& master, const char* what, bool fp32);
void check_grad(const at::Tensor& grad, const at::Tensor& master);  // fp32 or bf16
// A contiguous fp32 or bf16 master and, when defined, a bf16 parameter shard beside an fp32 master
// (a bf16 master is the parameter shard itself); then the decay ranges. `who` names the optimizer.
void check_master_and_output(const at::Tensor& master, const at::Tensor& param_out, const std::vector<Range>& decay, const char* who);

}  // namespace ftdist::optim
