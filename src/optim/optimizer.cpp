// The optimizer interface's shared parts: construction by kind, preconditions, the checkpoint record.
#include "ftdist/optim/optimizer.h"

#include "adamw_scalars.h"
#include "ftdist/core/check.h"
#include "ftdist/core/dtype.h"
#include "ftdist/optim/adamw.h"
#include "ftdist/optim/adamw_8bit.h"
#include "ftdist/optim/sgd.h"

namespace ftdist::optim {

nlohmann::json OptimizerConfig::to_json() const {
  nlohmann::json j = {{"name", plan::optimizer_name(kind)}};
  if (kind == plan::OptimizerKind::SgdMomentum) {
    j["momentum"] = sgd.momentum;
    j["weight_decay"] = sgd.weight_decay;
  } else {
    j["beta1"] = adamw.beta1, j["beta2"] = adamw.beta2, j["eps"] = adamw.eps, j["weight_decay"] = adamw.weight_decay;
  }
  return j;
}

void Optimizer::set_steps(int64_t steps) {
  FT_CHECK_ARG(steps >= 0, "optimizer step count must be >= 0, got " << steps);
  step_ = steps;
}

uint64_t Optimizer::state_bytes() const {
  uint64_t b = 0;
  for (const at::Tensor& t : states_) b += uint64_t(t.nbytes());
  return b;
}

void Optimizer::place_states(const std::function<at::Tensor(const at::Tensor&)>& make) {
  FT_CHECK(step_ == 0, ErrorKind::Internal, "place_states: the optimizer has stepped already");
  for (at::Tensor& t : states_) {
    at::Tensor moved = make(t);
    FT_CHECK(moved.sizes() == t.sizes() && moved.scalar_type() == t.scalar_type() && moved.is_contiguous() &&
                 moved.device() == t.device(),
             ErrorKind::Internal, "place_states: a state must keep its shape, dtype and device");
    moved.copy_(t);
    t = moved;
  }
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& cfg, at::Tensor master, std::vector<Range> decay,
                                          at::Tensor param_out) {
  switch (cfg.kind) {
    case plan::OptimizerKind::AdamW: return std::make_unique<AdamW>(cfg.adamw, master, std::move(decay), param_out);
    case plan::OptimizerKind::AdamW8bit: return std::make_unique<AdamW8bit>(cfg.adamw, master, std::move(decay), param_out);
    case plan::OptimizerKind::SgdMomentum: return std::make_unique<SgdMomentum>(cfg.sgd, master, std::move(decay), param_out);
  }
  FT_CHECK(false, ErrorKind::Internal, "make_optimizer: unknown optimizer kind");
  return nullptr;
}

void check_shard(const at::Tensor& t, const at::Tensor& master, const char* what, bool fp32) {
  FT_CHECK(t.is_contiguous() && t.numel() == master.numel() && t.device() == master.device(), ErrorKind::Internal,
           what << " must be contiguous, on " << master.device() << ", with " << master.numel() << " elements; got "
                << t.sizes() << " on " << t.device());
  if (fp32) FT_CHECK(t.scalar_type() == at::kFloat, ErrorKind::Internal, what << " must be fp32");
}

void check_grad(const at::Tensor& grad, const at::Tensor& master) {
  check_shard(grad, master, "the gradient shard", false);
  FT_CHECK(grad.scalar_type() == at::kFloat || grad.scalar_type() == at::kBFloat16, ErrorKind::Internal,
           "the gradient shard must be fp32 or bf16, got " << dtype_name(grad.scalar_type()));
}

void check_master_and_output(const at::Tensor& master, const at::Tensor& param_out, const std::vector<Range>& decay, const char* who) {
  FT_CHECK((master.scalar_type() == at::kFloat || master.scalar_type() == at::kBFloat16) && master.is_contiguous(),
           ErrorKind::Internal, who << ": the master shard must be contiguous fp32 or bf16");
  if (param_out.defined()) {
    check_shard(param_out, master, "the parameter shard", false);
    FT_CHECK(param_out.scalar_type() == at::kBFloat16 && master.scalar_type() == at::kFloat, ErrorKind::Internal,
             who << " writes a bf16 parameter shard from an fp32 master (a bf16 master is the parameter shard itself)");
  }
  segments(master.numel(), decay);  // validates the ranges
}

void check_adamw_config(const AdamWConfig& c) {
  FT_CHECK_ARG(c.beta1 >= 0 && c.beta1 < 1 && c.beta2 >= 0 && c.beta2 < 1 && c.eps > 0 && c.weight_decay >= 0,
               "AdamW: betas must be in [0, 1), eps > 0, weight_decay >= 0");
}

}  // namespace ftdist::optim
