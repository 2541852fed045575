#include "fsdp_unit.h"

#include <torch/csrc/autograd/custom_function.h>

#include <utility>

#include "ftdist/core/check.h"
#include "ftdist/core/torch_compat.h"
#include "ftdist/fsdp/memory_category.h"
#include "ftdist/fsdp/memory_counter.h"

namespace ftdist::fsdp {

namespace {
// acc += x in acc's dtype, converting x a piece at a time where the dtypes differ: the whole shard
// converted at once would be a copy the plan does not count (and an add across dtypes makes one of
// acc in the wider dtype).
void add_converted(const at::Tensor& acc, const at::Tensor& x) {
  if (x.scalar_type() == acc.scalar_type()) {
    acc.add_(x);
    return;
  }
  constexpr int64_t kPiece = int64_t(1) << 20;  // elements
  for (int64_t at = 0; at < acc.numel(); at += kPiece) {
    const int64_t k = std::min(kPiece, acc.numel() - at);
    acc.narrow(0, at, k).add_(x.narrow(0, at, k).to(acc.scalar_type()));
  }
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Produces the unit's parameters (new tensors on the unit's storage, one per parameter) as the
// outputs of one autograd node, so that the unit's gradients all arrive here, in one call, and are
// copied into one flat gradient: the parameters' gradients and the flat coexist (two units' worth),
// where views of one flat output would have autograd sum a unit-sized zero-padded copy per parameter.
struct GatherFn : public torch::autograd::Function<GatherFn> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& /*dummy*/, FsdpUnit* unit, const at::Tensor& full,
                               const std::vector<plan::ModelSpec::Tensor>* specs) {
    ctx->saved_data["unit"] = reinterpret_cast<int64_t>(unit);
    ctx->set_materialize_grads(false);  // a parameter this pass did not use has no gradient: zeros in the flat
    variable_list params;
    int64_t offset = 0;
    for (const plan::ModelSpec::Tensor& t : *specs) {
      at::Tensor p = at::empty({0}, full.options());
      p.set_(full.storage(), offset, t.shape);  // contiguous
      offset += p.numel();
      params.push_back(p);
    }
    return params;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto* unit = reinterpret_cast<FsdpUnit*>(ctx->saved_data["unit"].toInt());
    unit->on_param_grads(grads);
    return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

FsdpUnit::FsdpUnit(model::LlamaModel& model, size_t index_, const plan::ModelSpec::Unit& spec,
                   comm::Communicator& shard_comm, comm::Communicator* replica_comm, const FsdpConfig& cfg,
                   UnitShared& shared, const io::WeightSource& init)
    : index(index_), name(spec.name), model_(model), shard_comm_(shard_comm), replica_comm_(replica_comm), cfg_(cfg), shared_(shared), policy_(plan::stage_policy(cfg.stage)) {
  sharded_ = policy_.shard_params;
  compute_ = cfg.precision == plan::Precision::Fp32 ? at::kFloat : at::kBFloat16;
  // bf16-mixed keeps an fp32 master beside the bf16 parameters; in fp32 and bf16-pure the
  // parameters are the master, and the gradient accumulates in that dtype too.
  params_are_master_ = cfg.precision != plan::Precision::Bf16Mixed;
  accum_dtype_ = params_are_master_ ? compute_ : cfg.grad_accum_dtype == plan::FloatType::Bf16 ? at::kBFloat16 : at::kFloat;
  reduce_ = cfg.reduce_dtype == plan::FloatType::Fp32 ? at::kFloat : at::kBFloat16;
  const int n = policy_.shard_states ? shard_comm.size() : 1;  // none: a replica of everything
  const int rank = policy_.shard_states ? shard_comm.rank() : 0;
  numel_ = spec.numel();
  shard_numel_ = plan::shard_size(numel_, n, plan::shard_alignment(cfg.optimizer.kind));
  padded_ = shard_numel_ * n;
  own_begin_ = int64_t(rank) * shard_numel_;  // 0 in `none`

  using plan::MemCategory;
  std::optional<CategoryScope> what;  // the category each buffer below belongs to
  // Every buffer the planner counts, and no other, each filled straight from `init` with the
  // elements it holds (no whole-unit copy): the master is the parameter buffer itself in fp32 and
  // bf16-pure, unless offloaded (a host master of its own beside the device's parameters); the
  // optimizer stage's parameter shard is its own gather buffer of the replica.
  offloaded_ = cfg.offload_optimizer;
  const bool separate_master = !params_are_master_ || offloaded_;
  const at::TensorOptions f32 = at::TensorOptions().dtype(at::kFloat).device(cfg.device);
  const at::TensorOptions params = f32.dtype(compute_);
  auto filled = [&](int64_t begin, int64_t len, const at::TensorOptions& o) {
    at::Tensor t = at::empty({len}, o);
    load_range(init, begin, t);
    return t;
  };
  // A separate master: fp32 on the device, or offloaded in host memory (pinned on a GPU run), fp32
  // or bf16 in bf16-pure.
  auto master_of = [&](int64_t begin, int64_t len) {
    if (!offloaded_) return filled(begin, len, f32);
    at::Tensor t = host_tensor(len, cfg.precision == plan::Precision::Bf16Pure ? at::kBFloat16 : at::kFloat, cfg.device.is_cuda());
    load_range(init, begin, t);
    return t;
  };
  switch (cfg.stage) {
    case plan::Stage::None:  // the replica (compute dtype) and, when separate, its master
      what.emplace(MemCategory::master);
      if (separate_master) master_ = master_of(0, padded_);
      what.emplace(MemCategory::params_sharded);
      full_ = separate_master ? master_.to(params, /*non_blocking=*/false, /*copy=*/true) : filled(0, padded_, params);
      if (!separate_master) master_ = full_;
      break;
    case plan::Stage::Optimizer:  // the replica, and the master of this rank's shard of it
      what.emplace(MemCategory::params_sharded);
      full_ = filled(0, padded_, params);
      param_shard_ = full_.narrow(0, own_begin_, shard_numel_);
      what.emplace(MemCategory::master);
      master_ = separate_master ? master_of(own_begin_, shard_numel_) : param_shard_;
      break;
    default:  // this rank's shard; the unsharded buffer has no memory until a gather gives it some
      what.emplace(separate_master ? MemCategory::master : MemCategory::params_sharded);
      master_ = separate_master ? master_of(own_begin_, shard_numel_) : filled(own_begin_, shard_numel_, params);
      what.emplace(MemCategory::params_sharded);
      param_shard_ = separate_master ? master_.to(params, /*non_blocking=*/false, /*copy=*/true) : master_;
      what.emplace(MemCategory::grads_sharded);
      grad_ = at::zeros({shard_numel_}, f32.dtype(accum_dtype_));
      full_ = n == 1 ? param_shard_ : compat::unallocated_tensor(padded_, params);  // one rank: the shard is the whole
      break;
  }
  gather_ = sharded_ && n > 1;
  what.emplace(MemCategory::grads_sharded);
  if (!sharded_) full_grad_ = at::zeros({padded_}, params);
  dummy_ = at::zeros({1}, f32).requires_grad_(true);

  const int64_t state_len = policy_.shard_states ? shard_numel_ : padded_;
  at::Tensor param_out;  // written by the step itself (offloaded: OptimizerOffload writes the parameters)
  if (!params_are_master_ && !offloaded_) param_out = policy_.shard_states ? param_shard_ : full_;
  what.emplace(MemCategory::optimizer);
  opt_ = optim::make_optimizer(cfg.optimizer, master_, optim::decay_ranges(spec, own_begin_, state_len), param_out);
  if (offloaded_ && cfg.device.is_cuda())  // the states in pinned host memory too
    opt_->place_states([](const at::Tensor& t) { return host_tensor(t.numel(), t.scalar_type(), true).view(t.sizes()); });
  model_.bind(index, full_);
  if (gather_) compat::release_storage(full_);  // memory comes with the first gather
}

void PhaseRecorder::start() {
  phases_.clear();
  if (device_memory_measured(device_)) take_device_memory_phase_peak(device_);  // (a new phase from here)
}

void PhaseRecorder::mark(std::string name) {
  // (CUDA: the allocator's statistics are host-side bookkeeping of the allocations enqueued so far)
  const bool measured = device_memory_measured(device_);
  const int64_t now = measured ? device_memory_current(device_) : 0;
  const int64_t peak = measured ? take_device_memory_phase_peak(device_) : 0;
  phases_.push_back({std::move(name), peak, now});
}

void FsdpUnit::load_range(const io::WeightSource& init, int64_t begin, const at::Tensor& out) {
  if (out.device().is_cpu()) return init.read_unit_range(index, begin, out);
  // To a device through the bounded pinned staging buffer, a chunk at a time (the copy is
  // synchronous, so the buffer is free again when it returns).
  at::Tensor& staging = shared_.load_staging();
  const int64_t chunk = staging.numel() / int64_t(out.element_size());
  for (int64_t k = 0; k < out.numel(); k += chunk) {
    const int64_t len = std::min(chunk, out.numel() - k);
    at::Tensor host = staging.narrow(0, 0, len * int64_t(out.element_size())).view(out.scalar_type());
    init.read_unit_range(index, begin + k, host);
    out.narrow(0, k, len).copy_(host);
  }
}

void FsdpUnit::ensure_gathered() {
  if (!gather_ || !compat::storage_released(full_)) return;
  CategoryScope scope(plan::MemCategory::unsharded_params);
  const size_t nbytes = size_t(unsharded_bytes());
  buffer_ = buffers_ ? buffers_->acquire(int64_t(nbytes)) : -1;
  if (buffer_ >= 0) compat::refill_storage_with(full_, buffers_->data(buffer_), nbytes);
  else compat::refill_storage(full_, nbytes);  // on the compute stream: it waits for the gather before reuse
  ready_ = shared_.streams.on_gather_stream([&] { shard_comm_.all_gather_into(full_, param_shard_); });
}

void FsdpUnit::use() {
  ensure_gathered();
  shared_.streams.compute_waits(ready_);
  ready_.reset();
}

void FsdpUnit::reshard() {
  if (!gather_ || compat::storage_released(full_)) return;
  // The gather buffer's next gather starts after the compute enqueued so far, which includes every read of
  // it; a gather nobody used yet is waited for first, so its memory is never freed under it.
  shared_.streams.compute_waits(ready_);
  compat::release_storage(full_);
  if (buffer_ >= 0) buffers_->release(buffer_);
  buffer_ = -1;
  ready_.reset();
}

void FsdpUnit::bind_for_autograd() {
  FT_CHECK(!compat::storage_released(full_), ErrorKind::Internal,
           "unit " << index << ": bound for autograd while its parameters are not gathered (use() first)");
  const auto& specs = model_.units()[index].specs;
  model_.bind_params(index, full_, GatherFn::apply(dummy_, this, full_, &specs));
}

void FsdpUnit::on_param_grads(variable_list& grads) {
  // (padded) the unit's whole gradient in flat order, in the dtype its consumer takes (the
  // reduce-scatter's, the no_sync accumulator's, or the replicated gradient's), so that no further
  // unit-sized conversion follows. The parameters' gradients stay alive until this backward
  // returns (autograd holds them), next to it: two units' worth, as the planner counts.
  const at::ScalarType dtype = !sharded_ ? compute_ : cfg_.no_sync ? accum_dtype_ : reduce_;
  at::Tensor flat;
  {
    CategoryScope scope(plan::MemCategory::unsharded_grads);
    flat = at::empty({padded_}, full_.options().dtype(dtype));
  }
  int64_t offset = 0;
  const auto& specs = model_.units()[index].specs;
  for (size_t i = 0; i < specs.size(); ++i) {
    const int64_t n = plan::shape_numel(specs[i].shape);
    at::Tensor part = flat.narrow(0, offset, n);
    if (grads[i].defined()) part.view(grads[i].sizes()).copy_(grads[i]);
    else part.zero_();
    offset += n;
  }
  if (offset < padded_) flat.narrow(0, offset, padded_ - offset).zero_();  // padding
  post_backward(flat);
}

void FsdpUnit::bind_plain() { model_.bind(index, full_); }

void FsdpUnit::post_backward(const at::Tensor& grad) {
  FT_CHECK(grad.numel() == padded_, ErrorKind::Internal, "unit " << index << ": gradient of " << grad.numel()
                                                                  << " elements, expected " << padded_);
  if (!sharded_) {
    full_grad_ += grad.view({-1});
    shared_.phases.mark("backward of " + name);
    return;
  }
  CategoryScope scope(plan::MemCategory::comm_buffers);  // the reduce-scatter's operands
  if (cfg_.no_sync) {
    CategoryScope acc(plan::MemCategory::unsharded_grads);
    if (!unsharded_acc_.defined()) unsharded_acc_ = at::zeros({padded_}, grad_.options());
    unsharded_acc_ += grad.view({-1});
    if (!sync_) {  // not the last micro-batch: keep it, reduce later
      reshard();
      shared_.phases.mark("backward of " + name);
      return;
    }
  }
  // (a copy when accumulating: the accumulator is zeroed for the next step right away)
  at::Tensor g = cfg_.no_sync ? unsharded_acc_.to(reduce_, /*non_blocking=*/false, /*copy=*/true)
                              : grad.view({-1}).to(reduce_).contiguous();
  if (cfg_.no_sync) unsharded_acc_.zero_();
  // On a GPU the reduce-scatter and the accumulation run on the reduce stream, overlapping the
  // previous unit's backward; the one before (which has had this unit's backward to finish) is
  // retired first, so at most one reduce-scatter's input is held.
  shared_.retire_reduce();
  submit_retired_step(shared_);  // the previous unit's gradient shard is complete: its step can start
  shared_.reduce_fence = shared_.streams.on_reduce_stream([&] {
    at::Tensor out = at::empty({shard_numel_}, g.options());
    shard_comm_.reduce_scatter(out, g, comm::ReduceOp::Sum);
    add_converted(grad_, out);
  });
  if (shared_.streams.gpu()) shared_.reduce_inputs = {g};  // (a view of grad when no conversion was needed)
  // This unit steps once its reduce-scatter is retired. Not the root unit: with tied embeddings
  // its gradient arrives twice in one backward; it is the last unit anyway, stepped after it.
  if (shared_.step_in_backward && index != 0) shared_.reduced_for_step = this;
  reshard();  // its backward is done
  shared_.phases.mark("backward of " + name);
}

void FsdpUnit::zero_grad() {
  step_submitted_ = false;  // (a step that failed half-way leaves nothing pending for the next)
  if (grad_.defined()) grad_.zero_();
  if (full_grad_.defined()) full_grad_.zero_();
}

void FsdpUnit::reduce_for_step() {
  CategoryScope scope(plan::MemCategory::comm_buffers);
  if (!sharded_ && shard_comm_.size() == 1) {  // one rank, nothing to reduce: the optimizer reads the gradient as it is
    step_grad_ = full_grad_;
    return;
  }
  switch (cfg_.stage) {
    case plan::Stage::Optimizer: {
      // The reduce-scatter output is this unit's gradient shard (a comm buffer).
      at::Tensor g = full_grad_.scalar_type() == reduce_ ? full_grad_ : full_grad_.to(reduce_);
      step_grad_ = at::empty({shard_numel_}, g.options());
      shard_comm_.reduce_scatter(step_grad_, g, comm::ReduceOp::Sum);
      break;
    }
    case plan::Stage::None:
      step_grad_ = full_grad_.scalar_type() == reduce_ ? full_grad_ : full_grad_.to(reduce_);
      shard_comm_.all_reduce(step_grad_, comm::ReduceOp::Sum);
      break;
    case plan::Stage::Hybrid:
      if (replica_comm_ && replica_comm_->size() > 1) replica_comm_->all_reduce(grad_, comm::ReduceOp::Sum);
      step_grad_ = grad_;
      break;
    default:
      step_grad_ = grad_;
      break;
  }
}

int64_t FsdpUnit::step_grad_extra_bytes() const {
  if (!step_grad_.defined() || step_grad_.is_same(grad_) || step_grad_.is_same(full_grad_)) return 0;
  return int64_t(step_grad_.nbytes());
}

void FsdpUnit::apply_step(double lr) {
  if (offloaded_) {
    FT_CHECK(offload_, ErrorKind::Internal, "unit " << index << ": offloaded, but no OptimizerOffload was set");
    offload_->submit(index, step_grad_, *opt_, master_, cfg_.stage == plan::Stage::None ? full_ : param_shard_, lr);
  } else {
    opt_->step(step_grad_, lr);  // none/fp32: updates full_ itself; bf16-mixed: writes it
    if (policy_.gather_after_step) shard_comm_.all_gather_into(full_, param_shard_);
  }
  step_grad_ = at::Tensor();
}

void FsdpUnit::submit_step_in_backward() {
  FT_CHECK(offloaded_ && sharded_ && !step_submitted_, ErrorKind::Internal,
           "unit " << index << ": a step in backward needs an offloaded sharded unit, submitted once");
  step_grad_ = grad_;
  apply_step(shared_.step_lr);
  step_submitted_ = true;
}

void submit_retired_step(UnitShared& shared) {
  if (FsdpUnit* unit = std::exchange(shared.reduced_for_step, nullptr)) unit->submit_step_in_backward();
}

void FsdpUnit::finish_step() {
  step_submitted_ = false;
  if (!offloaded_) return;
  offload_->wait(index);
  if (policy_.gather_after_step) shard_comm_.all_gather_into(full_, param_shard_);
}

void FsdpUnit::add_persistent_bytes(plan::MemoryBreakdown* b) const {
  auto bytes = [](const at::Tensor& t) { return t.defined() ? uint64_t(t.numel()) * t.element_size() : 0u; };
  using plan::MemCategory;
  // The compute-dtype parameters kept between steps: the shard, or the replica (optimizer, none).
  const at::Tensor& params = sharded_ ? param_shard_ : full_;
  (*b)[MemCategory::params_sharded] += bytes(params);
  if (offloaded_) {  // in host memory
    b->host.master += bytes(master_);
    b->host.optimizer += opt_->state_bytes();
  } else {
    // Unless bf16-mixed, the master is the parameter buffer itself (no second copy).
    if (!params_are_master_) (*b)[MemCategory::master] += bytes(master_);
    (*b)[MemCategory::optimizer] += opt_->state_bytes();
  }
  (*b)[MemCategory::grads_sharded] += sharded_ ? bytes(grad_) : bytes(full_grad_);
  (*b)[MemCategory::unsharded_grads] += bytes(unsharded_acc_);  // no_sync, after the first backward
}

const at::Tensor& FsdpUnit::state(const std::string& name) const {
  if (name == "master") return master_;
  const int i = plan::optimizer_state_index(opt_->kind(), name);
  FT_CHECK(i >= 0, ErrorKind::Internal, "unit " << index << ": the optimizer " << plan::optimizer_name(opt_->kind()) << " has no state " << name);
  return opt_->states()[size_t(i)];
}

int64_t FsdpUnit::state_block(const std::string& name) const {
  const int i = plan::optimizer_state_index(opt_->kind(), name);
  return i < 0 ? 1 : plan::optimizer_states(opt_->kind())[size_t(i)].block;  // master: per element
}

at::Tensor FsdpUnit::gather_state(const std::string& name, int root) {
  const int64_t block = state_block(name), entries = (numel_ + block - 1) / block;
  const bool here = root < 0 || shard_comm_.rank() == root;
  const at::Tensor& mine = state(name);
  const at::ScalarType host = mine.scalar_type() == at::kByte ? at::kByte : at::kFloat;
  at::Tensor out = here ? at::empty({entries}, at::TensorOptions().dtype(host).device(at::kCPU)) : at::Tensor();
  // (pieces of one shard: the device buffer is never more than a step's own shard)
  gather_state_pieces(name, root, std::max<int64_t>(1, mine.numel()), [&](int64_t first, const at::Tensor& piece) {
    if (piece.defined()) out.narrow(0, first, piece.numel()).copy_(piece);
  });
  return out;
}

void FsdpUnit::gather_state_pieces(const std::string& name, int root, int64_t max_piece, const StateSink& sink) {
  FT_CHECK(max_piece > 0, ErrorKind::Internal, "gather_state_pieces: max_piece must be positive");
  const at::Tensor& mine = state(name);
  const int64_t block = state_block(name), entries = (numel_ + block - 1) / block;
  const bool here = root < 0 || shard_comm_.rank() == root;
  // On the CPU (callers write it out), floats as fp32: no fp32 copy of a whole unit on the device,
  // where training still holds its memory.
  const at::ScalarType host = mine.scalar_type() == at::kByte ? at::kByte : at::kFloat;
  auto deliver = [&](int64_t first, const at::Tensor& piece) {
    sink(first, piece.to(at::kCPU, host, /*non_blocking=*/false, /*copy=*/true));
  };
  if (!policy_.shard_states) {  // every rank holds the whole
    for (int64_t at = 0; at < entries; at += max_piece) {
      const at::Tensor piece = mine.narrow(0, at, std::min(max_piece, entries - at));
      if (here) deliver(at, piece);
      else sink(at, at::Tensor());
    }
    return;
  }
  // Rank r's shard (entries [r * shard, (r + 1) * shard); the last ones are padding) in pieces that
  // rank r broadcasts through one device buffer; an offloaded state goes to the device a piece at a
  // time (the communicator's collectives run there). Every rank runs the same loop.
  const int64_t shard = mine.numel(), piece = std::min(std::max<int64_t>(shard, 1), max_piece);
  at::Tensor buf = at::empty({piece}, at::TensorOptions().dtype(mine.scalar_type()).device(cfg_.device));
  for (int64_t r = 0; r < shard_comm_.size() && r * shard < entries; ++r) {
    for (int64_t off = 0; off < shard && r * shard + off < entries; off += piece) {
      const int64_t len = std::min(piece, shard - off), at = r * shard + off;
      const at::Tensor part = buf.narrow(0, 0, len);
      if (shard_comm_.rank() == r) part.copy_(mine.narrow(0, off, len));
      shard_comm_.broadcast(part, int(r));
      if (!here) {
        sink(at, at::Tensor());
        continue;
      }
      shard_comm_.synchronize();  // before the host reads it
      deliver(at, part.narrow(0, 0, std::min(len, entries - at)));
    }
  }
  shard_comm_.synchronize();  // (the buffer is free once every piece has landed)
}

void FsdpUnit::load_state(const io::CheckpointReader& ckpt, int64_t optimizer_steps) {
  ckpt.read_state_range(index, "master", own_begin_, master_);
  const auto& specs = plan::optimizer_states(opt_->kind());
  for (size_t i = 0; i < specs.size(); ++i)  // straight into the optimizer's buffers (on any device)
    ckpt.read_state_range(index, specs[i].name, own_begin_, opt_->states()[i]);
  opt_->set_steps(optimizer_steps);
  // The compute-dtype parameters follow from master, exactly as the optimizer writes them.
  switch (cfg_.stage) {
    case plan::Stage::None:
      if (!full_.is_same(master_)) full_.copy_(master_);
      break;
    case plan::Stage::Optimizer:
      if (!param_shard_.is_same(master_)) param_shard_.copy_(master_);
      shard_comm_.all_gather_into(full_, param_shard_);
      break;
    default:
      if (!param_shard_.is_same(master_)) param_shard_.copy_(master_);
      break;
  }
  zero_grad();
}

}  // namespace ftdist::fsdp
