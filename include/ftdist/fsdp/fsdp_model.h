// FsdpModel — fully sharded data parallel training of a LlamaModel, on the CPU or a GPU
// (docs/runtime.md#units-and-flat-parameters).
//
// Each unit (embed, layers.i, head; root when tied) keeps on this rank:
//   param shard   compute dtype, S elements (the all-gather source)        [full, grad-op, hybrid]
//   master        fp32 S (the optimizer's master; in fp32 and bf16-pure the param shard itself)
//   states        the optimizer's (plan/optimizer_state.h), over the master's S elements
//   grad shard    fp32 S (accumulation buffer; bf16 in bf16-pure)
//   full          the unsharded flat parameter, N*S; its storage is released after the unit's
//                 forward (full) and refilled by an all-gather before its backward; parameters
//                 are views into it, so the tensors autograd saved stay valid.
// `optimizer` and `none` keep `full` persistent and replicated and reduce whole gradients at the
// end of the step (reduce-scatter / all-reduce); `hybrid` shards inside groups and all-reduces the
// gradient shards across them.
//
// The unit's gradient arrives as one flat tensor in the backward of the node (GatherFn) that
// produced `full`, which reduce-scatters it into the grad shard: no full gradient is kept.
// With offload_optimizer, master and optimizer states live in host memory and the step runs there
// (OptimizerOffload). `prefetch` units are gathered at once: the next ones before the current unit's forward, the
// previous layers before a layer's backward. In `full` and `hybrid` gathered parameters live in
// preallocated gather buffers (`prefetch` sized to the largest layer, one to the largest edge unit: the
// planner's unsharded_params), taken at a gather and given back at reshard.
//
// GPU (cfg.device CUDA, nccl or local backend): all-gathers run on a gather stream and
// reduce-scatters on a reduce stream, ordered against compute with events (DeviceStreams), so the
// next unit's gather and the previous unit's reduce-scatter overlap the current unit's compute.
// The model puts its communicators in deferred mode (Communicator::set_deferred; the caller's is
// given back as it was at destruction) and synchronizes them before each host read; the CPU path
// runs the same logic with synchronous collectives.
//
//   FsdpModel fsdp(model, world, cfg);
//   StepResult r = fsdp.train_step(micro_batches, lr);   // every rank, same number of micro-batches
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ftdist/comm/communicator.h"
#include "ftdist/io/checkpoint.h"
#include "ftdist/io/weight_source.h"
#include "ftdist/model/llama.h"
#include "ftdist/optim/optimizer.h"
#include "ftdist/plan/memory_model.h"
#include "ftdist/plan/run_setup.h"

namespace ftdist::fsdp {

struct FsdpConfig {
  // Where the runtime keeps its buffers and computes: the CPU (mpi or local backend) or the
  // communicator's GPU (nccl, or local on cuda:0).
  at::Device device = at::kCPU;
  plan::Stage stage = plan::Stage::Full;
  plan::Precision precision = plan::Precision::Fp32;
  plan::FloatType reduce_dtype = plan::FloatType::Fp32;
  // bf16-mixed: the dtype of the gradient shard (and the no_sync accumulators); bf16 halves them
  // and rounds each accumulation. fp32 and bf16-pure ignore it (their gradients are the master's dtype).
  plan::FloatType grad_accum_dtype = plan::FloatType::Fp32;
  plan::ActivationCheckpointing activation_checkpointing = plan::ActivationCheckpointing::None;
  int shard_group = 0;  // hybrid: ranks per shard group, >= 1 (plan::shard_group_size); other stages ignore it
  // Units gathered at once around the one computing (the planner's gather buffers): with 2, the next unit
  // is gathered before the current one runs, in forward (the next unit) and in backward (the
  // previous layer). 1: each unit is gathered just before it is needed.
  int prefetch = 2;
  // Gradient accumulation: false reduce-scatters after every micro-batch into the fp32 shard
  // (memory-light); true keeps each unit's unsharded gradient (fp32) until the last micro-batch and
  // reduces once (less communication, N times the gradient memory).
  bool no_sync = false;
  // The loss over chunks of this many tokens (model::chunked_causal_lm_loss_sum): lm_head and the
  // cross-entropy run one chunk at a time in forward and backward, so fp32 logits exist for one chunk
  // only; 0: the whole micro-batch's logits at once.
  int64_t loss_chunk = 0;
  optim::OptimizerConfig optimizer;  // which optimizer and its hyperparameters
  // Optimizer offload (docs/runtime.md#optimizer-offload): the master and the optimizer states of
  // every unit live in host memory (pinned on a GPU) and the step runs on the host, one unit's
  // update overlapping the next unit's gradient transfer; the device keeps the compute-dtype
  // parameters and the gradient shards. On the CPU the same path runs (host buffers are the device's).
  bool offload_optimizer = false;
  double max_grad_norm = 0;  // > 0: clip the global gradient norm to this
  // Compute the global gradient norm even without clipping, and skip the optimizer step when it is
  // not finite (clipping implies it).
  bool skip_nonfinite = false;

  // The step takes the global gradient norm before any update (clipping or the non-finite check).
  bool global_norm() const { return max_grad_norm > 0 || skip_nonfinite; }
};

struct MicroBatch {
  at::Tensor input_ids;     // (b, s) int64
  at::Tensor labels;        // (b, s) int64, -100 ignored
  at::Tensor position_ids = {};  // (b, s) int64 restarting at 0 per packed example, or undefined (0..s-1)
};

// One phase of a step as the runtime measured it, in the order it ran: the forward of each unit
// (its gather included), the loss, the backward of each unit (ending with its gradient reduction),
// the optimizer step. CPU with the counting allocator (CpuMemoryCounter): the most tensor bytes
// allocated at any moment of the phase; GPU: the bytes allocated at its end; 0 where nothing is
// measured. The planner's timeline has the same phases (plan/timeline.h).
struct StepPhase {
  std::string name;  // "forward of layers.3", "loss", "backward of head", "optimizer step", ...
  int64_t peak_bytes = 0;
  int64_t end_bytes = 0;  // allocated when the phase ended
};

struct StepResult {
  double loss = 0;      // mean over every counted token of every rank and micro-batch
  int64_t tokens = 0;   // counted tokens, all ranks
  // Measured on this rank with the counting CPU allocator (CpuMemoryCounter) when installed, else 0:
  int64_t activation_bytes = 0;        // alive after the last layer and the final norm of the last
                                       // micro-batch's forward, less what was alive before it
  int64_t peak_gathered_bytes = 0;     // most unsharded parameter bytes gathered at once
  // Gathers that found every preallocated gather buffer taken and took allocator memory instead (a
  // disagreement with the planner's gather buffer count; 0 is expected), since construction.
  int64_t gather_buffer_overflows = 0;
  double grad_norm = 0;                // global, before clipping (computed when clipping is on)
  bool skipped = false;                // non-finite gradient norm, or no_targets: no optimizer step was taken
  // No token of the step counts towards the loss (every label -100 on every rank): nothing ran, the
  // loss is NaN, `skipped` is set.
  bool no_targets = false;
  // With a global norm (clipping, skip_nonfinite): the reduced gradients kept for it beyond the
  // persistent buffers, all units together (the planner's comm_buffers in `optimizer` and `none`).
  int64_t held_grad_bytes = 0;
  // Optimizer offload: units whose step the last backward submitted (updated on the host while the
  // device ran the earlier units' backward): all but the root unit in `full` and `grad-op` without
  // a global norm, else 0.
  int64_t steps_in_backward = 0;
  // The last micro-batch's forward and backward, then the step (train_step; dry_run: no step).
  std::vector<StepPhase> phases;
  const StepPhase* peak_phase() const;  // the phase with the most bytes (nullptr when none)
};

class FsdpUnit;
struct UnitShared;

// Receives entries [first, first + piece.numel()) of a gathered unit state (FsdpModel::gather_state_pieces).
using StateSink = std::function<void(int64_t first, const at::Tensor& piece)>;
class GatherBuffers;
class OptimizerOffload;

class FsdpModel {
 public:
  // Starts from `init`: each rank reads only what it keeps of every unit (its shard in `full`,
  // `grad-op` and `hybrid`; the replica in `optimizer` and `none`) straight into its buffers (on a
  // GPU through a bounded pinned staging buffer), so no rank ever holds a whole model. The model's
  // units need no storage of their own (build it on the meta device); they are bound to the
  // runtime's buffers. `on_unit` (optional) is called after each unit is loaded: (units done, units).
  using LoadProgress = std::function<void(size_t done, size_t total)>;
  FsdpModel(model::LlamaModel& model, comm::Communicator& world, FsdpConfig config, const io::WeightSource& init,
            const LoadProgress& on_unit = {});
  // Starts from the model's current (full, identical on every rank) parameters (tests, tools).
  FsdpModel(model::LlamaModel& model, comm::Communicator& world, FsdpConfig config);
  ~FsdpModel();

  StepResult train_step(const std::vector<MicroBatch>& micro_batches, double lr);
  // The memory of a step without its update: forward and backward of `micro_batch` (the reductions
  // run; every rank calls it), the gradients kept for the global norm, then everything discarded —
  // parameters, optimizer states and step count are untouched. The fail-fast memory probe.
  StepResult dry_run(const MicroBatch& micro_batch);
  // Forward only, on this rank's micro-batch: `loss` is the summed token loss, `tokens` the count
  // (not reduced over ranks).
  StepResult eval_sums(const MicroBatch& micro_batch);

  // The whole fp32 master parameters of unit u, gathered on the host (tests). Every rank
  // calls it; with `root` >= 0 only that rank of each shard group gets the whole (an undefined
  // tensor elsewhere). The gather goes through a device buffer of one shard at most: a whole unit's
  // fp32 copy is more than a step ever holds on the device.
  at::Tensor gather_master(size_t u, int root = -1) { return gather_state(u, "master", root); }
  // The same for any checkpointed state (master, or an optimizer state: fp32; codes stay uint8).
  at::Tensor gather_state(size_t u, const std::string& state, int root = -1);
  // Unit u's state in pieces of at most `max_piece` entries, in order, to `sink(first, piece)` on the
  // host of shard-group rank `root` (every rank with root < 0; the others' sinks get an undefined
  // piece as each passes, to keep time): a device buffer of one piece, no whole unit anywhere (the
  // end-of-training export). Every rank of the group calls it.
  void gather_state_pieces(size_t u, const std::string& state, int root, int64_t max_piece, const StateSink& sink);

  // Checkpoints (io/checkpoint.h): this rank writes file shard `index` of `count` when `writes`
  // (in `hybrid` only the first replica writes; in `none` every rank writes a slice of its replica).
  struct StateFiles {
    int index = 0, count = 1;
    bool writes = true;
  };
  StateFiles state_files() const;
  // Unit u's `state` (io::checkpoint_states) over the elements of this rank's file shard (a view of
  // the live buffer; a per-block state: the blocks of those elements).
  at::Tensor state_slice(size_t u, const std::string& state) const;
  int64_t optimizer_steps() const;
  // Every rank: master, optimizer states and step count from `ckpt`, saved on any world size and
  // stage (the checkpoint must be of this model: see CheckpointMeta::check_model).
  void load_state(const io::CheckpointReader& ckpt);
  // What this rank keeps between steps, counted from the runtime's own buffers, in the planner's
  // categories (params_sharded, master, optimizer, grads_sharded, unsharded_params: the gather buffers of
  // `full` and `hybrid`; unsharded_grads: no_sync accumulators once made; the others are 0 here).
  plan::MemoryBreakdown persistent_bytes() const;
  size_t num_units() const;
  const plan::ModelSpec& spec() const { return model_.spec(); }
  const FsdpConfig& config() const { return cfg_; }
  // The ranks that share one copy of the sharded state: the world, or a hybrid shard group.
  int shard_group_size() const { return shard_group_comm_->size(); }

 private:
  at::Tensor forward_loss_sum(const MicroBatch& mb, int64_t* tokens);
  // Forward and backward of one micro-batch, the summed loss divided by `divisor` before the
  // backward; returns the summed loss (tokens: the counted ones).
  at::Tensor forward_backward(const MicroBatch& mb, double divisor, int64_t* tokens);
  // Every unit's gradient reduced for the step (reduce_for_step); returns the bytes held for it.
  int64_t reduce_all_for_step();
  at::Tensor run_unit(size_t u, const at::Tensor& x, const model::ForwardContext* ctx, const at::Tensor& ids);

  // Waits for every collective the model's communicators have outstanding (deferred on a GPU),
  // so that a host read after it cannot hang on a dead peer.
  void sync_collectives();
  bool is_layer(size_t u) const { return u >= 1 && u <= size_t(model_.spec().layers); }

  model::LlamaModel& model_;
  comm::Communicator& world_;
  std::unique_ptr<comm::Communicator> hybrid_shard_comm_, hybrid_replica_comm_;
  FsdpConfig cfg_;
  plan::StagePolicy policy_;  // what cfg_.stage does (plan/run_setup.h)
  std::unique_ptr<UnitShared> shared_;
  std::unique_ptr<GatherBuffers> layer_buffers_, edge_buffers_;  // full / hybrid over more than one rank
  std::vector<std::unique_ptr<FsdpUnit>> units_;
  std::unique_ptr<OptimizerOffload> offload_;  // cfg_.offload_optimizer; destroyed (drained) before the units
  void apply_steps(double lr);  // every unit's apply_step, then every unit's finish_step
  // Alive from a micro-batch's forward until its backward is done:
  model::ForwardContext ctx_;
  struct CheckpointArgs;
  std::vector<std::unique_ptr<CheckpointArgs>> checkpoint_args_;
  // What the head unit hands on: the logits, or with a chunked loss the final-normed hidden states.
  at::Tensor head_output(const at::Tensor& normed) const;
  // The phases of unit u in one micro-batch (the names FSDP2 gives them):
  //   pre_forward    its parameters gathered and waited for; the next units' gathers started (prefetch)
  //   post_forward   resharded when the stage reshards after forward (not the last unit, not a tied root)
  //   pre_backward   gathered again and waited for; the previous layers' gathers started
  //   post_backward  FsdpUnit::post_backward: its gradient reduce-scattered into the shard, resharded
  void pre_forward(size_t u);
  void post_forward(size_t u);
  void pre_backward(size_t u);
  void note_gathered();  // updates peak_gathered_
  // Gathers the prefetch - 1 units that come after unit u in forward (forward = true) or before
  // it in backward (layers only: the embedding's backward needs no weights).
  void gather_ahead(size_t u, bool forward);
  void probe_activations();
  int64_t gathered_now() const;
  int64_t allocated_gathered_now() const;  // gathered bytes not in gather buffers (allocator memory)
  int64_t gather_buffer_overflows() const;
  int64_t peak_gathered_ = 0;
  int64_t forward_start_bytes_ = 0, activation_bytes_ = 0;
  comm::Communicator* shard_group_comm_ = nullptr;  // the group a unit's shards are spread over
  bool world_was_deferred_ = false;      // restored at destruction
};

}  // namespace ftdist::fsdp
