// FsdpUnit — one unit's sharded state on this rank and the mechanics around its flat parameter
// (gather, release, refill, gradient reduction, optimizer step). Private to fsdp/.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <vector>

#include "device_streams.h"
#include "gather_buffers.h"
#include "optimizer_offload.h"
#include "ftdist/comm/communicator.h"
#include "ftdist/fsdp/device_memory.h"
#include "ftdist/fsdp/fsdp_model.h"
#include "ftdist/io/checkpoint.h"
#include "ftdist/io/weight_source.h"
#include "ftdist/optim/optimizer.h"
#include "ftdist/plan/host_memory.h"
#include "ftdist/plan/memory_model.h"

namespace ftdist::fsdp {

// The step's timeline as measured (StepPhase): mark() closes the phase that just ran.
class PhaseRecorder {
 public:
  explicit PhaseRecorder(at::Device device) : device_(device) {}
  void start();  // a micro-batch's forward begins: the phases so far are dropped
  void mark(std::string name);
  std::vector<StepPhase> take() { return std::move(phases_); }

 private:
  at::Device device_;
  std::vector<StepPhase> phases_;
};

// What the units of one FsdpModel share: the streams their collectives run on and the
// reduce-scatter still reading its input on the reduce stream (GPU; see DeviceStreams).
struct UnitShared {
  explicit UnitShared(at::Device device) : streams(device), phases(device) {}
  DeviceStreams streams;
  PhaseRecorder phases;
  DeviceStreams::Fence reduce_fence;
  std::vector<at::Tensor> reduce_inputs;  // kept alive until the compute stream waited for the fence
  // The compute stream waits for the last reduce-scatter; its inputs can then be freed.
  void retire_reduce() {
    streams.compute_waits(reduce_fence);
    reduce_fence.reset();
    reduce_inputs.clear();
  }
  // Optimizer offload without a global norm: in the step's last backward each unit's step is
  // submitted to the host as soon as its reduce-scatter is retired (submit_retired_step()), so the
  // host updates it while the device runs the earlier units' backward. `step_in_backward` is set by
  // FsdpModel::train_step for that backward only.
  bool step_in_backward = false;
  double step_lr = 0;
  FsdpUnit* reduced_for_step = nullptr;  // the unit whose reduce-scatter is in flight, to step once retired
  // Loading to a GPU: (plan::kLoadStagingBytes) uint8, pinned host memory that shards pass through
  // on their way from the source to the device; made on first use, freed once the model is built.
  at::Tensor& load_staging() {
    if (!staging_.defined())
      staging_ = at::empty({int64_t(plan::kLoadStagingBytes)}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
    return staging_;
  }
  void free_load_staging() {
    if (!staging_.defined()) return;
    staging_ = at::Tensor();
    empty_pinned_host_cache();  // else PyTorch keeps the 64 MiB pinned (and cached) for the whole run
  }

 private:
  at::Tensor staging_;
};

class FsdpUnit {
 public:
  // Allocates this rank's buffers of the unit and fills them from `init` (only the elements each
  // holds: a sharded stage reads its shard, `optimizer` and `none` the replica).
  FsdpUnit(model::LlamaModel& model, size_t index, const plan::ModelSpec::Unit& spec, comm::Communicator& shard_comm,
           comm::Communicator* replica_comm, const FsdpConfig& cfg, UnitShared& shared, const io::WeightSource& init);

  const size_t index;
  const std::string name;  // the unit's: embed, layers.i, head or root
  bool sharded() const { return sharded_; }
  // Bytes of unsharded parameters currently gathered (0 when released; the replica otherwise).
  int64_t gathered_bytes() const { return gather_ ? int64_t(full_.storage().nbytes()) : 0; }
  // Bytes of the whole gathered flat parameter (padded, compute dtype): what a gather buffer must hold.
  int64_t unsharded_bytes() const { return padded_ * int64_t(c10::elementSize(compute_)); }
  // Where later gathers put the parameters (nullptr, the default: memory from the allocator).
  void set_gather_buffers(GatherBuffers* buffers) { buffers_ = buffers; }
  // The part of gathered_bytes() the allocator gave (not a preallocated gather buffer).
  int64_t allocated_gathered_bytes() const { return buffer_ < 0 ? gathered_bytes() : 0; }

  // Starts the all-gather when released (sharded stages): into a free gather buffer, on the gather stream.
  void ensure_gathered();
  // ensure_gathered(), then the compute stream waits for the gather: call before computing with it.
  void use();
  void reshard();                  // release the unsharded storage (and its gather buffer) (sharded stages)
  // Binds the model's parameters of this unit to the outputs of one GatherFn node over the unit's
  // storage: its backward receives every parameter's gradient at once (on_param_grads).
  void bind_for_autograd();
  // The parameters' gradients (undefined: unused this pass) copied into one flat gradient, then
  // post_backward().
  void on_param_grads(std::vector<at::Tensor>& grads);
  void bind_plain();               // binds the model's views to the raw buffer (no autograd)
  // The post-backward phase: the unit's whole flat gradient, once per backward, reduce-scattered
  // into the gradient shard (or kept, no_sync), then the unit reshards.
  void post_backward(const at::Tensor& grad);
  void zero_grad();
  void set_sync(bool sync) { sync_ = sync; }  // false: keep the unsharded gradient (no_sync)
  // Reduces what is left to reduce (optimizer: reduce-scatter of the whole gradient; none:
  // all-reduce; hybrid: all-reduce of the shard across replicas) into the gradient the optimizer
  // will read (step_grad()), then apply_step() steps the optimizer and refreshes the replicated
  // parameters. Without clipping a unit's temporaries live from its reduce to its apply only.
  void reduce_for_step();
  const at::Tensor& step_grad() const { return step_grad_; }
  // Bytes of step_grad() that are not a persistent buffer (a reduce-scatter output, a converted copy).
  int64_t step_grad_extra_bytes() const;
  // Steps the optimizer on step_grad() (offloaded: submits the step to the host, see OptimizerOffload);
  // finish_step() then waits for an offloaded step, and refreshes the replicated parameters (all-gather
  // of the shards) in `optimizer`. Every unit's apply_step() before any finish_step() lets the host
  // update one unit while the next one's gradient comes down.
  void apply_step(double lr);
  void finish_step();
  // True from a step submitted in backward (UnitShared::step_in_backward) until finish_step().
  bool step_submitted() const { return step_submitted_; }
  void submit_step_in_backward();  // the gradient shard is reduced: submit its offloaded step now
  void discard_step_grad() { step_grad_ = at::Tensor(); }
  // Optimizer offload (cfg.offload_optimizer): master and optimizer states are host tensors, and the
  // steps go through `offload` (set once, after every unit exists; it sizes its slots from these).
  void set_offload(OptimizerOffload* offload) { offload_ = offload; }
  int64_t state_numel() const { return master_.numel(); }
  // (replicated on one rank the gradient is read as it is, unconverted: see reduce_for_step())
  at::ScalarType step_grad_dtype() const { return sharded_ ? accum_dtype_ : shard_comm_.size() == 1 ? compute_ : reduce_; }
  at::ScalarType param_dtype() const { return compute_; }
  at::ScalarType master_dtype() const { return master_.scalar_type(); }
  // Bytes this unit keeps between steps, by the planner's categories (see persistent_bytes()).
  void add_persistent_bytes(plan::MemoryBreakdown* b) const;
  // Checkpoint state (io::checkpoint_states): this rank's `name` ("master" or an optimizer state)
  // over unit elements [own_begin(), own_begin() + its length) — the shard, or the whole unit in
  // `none` — per element, or per block of state_block(name) elements.
  int64_t own_begin() const { return own_begin_; }
  int64_t numel() const { return numel_; }
  const at::Tensor& state(const std::string& name) const;
  int64_t state_block(const std::string& name) const;  // 1, or the quantization block of a per-block state
  // The whole unit (unpadded; on the CPU, fp32, or uint8 codes); every rank of the group calls it.
  // (`root` >= 0: whole on that rank of the shard group only, undefined elsewhere)
  at::Tensor gather_state(const std::string& name, int root = -1);
  // The same in pieces of at most `max_piece` entries, in order: `sink(first, piece)` gets entries
  // [first, first + piece.numel()) on the CPU on rank `root` of the shard group (every rank with
  // root < 0), and an undefined piece on the others, as each piece passes. The device holds one
  // piece, the host one piece's copy at a time.
  void gather_state_pieces(const std::string& name, int root, int64_t max_piece, const StateSink& sink);
  int64_t optimizer_steps() const { return opt_->steps(); }
  // Refills master, optimizer states and step from a checkpoint, then the parameters from master.
  void load_state(const io::CheckpointReader& ckpt, int64_t optimizer_steps);

 private:
  // Unit elements [begin, begin + out.numel()) from `init` into `out` (on the runtime's device).
  void load_range(const io::WeightSource& init, int64_t begin, const at::Tensor& out);

  model::LlamaModel& model_;
  comm::Communicator& shard_comm_;
  comm::Communicator* replica_comm_;
  const FsdpConfig& cfg_;
  UnitShared& shared_;
  GatherBuffers* buffers_ = nullptr;
  int buffer_ = -1;                 // the gather buffer holding full_'s memory while gathered, or -1
  DeviceStreams::Fence ready_;    // the gather into full_ not yet waited for by the compute stream
  const plan::StagePolicy policy_;  // what the stage does (plan/run_setup.h)
  bool sharded_;                     // policy_.shard_params: parameters as shards
  bool gather_;  // sharded over more than one rank: the unsharded buffer is gathered and released
  int64_t numel_, shard_numel_, padded_;
  int64_t own_begin_ = 0;  // first unit element of master_ / the optimizer states
  at::ScalarType compute_;
  at::ScalarType accum_dtype_;  // of the gradient shard and the no_sync accumulator
  at::ScalarType reduce_;       // the gradient reductions' dtype (cfg.reduce_dtype)
  bool params_are_master_;     // fp32 and bf16-pure: no separate master copy (unless offloaded)
  bool offloaded_;             // cfg.offload_optimizer: master_ and the optimizer states are host tensors
  bool step_submitted_ = false;
  OptimizerOffload* offload_ = nullptr;
  at::Tensor full_;        // (padded) compute dtype: the unsharded flat parameter's storage
  at::Tensor param_shard_; // (S) compute dtype [sharded and optimizer stages]
  at::Tensor master_;      // fp32 (bf16 in bf16-pure): (S), or (padded) in `none`; host memory when offloaded
  at::Tensor grad_;        // accumulation (S), fp32 (bf16 in bf16-pure) [sharded stages]
  at::Tensor full_grad_;   // (padded) compute dtype: persistent whole gradient [optimizer, none]
  at::Tensor dummy_;       // a leaf that requires grad, so that GatherFn records a node
  at::Tensor unsharded_acc_;  // (padded) fp32: gradients kept across micro-batches (no_sync)
  at::Tensor step_grad_;      // what the optimizer reads this step
  bool sync_ = true;
  std::unique_ptr<optim::Optimizer> opt_;
};

// The retired reduce-scatter's unit, when its step was waiting for it (UnitShared::reduced_for_step):
// its step is submitted now. Called right after UnitShared::retire_reduce().
void submit_retired_step(UnitShared& shared);

}  // namespace ftdist::fsdp
