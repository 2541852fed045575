#include "ftdist/fsdp/fsdp_model.h"

#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <limits>
#include <exception>
#include <functional>

#include "fsdp_unit.h"
#include "ftdist/fsdp/device_memory.h"
#include "ftdist/fsdp/memory_category.h"
#include "ftdist/fsdp/memory_counter.h"
#include "ftdist/core/check.h"
#include "ftdist/model/loss.h"
#include "ftdist/optim/clip.h"

namespace ftdist::fsdp {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Full activation checkpointing of one decoder layer: forward without saving anything but the
// input; backward gathers the parameters again, recomputes the layer with autograd and runs its
// backward (whose GatherFn reduce-scatters the layer's gradient).
struct CheckpointArgsFields {
  model::LlamaModel* model;
  FsdpUnit* unit;
  int64_t layer;
  const model::ForwardContext* ctx;
  std::function<void()> pre_backward;  // FsdpModel::pre_backward of the unit
};

struct CheckpointFn : public torch::autograd::Function<CheckpointFn> {
  using Args = CheckpointArgsFields;
  static at::Tensor forward(AutogradContext* c, const at::Tensor& x, Args* a) {
    a->unit->use();
    a->unit->bind_plain();
    at::Tensor y = a->model->layer(a->layer, x, *a->ctx);
    c->save_for_backward({x});
    c->saved_data["args"] = reinterpret_cast<int64_t>(a);
    return y;
  }
  static variable_list backward(AutogradContext* c, variable_list grads) {
    auto* a = reinterpret_cast<Args*>(c->saved_data["args"].toInt());
    at::Tensor x = c->get_saved_variables()[0].detach().requires_grad_(true);
    a->pre_backward();
    at::Tensor y;
    {
      at::AutoGradMode enable(true);
      a->unit->bind_for_autograd();
      y = a->model->layer(a->layer, x, *a->ctx);
    }
    torch::autograd::backward({y}, {grads[0]});
    return {x.grad(), at::Tensor()};
  }
};

}  // namespace

struct FsdpModel::CheckpointArgs : CheckpointArgsFields {};

namespace {
// The model's own unit buffers (any dtype and device) as a weight source.
class ModelWeights : public io::WeightSource {
 public:
  explicit ModelWeights(const model::LlamaModel& m) : m_(m) {}
  const std::string& dir() const override { return name_; }
  const plan::ModelSpec& spec() const override { return m_.spec(); }
  const std::string& config_text() const override { return name_; }
  at::ScalarType stored_dtype() const override { return m_.units().front().flat.scalar_type(); }
  void read_unit_range(size_t u, int64_t begin, const at::Tensor& out) const override {
    const model::UnitParams& unit = m_.units().at(u);
    const int64_t end = std::min(begin + out.numel(), unit.numel), n = std::max<int64_t>(0, end - begin);
    at::Tensor flat = out.view({-1});
    if (n > 0) flat.narrow(0, 0, n).copy_(unit.flat.detach().view({-1}).narrow(0, begin, n));
    if (n < out.numel()) flat.narrow(0, n, out.numel() - n).zero_();  // padding
  }

 private:
  const model::LlamaModel& m_;
  std::string name_ = "the model's parameters";
};
}  // namespace

FsdpModel::FsdpModel(model::LlamaModel& model, comm::Communicator& world, FsdpConfig config)
    : FsdpModel(model, world, config, ModelWeights(model)) {}

FsdpModel::FsdpModel(model::LlamaModel& model, comm::Communicator& world, FsdpConfig config, const io::WeightSource& init,
                     const LoadProgress& on_unit)
    : model_(model), world_(world), cfg_(config), policy_(plan::stage_policy(config.stage)) {
  plan::check_activation_checkpointing(cfg_.activation_checkpointing, model_.spec().layers, "activation checkpointing");
  FT_CHECK_ARG(cfg_.prefetch >= 1 && cfg_.prefetch <= 8, "prefetch must be 1..8 units in flight, got " << cfg_.prefetch);
  if (cfg_.device.is_cuda() && !cfg_.device.has_index()) cfg_.device = at::Device(at::kCUDA, world.device().is_cuda() ? world.device().index() : 0);
  const bool any_device = world.backend() == comm::Backend::Local;
  FT_CHECK_ARG(any_device || world.device() == cfg_.device,
               "the runtime's device " << cfg_.device << " is not the " << comm::backend_name(world.backend())
               << " communicator's (" << world.device() << "): use the nccl backend for CUDA, mpi for the CPU");
  shared_ = std::make_unique<UnitShared>(cfg_.device);
  watch_device_out_of_memory(cfg_.device);
  comm::Communicator* shard = &world;
  if (policy_.replicate_groups) {
    const int g = plan::shard_group_size(cfg_.stage, world.size(), cfg_.shard_group);
    hybrid_shard_comm_ = world.split(world.rank() / g, world.rank());
    hybrid_replica_comm_ = world.split(world.rank() % g, world.rank());
    shard = hybrid_shard_comm_.get();
  }
  shard_group_comm_ = shard;
  world_was_deferred_ = world.deferred();
  for (comm::Communicator* c : {&world, hybrid_shard_comm_.get(), hybrid_replica_comm_.get()})
    if (c) c->set_deferred(shared_->streams.gpu());
  const std::vector<plan::ModelSpec::Unit> specs = model.spec().units();
  for (size_t u = 0; u < specs.size(); ++u) {
    units_.push_back(std::make_unique<FsdpUnit>(model, u, specs[u], *shard, hybrid_replica_comm_.get(), cfg_, *shared_, init));
    init.release_pages();  // what this unit read of a mapped file leaves the rank's resident memory
    if (on_unit) on_unit(u + 1, specs.size());
  }
  shared_->free_load_staging();
  if (cfg_.offload_optimizer) {
    // Staging slots for the largest unit's state; every unit steps on gradients of one dtype.
    int64_t slot = 0;
    for (const auto& unit : units_) slot = std::max(slot, unit->state_numel());
    const FsdpUnit& any = *units_.front();
    CategoryScope scope(plan::MemCategory::optimizer);
    offload_ = std::make_unique<OptimizerOffload>(cfg_.device, slot, any.step_grad_dtype(), any.param_dtype(), any.master_dtype());
    for (auto& unit : units_) unit->set_offload(offload_.get());
  }
  if (policy_.reshard_after_forward && shard->size() > 1) {
    // The gather buffers (docs/runtime.md#gather-buffers-and-prefetch), as the planner counts them: `prefetch` for layers, one for the
    // largest edge unit (the embedding's forward, the head's forward and backward, a tied root's whole pass).
    int64_t layer = 0, edge = 0;
    for (const auto& unit : units_) {
      int64_t& largest = is_layer(unit->index) ? layer : edge;
      largest = std::max(largest, unit->unsharded_bytes());
    }
    CategoryScope scope(plan::MemCategory::unsharded_params);
    layer_buffers_ = std::make_unique<GatherBuffers>("layers", cfg_.prefetch, layer, cfg_.device);
    edge_buffers_ = std::make_unique<GatherBuffers>("edge units", 1, edge, cfg_.device);
    for (auto& unit : units_) unit->set_gather_buffers(is_layer(unit->index) ? layer_buffers_.get() : edge_buffers_.get());
  }
}

FsdpModel::~FsdpModel() {
  try {
    // Not while unwinding from an error: the peers may never finish what is outstanding.
    if (shared_ && shared_->streams.gpu() && std::uncaught_exceptions() == 0) sync_collectives();
  } catch (...) {  // a failed communicator has already reported; nothing to restore
  }
  world_.set_deferred(world_was_deferred_);  // the caller's communicator as it was given
}

size_t FsdpModel::num_units() const { return units_.size(); }

const StepPhase* StepResult::peak_phase() const {
  const StepPhase* best = nullptr;
  for (const StepPhase& p : phases)
    if (!best || p.peak_bytes > best->peak_bytes) best = &p;
  return best;
}

at::Tensor FsdpModel::gather_state(size_t u, const std::string& state, int root) { return units_.at(u)->gather_state(state, root); }
void FsdpModel::gather_state_pieces(size_t u, const std::string& state, int root, int64_t max_piece, const StateSink& sink) {
  units_.at(u)->gather_state_pieces(state, root, max_piece, sink);
}

FsdpModel::StateFiles FsdpModel::state_files() const {
  if (!policy_.shard_states) return {world_.rank(), world_.size(), true};
  return {shard_group_comm_->rank(), shard_group_comm_->size(), !hybrid_replica_comm_ || hybrid_replica_comm_->rank() == 0};
}

at::Tensor FsdpModel::state_slice(size_t u, const std::string& state) const {
  const FsdpUnit& unit = *units_.at(u);
  const StateFiles f = state_files();
  const auto [begin, end] = io::file_shard_range(unit.numel(), f.index, f.count, plan::shard_alignment(cfg_.optimizer.kind));
  if (begin == end) return unit.state(state).narrow(0, 0, 0);  // a trailing shard of a small unit: empty
  const int64_t block = unit.state_block(state);  // the file's shard starts on a block boundary
  const int64_t first = begin / block, entries = (end + block - 1) / block - first;
  return unit.state(state).narrow(0, first - unit.own_begin() / block, entries);
}

int64_t FsdpModel::optimizer_steps() const { return units_.front()->optimizer_steps(); }

void FsdpModel::load_state(const io::CheckpointReader& ckpt) {
  ckpt.meta().check_model(model_.spec(), ckpt.dir() + "/meta.json");
  FT_CHECK_ARG(ckpt.meta().optimizer_kind() == cfg_.optimizer.kind,
               ckpt.dir() << "/meta.json: the checkpoint holds the states of optimizer " << plan::optimizer_name(ckpt.meta().optimizer_kind())
                          << ", this run uses " << plan::optimizer_name(cfg_.optimizer.kind)
                          << " (train.optimizer); resume with the same optimizer, or start a new run from the checkpoint's weights "
                             "(model.path = \"" << ckpt.dir() << "\", and another checkpoint.dir)");
  const int64_t steps = ckpt.meta().optimizer.value("step", ckpt.meta().step);
  for (auto& u : units_) u->load_state(ckpt, steps);
}

int64_t FsdpModel::gathered_now() const {
  int64_t b = 0;
  for (const auto& u : units_) b += u->gathered_bytes();
  return b;
}

int64_t FsdpModel::allocated_gathered_now() const {
  int64_t b = 0;
  for (const auto& u : units_) b += u->allocated_gathered_bytes();
  return b;
}

int64_t FsdpModel::gather_buffer_overflows() const {
  return (layer_buffers_ ? layer_buffers_->overflows() : 0) + (edge_buffers_ ? edge_buffers_->overflows() : 0);
}

void FsdpModel::sync_collectives() {
  for (comm::Communicator* c : {&world_, hybrid_shard_comm_.get(), hybrid_replica_comm_.get()})
    if (c) c->synchronize();
}

void FsdpModel::note_gathered() { peak_gathered_ = std::max(peak_gathered_, gathered_now()); }

void FsdpModel::gather_ahead(size_t u, bool forward) {
  const size_t layers = size_t(model_.spec().layers);
  for (int k = 1; k < cfg_.prefetch; ++k) {
    if (forward) {
      // (layers only: the edge units share one gather buffer, so the head is not gathered ahead while
      // the embedding holds it; a deep prefetch on a shallow model would overflow into an allocation)
      if (u + size_t(k) > layers) break;
      units_[u + size_t(k)]->ensure_gathered();
    } else {
      if (u < size_t(k) + 1 || u - size_t(k) > layers) break;  // layers are units 1..L
      units_[u - size_t(k)]->ensure_gathered();
    }
  }
  note_gathered();
}

void FsdpModel::probe_activations() {
  if (device_memory_measured(cfg_.device))
    activation_bytes_ = device_memory_current(cfg_.device) - allocated_gathered_now() - forward_start_bytes_;
}

plan::MemoryBreakdown FsdpModel::persistent_bytes() const {
  plan::MemoryBreakdown b;
  for (const auto& u : units_) u->add_persistent_bytes(&b);
  for (const GatherBuffers* pool : {layer_buffers_.get(), edge_buffers_.get()})
    if (pool) b[plan::MemCategory::unsharded_params] += uint64_t(pool->count()) * uint64_t(pool->buffer_bytes());
  if (offload_) b.host.staging += offload_->staging_bytes();
  return b;
}

at::Tensor FsdpModel::run_unit(size_t u, const at::Tensor& x, const model::ForwardContext* ctx, const at::Tensor& ids) {
  FsdpUnit& unit = *units_[u];
  const bool layer = is_layer(u);
  pre_forward(u);
  CategoryScope scope(layer || u == 0 ? plan::MemCategory::activations : plan::MemCategory::logits);
  at::Tensor y;
  if (layer && cfg_.activation_checkpointing.covers(int64_t(u) - 1, model_.spec().layers)) {
    checkpoint_args_.push_back(std::make_unique<CheckpointArgs>(
        CheckpointArgs{{&model_, &unit, int64_t(u) - 1, ctx, [this, u] { pre_backward(u); }}}));
    y = CheckpointFn::apply(x, static_cast<CheckpointArgsFields*>(checkpoint_args_.back().get()));
  } else {
    unit.bind_for_autograd();
    if (u == 0) {
      y = model_.embed(ids);
    } else if (layer) {
      y = model_.layer(int64_t(u) - 1, x, *ctx);
    } else {
      at::Tensor normed = model_.final_norm(x);
      probe_activations();
      y = head_output(normed);
    }
    // Before this unit's backward runs: its parameters, and the previous layers' prefetched. The
    // embedding's backward reads only the token ids and the gradient, so unit 0 is not gathered
    // again (a tied root's lm_head part has its own node, whose backward comes first).
    if (y.requires_grad() && u != 0) {
      FsdpModel* self = this;
      y.register_hook([self, u](const at::Tensor& g) {
        self->pre_backward(u);
        return g;
      });
    }
  }
  post_forward(u);
  shared_->phases.mark("forward of " + unit.name);
  return y;
}

at::Tensor FsdpModel::head_output(const at::Tensor& normed) const {
  return cfg_.loss_chunk > 0 ? normed : at::linear(normed, model_.lm_head_weight());  // (a chunked loss applies lm_head itself)
}

void FsdpModel::pre_forward(size_t u) {
  units_[u]->use();
  gather_ahead(u, /*forward=*/true);  // overlaps this unit's compute on a GPU
}

void FsdpModel::post_forward(size_t u) {
  // `full` reshards after forward; the last unit (and a tied root) stays for the backward soon after.
  const bool is_last = u + 1 == units_.size();
  const bool root_tied = model_.spec().tie_embeddings && u == 0;  // also used by lm_head at the end
  if (policy_.reshard_after_forward && !is_last && !root_tied) units_[u]->reshard();
}

void FsdpModel::pre_backward(size_t u) {
  units_[u]->use();
  gather_ahead(u, /*forward=*/false);
}

at::Tensor FsdpModel::forward_loss_sum(const MicroBatch& mb, int64_t* tokens) {
  FT_CHECK_ARG(mb.input_ids.dim() == 2 && mb.labels.sizes() == mb.input_ids.sizes(),
               "a micro-batch needs input_ids and labels of the same (batch, seq) shape");
  checkpoint_args_.clear();  // the previous micro-batch's backward is done
  shared_->streams.capture_compute();
  shared_->phases.start();
  const at::Tensor ids = mb.input_ids.to(cfg_.device), labels = mb.labels.to(cfg_.device);
  FT_CHECK_ARG(!mb.position_ids.defined() || mb.position_ids.sizes() == mb.input_ids.sizes(),
               "position_ids must have input_ids' (batch, seq) shape, got " << mb.position_ids.sizes());
  ctx_ = model_.context(ids.size(1), mb.position_ids);
  forward_start_bytes_ = device_memory_measured(cfg_.device) ? device_memory_current(cfg_.device) - allocated_gathered_now() : 0;
  at::Tensor h;
  for (size_t u = 0; u < units_.size(); ++u) h = run_unit(u, h, &ctx_, ids);
  CategoryScope scope(plan::MemCategory::logits);
  if (model_.spec().tie_embeddings) {  // the root unit also holds lm_head's weight
    units_[0]->bind_for_autograd();
    at::Tensor normed = model_.final_norm(h);
    probe_activations();
    h = head_output(normed);
  }
  *tokens = model::counted_targets(mb.labels);  // the caller's labels (on the CPU: no wait for the device)
  // h: the logits, or with a chunked loss the final-normed hidden states
  at::Tensor loss = cfg_.loss_chunk > 0 ? model::chunked_causal_lm_loss_sum(h, model_.lm_head_weight(), labels, cfg_.loss_chunk)
                                        : model::causal_lm_loss_sum(h, labels);
  shared_->phases.mark("loss");
  return loss;
}

StepResult FsdpModel::eval_sums(const MicroBatch& mb) {
  at::NoGradGuard no_grad;
  int64_t tokens = 0;
  at::Tensor sum = forward_loss_sum(mb, &tokens);
  for (auto& u : units_) u->reshard();  // without a backward, the units kept for it go now
  sync_collectives();  // its all-gathers finished (or timed out) before the host waits for the sum
  StepResult r;
  r.loss = sum.item<double>();
  r.tokens = tokens;
  return r;
}

at::Tensor FsdpModel::forward_backward(const MicroBatch& mb, double divisor, int64_t* tokens) {
  at::Tensor sum = forward_loss_sum(mb, tokens);
  CategoryScope scope(plan::MemCategory::activations);  // the backward's gradients and workspace
  (sum / divisor).backward();
  shared_->retire_reduce();  // the last unit's reduce-scatter is done before anything reads a gradient
  submit_retired_step(*shared_);
  // On a GPU: every collective of this backward finished (or timed out) before the host goes on to
  // anything that could wait on the compute stream (the next micro-batch's copies, a host read).
  sync_collectives();
  return sum.detach();
}

void FsdpModel::apply_steps(double lr) {
  for (auto& u : units_) u->apply_step(lr);
  for (auto& u : units_) u->finish_step();  // offloaded: unit k is gathered while the host updates k + 1
}

int64_t FsdpModel::reduce_all_for_step() {
  int64_t held = 0;
  for (auto& u : units_) u->reduce_for_step();
  for (auto& u : units_) held += u->step_grad_extra_bytes();
  return held;
}

StepResult FsdpModel::dry_run(const MicroBatch& mb) {
  const int64_t counted = model::counted_targets(mb.labels);
  FT_CHECK_ARG(counted > 0, "dry_run: no token of the micro-batch counts towards the loss");
  for (auto& u : units_) {
    u->zero_grad();
    u->set_sync(true);
  }
  StepResult r;
  forward_backward(mb, double(counted), &r.tokens);
  r.activation_bytes = activation_bytes_;
  r.peak_gathered_bytes = peak_gathered_;
  r.gather_buffer_overflows = gather_buffer_overflows();
  if (cfg_.global_norm()) r.held_grad_bytes = reduce_all_for_step();  // what the step holds for the norm
  r.phases = shared_->phases.take();
  for (auto& u : units_) {
    u->discard_step_grad();
    u->zero_grad();
  }
  checkpoint_args_.clear();
  sync_collectives();  // nothing of the probe left outstanding for later host waits
  return r;
}

StepResult FsdpModel::train_step(const std::vector<MicroBatch>& micro_batches, double lr) {
  FT_CHECK_ARG(!micro_batches.empty(), "train_step needs at least one micro-batch");
  // The loss is the mean over every counted token of the step on every rank, so each micro-batch's
  // summed loss is divided by the global count: the gradients then equal one big batch's.
  int64_t mine = 0;
  for (const MicroBatch& mb : micro_batches) mine += model::counted_targets(mb.labels);
  at::Tensor count = at::full({1}, mine, at::TensorOptions().dtype(at::kLong).device(cfg_.device));
  world_.all_reduce(count, comm::ReduceOp::Sum);
  sync_collectives();
  const int64_t total = count.item<int64_t>();
  if (total == 0) {  // (the same on every rank)
    StepResult r;
    r.skipped = r.no_targets = true;
    r.loss = std::numeric_limits<double>::quiet_NaN();
    r.gather_buffer_overflows = gather_buffer_overflows();
    return r;
  }

  for (auto& u : units_) u->zero_grad();
  at::Tensor loss_sum = at::zeros({1}, at::TensorOptions().dtype(at::kDouble).device(cfg_.device));
  // Offloaded, sharded and without a global norm, the last backward submits each unit's step once
  // its gradient shard is reduced (hybrid all-reduces the shards across replicas first: after it).
  const bool step_in_backward = offload_ && !cfg_.global_norm() && policy_.shard_params && !policy_.replicate_groups;
  shared_->step_lr = lr;
  for (size_t i = 0; i < micro_batches.size(); ++i) {
    const MicroBatch& mb = micro_batches[i];
    const bool last = i + 1 == micro_batches.size();
    for (auto& u : units_) u->set_sync(last);
    shared_->step_in_backward = step_in_backward && last;
    int64_t tokens = 0;
    try {
      loss_sum += forward_backward(mb, double(total), &tokens).to(at::kDouble);  // read once, at the end
    } catch (...) {
      shared_->step_in_backward = false;
      shared_->reduced_for_step = nullptr;
      throw;
    }
  }
  shared_->step_in_backward = false;
  StepResult r;
  r.tokens = total;
  r.activation_bytes = activation_bytes_;
  r.peak_gathered_bytes = peak_gathered_;
  if (cfg_.global_norm()) {
    // Every unit's reduced gradient first, then one global norm, then the steps.
    r.held_grad_bytes = reduce_all_for_step();
    sync_collectives();  // the reductions finished (or timed out) before the norm's host read
    std::vector<at::Tensor> grads;
    for (auto& u : units_) grads.push_back(u->step_grad());
    // Over the shard group (a hybrid replica's gradients are the same: the replicas take the first's
    // norm, bit for bit); none: replicated already.
    const optim::ClipResult clip = optim::clip_grad_norm(grads, cfg_.max_grad_norm, policy_.shard_states ? shard_group_comm_ : nullptr,
                                                         optim::NonFinite::Skip, hybrid_replica_comm_.get());
    r.grad_norm = clip.norm;
    r.skipped = !clip.finite;
    if (!r.skipped) {
      apply_steps(lr);
    } else {
      for (auto& u : units_) u->zero_grad();  // the step is skipped; nothing of it carries over
    }
  } else {
    for (auto& u : units_) r.steps_in_backward += u->step_submitted() ? 1 : 0;
    for (auto& u : units_) {
      if (u->step_submitted()) continue;  // in backward already
      u->reduce_for_step();
      u->apply_step(lr);
    }
    for (auto& u : units_) u->finish_step();
  }
  shared_->phases.mark("optimizer step");
  r.phases = shared_->phases.take();
  world_.all_reduce(loss_sum, comm::ReduceOp::Sum);
  sync_collectives();
  r.loss = loss_sum.item<double>() / double(total);
  r.gather_buffer_overflows = gather_buffer_overflows();
  return r;
}

}  // namespace ftdist::fsdp
