#include "fsdp_unit.h"

#include <torch/csrc/autograd/custom_function.h>

#include "ftdist/core/check.h"
#include "ftdist/core/torch_compat.h"

namespace ftdist::fsdp {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Produces the unit's flat parameter (a new tensor on the unit's storage) as the output of an
// autograd node, so that the unit's whole gradient arrives here, summed, in one call.
struct GatherFn : public torch::autograd::Function<GatherFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& /*dummy*/, FsdpUnit* unit, const at::Tensor& full) {
    ctx->saved_data["unit"] = reinterpret_cast<int64_t>(unit);
    at::Tensor out = at::empty({0}, full.options());
    out.set_(full.storage(), 0, {full.numel()}, {1});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto* unit = reinterpret_cast<FsdpUnit*>(ctx->saved_data["unit"].toInt());
    unit->on_full_grad(grads[0]);
    return {at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

bool is_sharded_stage(plan::Stage s) {
  return s == plan::Stage::Full || s == plan::Stage::GradOp || s == plan::Stage::Hybrid;
}

}  // namespace

FsdpUnit::FsdpUnit(model::LlamaModel& model, size_t index_, const plan::ModelSpec::Unit& spec,
                   comm::Communicator& shard_comm, comm::Communicator* replica_comm, const FsdpConfig& cfg)
    : index(index_), model_(model), shard_comm_(shard_comm), replica_comm_(replica_comm), cfg_(cfg) {
  FT_CHECK_ARG(cfg.precision != plan::Precision::Bf16Pure, "precision bf16-pure is not supported by the runtime yet");
  sharded_ = is_sharded_stage(cfg.stage);
  compute_ = cfg.precision == plan::Precision::Fp32 ? at::kFloat : at::kBFloat16;
  const int n = cfg.stage == plan::Stage::None ? 1 : shard_comm.size();
  const int rank = cfg.stage == plan::Stage::None ? 0 : shard_comm.rank();
  numel_ = spec.numel();
  shard_ = (numel_ + n - 1) / n;
  padded_ = shard_ * n;

  // The starting point: the model's current parameters, the same on every rank.
  at::Tensor init = at::zeros({padded_}, at::kFloat);
  init.narrow(0, 0, numel_).copy_(model.units()[index].flat.detach().view({-1}));
  const at::TensorOptions f32 = at::TensorOptions().dtype(at::kFloat);
  if (cfg.stage == plan::Stage::None) {
    master_ = init.clone();
    grad_ = at::zeros({padded_}, f32);
  } else {
    master_ = init.narrow(0, int64_t(rank) * shard_, shard_).clone();
    grad_ = at::zeros({shard_}, f32);
  }
  // fp32 precision: the parameters are the master; bf16-mixed: a bf16 copy the optimizer writes.
  const bool separate_params = compute_ != at::kFloat;
  if (cfg.stage != plan::Stage::None) param_shard_ = separate_params ? master_.to(compute_) : master_;
  full_ = init.to(compute_);  // stays for optimizer/none; released below for sharded stages
  if (!sharded_) full_grad_ = at::zeros({padded_}, f32.dtype(compute_));
  dummy_ = at::zeros({1}, f32).requires_grad_(true);

  const int64_t shard_begin = cfg.stage == plan::Stage::None ? 0 : int64_t(rank) * shard_;
  const int64_t state_len = cfg.stage == plan::Stage::None ? padded_ : shard_;
  at::Tensor param_out;
  if (separate_params) param_out = cfg.stage == plan::Stage::None ? full_ : param_shard_;
  opt_ = std::make_unique<optim::AdamW>(cfg.adamw, master_, optim::decay_ranges(spec, shard_begin, state_len), param_out);
  model_.bind(index, full_);
  if (sharded_) reshard();
}

void FsdpUnit::ensure_gathered() {
  if (!sharded_ || !compat::storage_released(full_)) return;
  compat::refill_storage(full_, size_t(padded_) * c10::elementSize(compute_));
  shard_comm_.all_gather_into(full_, param_shard_);
}

void FsdpUnit::reshard() {
  if (sharded_ && !compat::storage_released(full_)) compat::release_storage(full_);
}

at::Tensor FsdpUnit::bind_for_autograd() {
  at::Tensor flat = GatherFn::apply(dummy_, this, full_);
  model_.bind(index, flat);
  return flat;
}

void FsdpUnit::bind_plain() { model_.bind(index, full_); }

void FsdpUnit::on_full_grad(const at::Tensor& grad) {
  FT_CHECK(grad.numel() == padded_, ErrorKind::Internal, "unit " << index << ": gradient of " << grad.numel()
                                                                  << " elements, expected " << padded_);
  if (!sharded_) {
    full_grad_ += grad.view({-1});
    return;
  }
  const at::ScalarType reduce = cfg_.reduce_dtype == plan::FloatType::Fp32 ? at::kFloat : at::kBFloat16;
  at::Tensor g = grad.view({-1}).to(reduce).contiguous();
  at::Tensor out = at::empty({shard_}, g.options());
  shard_comm_.reduce_scatter(out, g, comm::ReduceOp::Sum);
  grad_ += out.to(at::kFloat);
  reshard();  // its backward is done
}

void FsdpUnit::zero_grad() {
  grad_.zero_();
  if (full_grad_.defined()) full_grad_.zero_();
}

void FsdpUnit::reduce_at_step_end() {
  const at::ScalarType reduce = cfg_.reduce_dtype == plan::FloatType::Fp32 ? at::kFloat : at::kBFloat16;
  switch (cfg_.stage) {
    case plan::Stage::Hybrid:
      if (replica_comm_ && replica_comm_->size() > 1) replica_comm_->all_reduce(grad_, comm::ReduceOp::Sum);
      break;
    case plan::Stage::Optimizer: {
      at::Tensor g = full_grad_.to(reduce).contiguous();
      at::Tensor out = at::empty({shard_}, g.options());
      shard_comm_.reduce_scatter(out, g, comm::ReduceOp::Sum);
      grad_.copy_(out);
      break;
    }
    case plan::Stage::None: {
      at::Tensor g = full_grad_.to(reduce).contiguous();
      shard_comm_.all_reduce(g, comm::ReduceOp::Sum);
      grad_.copy_(g);
      break;
    }
    default:
      break;
  }
}

void FsdpUnit::optimizer_step(double lr) {
  opt_->step(grad_, lr);
  if (cfg_.stage == plan::Stage::Optimizer) shard_comm_.all_gather_into(full_, param_shard_);
  if (cfg_.stage == plan::Stage::None && compute_ == at::kFloat) full_.copy_(master_);
}

at::Tensor FsdpUnit::gather_master() {
  if (cfg_.stage == plan::Stage::None) return master_.narrow(0, 0, numel_).clone();
  at::Tensor all = at::empty({padded_}, at::kFloat);
  shard_comm_.all_gather_into(all, master_);
  return all.narrow(0, 0, numel_).clone();
}

}  // namespace ftdist::fsdp
