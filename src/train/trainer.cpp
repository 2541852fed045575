#include "ftdist/train/trainer.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <thread>
#include <vector>
#include <nlohmann/json.hpp>

#include "ftdist/core/check.h"
#include "ftdist/core/dir_lock.h"
#include "ftdist/core/log.h"
#include "ftdist/data/packing.h"
#include "ftdist/fsdp/device_memory.h"
#include "ftdist/fsdp/fsdp_model.h"
#include "ftdist/fsdp/memory_counter.h"
#include "ftdist/io/checkpoint.h"
#include "ftdist/io/hf_export.h"
#include "ftdist/optim/lr_schedule.h"
#include "ftdist/plan/time_model.h"
#include "ftdist/train/checkpoint_saver.h"
#include "ftdist/train/memory_fit.h"
#include "ftdist/train/resolve.h"
#include "model_source.h"
#include "same_on_every_rank.h"
#include "run_log.h"
#include "training_data.h"

namespace ftdist::train {
namespace {

constexpr int64_t kReleaseDataPagesEvery = 50;  // steps

// SIGTERM / SIGINT (e.g. Slurm preemption, Ctrl-C), and SIGUSR1 (what launch/ftdist-mpirun turns
// them into, as mpirun forwards it to every rank) while installed: finish the current step, save,
// then stop cleanly. The default handlers are back when it goes out of scope. A signal noted since
// note_stop_signals() (the process's start) is kept.
// The first signal is noted and the default action restored, so a second one ends the process at
// once (a run stuck where it never checks still stops).
volatile std::sig_atomic_t g_stop_signal = 0;
bool g_noting_since_start = false;  // note_stop_signals() ran: a signal noted before the run is kept
extern "C" void on_stop_signal(int sig) {
  g_stop_signal = sig;
  std::signal(sig, SIG_DFL);  // (async-signal-safe)
}
constexpr int kStopSignals[] = {SIGTERM, SIGINT, SIGUSR1};

class StopSignals {
 public:
  StopSignals() {
    if (!g_noting_since_start) g_stop_signal = 0;
    g_noting_since_start = false;  // (a later run in this process starts afresh)
    for (int sig : kStopSignals) std::signal(sig, g_stop_signal == sig ? SIG_DFL : on_stop_signal);
  }
  ~StopSignals() {
    for (int sig : kStopSignals) std::signal(sig, SIG_DFL);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  // The signal any rank received (0: none): every rank stops after the same step. Collective.
  static int64_t of_any_rank(comm::Communicator& world) {
    at::Tensor stop = at::full({1}, int64_t(g_stop_signal), at::kLong);
    world.all_reduce(stop, comm::ReduceOp::Max);
    return stop.item<int64_t>();
  }
};

// One training run, as the steps it goes through: setup (the constructor: resolve, fit, data,
// model, probe), resume, then the loop of steps with its metrics, evaluation and checkpoints, and
// the end (the last checkpoint, the export, the memory table).
class Trainer {
 public:
  Trainer(const RunConfig& config, comm::Communicator& world);
  void resume();
  void warn_resume_differences(const io::CheckpointMeta& meta) const;
  TrainSummary run();

 private:
  void claim_directories();
  void check_fit_before_loading();
  void load();
  void probe();
  void check_finite_states();
  int64_t first_bad_state(bool optimizer_states);
  std::string bad_state_text(int64_t bad) const;
  fsdp::StepResult train_step(int64_t step, double lr);
  nlohmann::ordered_json metrics_line(int64_t step, const fsdp::StepResult& r, double lr, double secs) const;
  void count_nonfinite(int64_t step, const fsdp::StepResult& r);
  void save(int64_t step);
  void finish();

  StopSignals signals_;  // first: a stop signal while the run loads is kept, and honored before step 1
  comm::Communicator& world_;
  fsdp::CpuMemoryCounter& counter_;  // measured activations, the CPU budget
  ModelSource src_;
  const ResolvedRun run_;
  const RunConfig& c_ = run_.config;
  std::vector<std::unique_ptr<DirLock>> locks_;  // rank 0: output.dir, checkpoint.dir
  std::unique_ptr<FitCheck> fit_;
  std::unique_ptr<comm::Communicator> gpu_comm_;  // the runtime's collectives on a GPU (NCCL); `world_` carries the trainer's
  std::string resume_dir_;
  std::unique_ptr<io::CheckpointReader> resume_;
  const optim::LrSchedule schedule_;
  const nlohmann::ordered_json config_json_;  // stored in every checkpoint
  std::optional<TrainingData> data_;
  std::optional<data::GlobalSampler> sampler_;
  std::unique_ptr<model::LlamaModel> model_;
  std::unique_ptr<fsdp::FsdpModel> fsdp_;
  TrainSummary summary_;
  int64_t first_step_ = 0, saved_step_ = 0;
  std::string bad_states_;  // what the last save found non-finite ("": nothing)
  int64_t nonfinite_streak_ = 0;  // skipped non-finite steps in a row, up to the last one
  std::unique_ptr<MetricsLog> metrics_;
  fsdp::StepResult last_;
};

Trainer::Trainer(const RunConfig& config, comm::Communicator& world)
    : world_(world),
      counter_(fsdp::CpuMemoryCounter::install()),
      src_(model_source(config)),
      run_(resolve_run(config, src_.spec, world, resumed_global_batch(config))),
      schedule_{c_.schedule, c_.lr, c_.warmup_steps, c_.steps, c_.min_lr},
      config_json_(run_config_json(c_)) {
  claim_directories();
  src_.tokenizer_dir = prepare_tokenizer_files(c_, world.rank() == 0);
  check_fit_before_loading();
  resume_dir_ = checkpoint_to_resume(c_);
  if (!resume_dir_.empty()) {
    resume_ = std::make_unique<io::CheckpointReader>(resume_dir_);
    resume_->meta().check_model(src_.spec, resume_dir_ + "/meta.json");
  }
  // The data before the model (a bad token file stops the run before the model loads): mapped, not read.
  data_.emplace(open_training_data(c_, src_.spec.vocab, world));
  sampler_.emplace(data_->train.num_samples(), c_.seed);
  if (run_.global_batch > data_->train.num_samples() && world.rank() == 0)
    FT_LOG_WARN("train.global_batch (" << run_.global_batch << ") exceeds the " << data_->train.num_samples()
                << " samples of data.train: each step sees the data set more than once");
  load();
  probe();
}

// Before anything is trained, rank 0 makes sure the run can write where it will: output.dir and
// checkpoint.dir exist, are writable and are this job's alone (a lock naming the holder refuses a
// second job on them), and a previous export in <output.dir>/hf, replaced at the end, is ftdist's
// own. An error here ends every rank.
void Trainer::claim_directories() {
  if (world_.rank() != 0) return;
  locks_.push_back(std::make_unique<DirLock>(c_.output_dir, "output.dir"));  // (creating its lock file shows it writable)
  // checkpoint.dir has a lock of its own, the default <output.dir>/checkpoints too: another job may
  // name it as its checkpoint.dir.
  if (c_.saves_checkpoints() || c_.resume) locks_.push_back(std::make_unique<DirLock>(c_.checkpoint_root(), "checkpoint.dir"));
  if (c_.export_hf) io::check_replaceable_export(c_.output_dir + "/hf", "output.export");
}

// Fail fast, before anything is allocated: the plan against the per-rank budget, and on a GPU run
// the node's host memory while loading against the least MemAvailable any rank sees (one verdict
// for all). Then (probe()) every persistent buffer and one step at the full sequence length.
void Trainer::check_fit_before_loading() {
  fit_.reset(new FitCheck{src_.spec, runtime_setup(c_, run_.world, c_.micro_batch), run_.budget, c_, run_.world,
                          run_.global_batch});
  fit_->check_plan();
  at::Tensor least = at::full({1}, -int64_t(mem_available_bytes()), at::kLong);
  world_.all_reduce(least, comm::ReduceOp::Max);
  const uint64_t available = uint64_t(-least.item<int64_t>());
  fit_->check_host(available, run_.ranks_per_node);
  fit_->check_step_inputs(available, run_.ranks_per_node);
  if (!run_.gpu()) counter_.set_limit(int64_t(run_.budget.bytes));  // on CPU the budget is enforced like a device's capacity
}

// The runtime over the model's structure, each rank reading its shards from the starting weights
// (the checkpoint when resuming).
void Trainer::load() {
  if (const char* delay = std::getenv("FTDIST_TEST_LOAD_DELAY_S"))  // a load that takes seconds, as a large model's does
    std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(delay)));
  if (run_.gpu()) gpu_comm_ = comm::make_communicator(at::kCUDA);
  model_ = build_model(c_, src_);
  fit_->run("while loading the model into the persistent buffers (parameter, master, optimizer and gradient shards)", [&] {
    fsdp_ = load_model(*model_, gpu_comm_ ? *gpu_comm_ : world_, fsdp_config(c_), starting_weights(src_, resume_.get()),
                       world_.rank() == 0);
  });
}

// One forward and backward at the longest sequence, before step 1 (nothing is updated).
void Trainer::probe() {
  const at::Tensor ids = at::zeros({c_.micro_batch, c_.seq_len}, at::kLong);
  // (packed examples, as the plan counts them: their positions, so the probe attends through the
  // document masks the steps use)
  const at::Tensor positions =
      fit_->setup.packed_documents ? at::arange(c_.seq_len, at::kLong).repeat({c_.micro_batch, 1}) : at::Tensor();
  const at::Device device = fsdp_->config().device;
  fsdp::reset_device_memory_peak(device);  // peaks from here on: the probe's, then the steps'
  fit_->run("in the probe step (one forward and backward of " + std::to_string(c_.micro_batch) + " x " +
                std::to_string(c_.seq_len) + " tokens)",
            [&] { fsdp_->dry_run({ids, ids, positions}); });
  log_probe(src_.spec, fit_->setup, run_.budget, device);
}

namespace {
// Whether `t` holds only finite (and, if asked, non-negative) values, checked 1M elements at a time
// (the temporaries stay small next to what the run holds: a save at its memory limit).
bool finite_slice(const at::Tensor& t, bool non_negative) {
  constexpr int64_t kChunk = int64_t(1) << 20;
  const at::Tensor flat = t.reshape({-1});
  for (int64_t k = 0; k < flat.numel(); k += kChunk) {
    const at::Tensor part = flat.narrow(0, k, std::min(kChunk, flat.numel() - k));
    if (!at::isfinite(part).all().item<bool>() || (non_negative && (part < 0).any().item<bool>())) return false;
  }
  return true;
}
}  // namespace

// The first state, as unit * states + state, that holds NaN or Inf (or a negative second moment) on
// any rank, or -1. Each rank checks the slices it would save (together they cover every element);
// every rank calls it. Optimizer states only when `optimizer_states` (fresh ones are 0); codes never.
int64_t Trainer::first_bad_state(bool optimizer_states) {
  const std::vector<plan::ModelSpec::Unit> units = src_.spec.units();
  const std::vector<plan::OptimizerState> states = io::checkpoint_states(fsdp_->config().optimizer.kind);
  int64_t bad = std::numeric_limits<int64_t>::max();  // this rank's first
  for (size_t u = 0; u < units.size() && bad == std::numeric_limits<int64_t>::max(); ++u)
    for (size_t s = 0; s < states.size(); ++s) {
      if (states[s].dtype == plan::OptimizerState::Dtype::U8 || (s > 0 && !optimizer_states)) continue;
      const at::Tensor t = fsdp_->state_slice(u, states[s].name);
      const bool second_moment = std::string(states[s].name) == "exp_avg_sq";
      if (!finite_slice(t, /*non_negative=*/second_moment)) {
        bad = int64_t(u * states.size() + s);
        break;
      }
    }
  at::Tensor first = at::full({1}, -bad, at::kLong);  // the least over ranks, as a Max of negatives
  world_.all_reduce(first, comm::ReduceOp::Max);
  const int64_t b = -first.item<int64_t>();
  return b == std::numeric_limits<int64_t>::max() ? -1 : b;
}

std::string Trainer::bad_state_text(int64_t bad) const {
  const std::vector<plan::ModelSpec::Unit> units = src_.spec.units();
  const std::vector<plan::OptimizerState> states = io::checkpoint_states(fsdp_->config().optimizer.kind);
  const size_t n = states.size();
  return "unit " + units[size_t(bad) / n].name + " holds NaN or Inf values in its " +
         (bad % int64_t(n) == 0 ? std::string("weights (master)")
                                : "optimizer state " + std::string(states[size_t(bad) % n].name) +
                                      (std::string(states[size_t(bad) % n].name) == "exp_avg_sq" ? " (or negative ones)" : ""));
}

// Weights or optimizer states that are NaN or Inf (a damaged Hugging Face file or checkpoint) would
// make every step non-finite: refused before step 1 on every rank (exit 2), naming the first unit
// and state and where they came from.
void Trainer::check_finite_states() {
  const int64_t b = first_bad_state(resume_ != nullptr);
  if (b < 0) return;
  const std::string from = resume_ ? "the checkpoint " + resume_dir_ : c_.model_path.empty() ? std::string("the initialization") : c_.model_path;
  FT_CHECK_ARG(false, from << ": " << bad_state_text(b) << "; training from them would make every step non-finite");
}

// From the checkpoint, when there is one: the model's states (checked finite, as the loaded weights
// are without one), the step, the skipped steps, the CPU generator; a warning when the trajectory's
// keys changed.
void Trainer::resume() {
  if (resume_) fsdp_->load_state(*resume_);
  check_finite_states();
  if (resume_) {
    const io::CheckpointMeta& meta = resume_->meta();
    first_step_ = meta.step;
    summary_.steps = first_step_;
    summary_.skipped_steps = meta.trainer.value("skipped_steps", int64_t(0));
    summary_.resumed_from = meta.step;
    if (meta.trainer.contains("rng_cpu")) set_cpu_rng_state_hex(meta.trainer["rng_cpu"].get<std::string>(), resume_dir_ + "/meta.json trainer");
    // The data goes on where the saved run stopped (before "position" was saved: its steps x its batch).
    const nlohmann::json& sampler = meta.trainer.value("sampler", nlohmann::json::object());
    sampler_->resume_at(meta.step, sampler.value("position", meta.step * sampler.value("global_batch", run_.global_batch)));
    const std::vector<std::string> changed =
        trajectory_changes(nlohmann::ordered_json(meta.trainer.value("run_config", nlohmann::json::object())), c_);
    if (!changed.empty() && world_.rank() == 0) {
      std::string keys;
      for (const std::string& k : changed) keys += " " + k;
      FT_LOG_WARN("resuming with a run config that differs from the checkpoint's in:" << keys
                  << "; the run will not match an uninterrupted one");
    }
    FT_LOG_INFO("resuming from " << resume_dir_ << " (step " << meta.step << ", saved on " << meta.world_size << " rank(s), shard "
                << meta.stage << ") on " << run_.world << " rank(s), shard " << plan::stage_name(c_.shard));
    FT_CHECK_ARG(first_step_ <= c_.steps, c_.origin << ": train.steps (" << c_.steps << ") is below the checkpoint's step "
                                                    << first_step_ << " (" << resume_dir_ << ")");
    if (world_.rank() == 0) warn_resume_differences(meta);
    resume_.reset();
  }
  saved_step_ = first_step_;
  metrics_ = std::make_unique<MetricsLog>(c_, first_step_, world_.rank() == 0);
}

// What a resumed run does differently from the saved one without any trajectory key changing: data
// of another number of samples (the order of every epoch is a shuffle of them: the rest of this
// one repeats some samples and skips others), another global batch (train.global_batch = 0 where
// micro_batch x ranks does not divide the saved one, or another value), or a decaying schedule over
// another train.steps (the learning rate jumps to the new curve).
void Trainer::warn_resume_differences(const io::CheckpointMeta& meta) const {
  const nlohmann::json& sampler = meta.trainer.value("sampler", nlohmann::json::object());
  const int64_t batch = sampler.value("global_batch", run_.global_batch);
  if (batch != run_.global_batch)
    FT_LOG_WARN("the global batch is " << run_.global_batch << " sequences per step (train.global_batch = " << c_.global_batch
                << (c_.global_batch == 0 ? ": micro_batch x ranks" : "") << "), the checkpoint's run had " << batch
                << ": the data goes on where it stopped, but the resumed run will not match an uninterrupted one; "
                << (batch % (c_.micro_batch * run_.world) == 0
                        ? "train.global_batch = 0 or " + std::to_string(batch) + " keeps it"
                        : "to keep it, choose train.micro_batch and ranks whose product (" + std::to_string(c_.micro_batch * run_.world) +
                              " now) divides it"));
  const int64_t samples = sampler.value("samples", int64_t(-1)), now = data_->train.num_samples();
  if (samples >= 0 && samples != now)
    FT_LOG_WARN("data.train (" << c_.train_data << ") holds " << now << " samples, the checkpoint's run had " << samples
                << ": the samples are drawn in another order from here on, and the resumed run will not match an "
                   "uninterrupted one");
  const nlohmann::json& train = meta.trainer.value("run_config", nlohmann::json::object()).value("train", nlohmann::json::object());
  const int64_t steps = train.value("steps", c_.steps);
  if (steps == c_.steps || schedule_.kind == optim::LrSchedule::Kind::Constant) return;
  optim::LrSchedule before = schedule_;
  before.total_steps = steps;
  // The first step from here whose rate differs (in warmup both rise alike at first).
  auto saved_lr = [&](int64_t k) { return k <= steps ? before.lr_at(k) : before.min_lr; };
  int64_t k = meta.step + 1;
  while (k <= std::max(steps, c_.steps) && std::abs(schedule_.lr_at(k) - saved_lr(k)) <= 1e-9 * std::abs(saved_lr(k))) ++k;
  if (k > std::max(steps, c_.steps)) return;
  FT_LOG_WARN("train.steps is " << c_.steps << ", the checkpoint's run had " << steps << ": the " << optim::schedule_kind_name(c_.schedule)
              << " schedule decays over the new count, so the learning rate of step " << k << " is " << schedule_.lr_at(k)
              << " where the saved run's would be " << saved_lr(k));
}

// The step's micro-batches from the sampler, forward/backward/reduce/clip/update. The first step
// runs what the probe does not (the norm, the update) and fails like it, naming the category.
fsdp::StepResult Trainer::train_step(int64_t step, double lr) {
  auto micro = micro_batches(data_->train, sampler_->step_samples(step, run_.global_batch, world_.rank(), run_.world), c_.micro_batch);
  fsdp::StepResult r;
  if (step == first_step_)
    fit_->run("in step " + std::to_string(step + 1), [&] { r = fsdp_->train_step(micro, lr); });
  else
    r = fsdp_->train_step(micro, lr);
  if (c_.abort_on_nonfinite && !r.no_targets && (r.skipped || !std::isfinite(r.loss)))
    FT_CHECK(false, ErrorKind::Numerics, "step " << step + 1 << ": the loss (" << r.loss << ") or the gradient norm ("
                                                 << r.grad_norm << ") is not finite; stopping (train.nonfinite = abort). The last "
                                                    "checkpoint, if any, is from before it");
  return r;
}

// One metrics.jsonl line (docs/training.md#metrics).
nlohmann::ordered_json Trainer::metrics_line(int64_t step, const fsdp::StepResult& r, double lr, double secs) const {
  using json = nlohmann::ordered_json;
  const double tokens = double(run_.global_batch * c_.seq_len);
  const double flops_per_token = plan::model_flops_per_token(src_.spec, c_.seq_len);
  const at::Device device = fsdp_->config().device;
  return {{"step", step + 1},
          {"loss", r.loss},
          {"lr", lr},
          {"grad_norm", fsdp_->config().global_norm() ? json(r.grad_norm) : json(nullptr)},
          {"tokens", r.tokens},
          {"tokens_per_s", tokens / secs},
          {"mfu", c_.peak_tflops > 0 ? json(flops_per_token * tokens / secs / (double(run_.world) * c_.peak_tflops * 1e12)) : json(nullptr)},
          {"peak_mem_bytes", run_.gpu() ? fsdp::device_memory_peak(device) : fsdp::process_peak_rss_bytes()}};
}

void Trainer::save(int64_t step) {
  // A step whose loss and gradient norm were finite can still leave NaN or Inf weights (an update
  // that overflows): such a checkpoint would be refused on resume and rotate the good ones away.
  if (const int64_t b = first_bad_state(true); b >= 0) {
    bad_states_ = bad_state_text(b);
    if (world_.rank() == 0)
      FT_LOG_WARN("step " << step << ": " << bad_states_ << "; no checkpoint of them is written"
                          << (saved_step_ > 0 ? " (the last checkpoint, step " + std::to_string(saved_step_) + ", is kept)" : std::string()));
    return;
  }
  SaveRequest req;
  req.step = step;
  req.trainer = {{"sampler", {{"seed", c_.seed}, {"next_step", step}, {"global_batch", run_.global_batch}, {"samples", data_->train.num_samples()},
                              {"position", sampler_->position(step, run_.global_batch)}}},
                 {"skipped_steps", summary_.skipped_steps},
                 {"rng_cpu", cpu_rng_state_hex()},
                 {"trajectory_hash", trajectory_hash(c_)},
                 {"run_config", config_json_}};
  req.config_text = src_.config_text;
  req.tokenizer_dir = src_.tokenizer_dir;
  req.model_dir = c_.model_path;
  req.keep = int(c_.checkpoint_keep);
  const std::string dir = save_checkpoint(c_.checkpoint_root(), req, *fsdp_, world_);
  saved_step_ = step;
  bad_states_.clear();
  if (world_.rank() == 0) FT_LOG_INFO("checkpoint: " << dir);
}

TrainSummary Trainer::run() {
  const int n = run_.world;
  FT_LOG_INFO("train: " << src_.spec.name << " (" << src_.spec.param_count() << " parameters), " << data_->train.num_samples()
              << " samples of " << c_.seq_len << " tokens, " << c_.steps << " steps of " << run_.global_batch << " sequences on " << n
              << " rank(s), shard " << plan::stage_name(c_.shard)
              << (c_.shard == plan::Stage::Hybrid ? " (" + std::to_string(n / fsdp_->shard_group_size()) + " replicas of " +
                                                        std::to_string(fsdp_->shard_group_size()) + "-rank shard groups)"
                                                  : std::string())
              << ", " << plan::precision_name(resolved_precision(c_)) << (c_.no_sync ? ", no_sync accumulation" : "")
              << ", " << plan::optimizer_name(c_.optimizer) << (c_.offload_optimizer ? " offloaded to host memory" : "")
              << ", checkpointing " << plan::activation_checkpointing_text(c_.activation_checkpointing, src_.spec.layers));
  for (int64_t step = first_step_; step < c_.steps; ++step) {
    if (const int64_t sig = StopSignals::of_any_rank(world_)) {
      if (world_.rank() == 0)
        std::fprintf(stderr, "%sstopping %s step %lld on signal %lld%s\n", metrics_->terminal() ? "\n" : "",
                     step == first_step_ ? "before" : "after", static_cast<long long>(step == first_step_ ? step + 1 : step),
                     static_cast<long long>(sig),
                     step == first_step_ ? " (nothing trained in this run)"
                     : c_.saves_checkpoints() ? "" : " (no checkpoint: checkpoint.every is 0)");
      summary_.stopped_by_signal = true;
      break;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const double lr = schedule_.lr_at(step + 1);
    const fsdp::StepResult r = train_step(step, lr);
    last_ = r;
    nlohmann::ordered_json line = metrics_line(step, r, lr, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (step == first_step_) summary_.first_loss = r.loss;
    summary_.last_loss = r.loss;
    summary_.steps = step + 1;
    if (r.skipped) ++summary_.skipped_steps;
    if (c_.eval_every > 0 && data_->eval && ((step + 1) % c_.eval_every == 0 || step + 1 == c_.steps))
      if (const std::optional<double> loss = evaluate(*fsdp_, *data_->eval, world_)) line["eval_loss"] = *loss;
    if (r.skipped) {
      line["skipped"] = true;
      if (r.no_targets)
        FT_LOG_WARN("step " << step + 1 << ": no token of the step's " << run_.global_batch << " sequences is trained (every label "
                            "is masked: prompts longer than data.seq_len?); the step was skipped");
      else
        FT_LOG_WARN("step " << step + 1 << ": the gradient norm is not finite; the optimizer step was skipped");
    }
    // The plan against what the first step of this run measured (a mismatch shows before hours
    // are spent), and again at the end.
    if (step == first_step_ && !r.no_targets) {
      report_memory_since_start(c_, src_.spec, fit_->setup, counter_, world_, run_.ranks_per_node);
      if (world_.rank() == 0) print_memory_table(src_.spec, fit_->setup, *fsdp_, r, step + 1);
    }
    metrics_->write(line);
    metrics_->progress(step + 1, line);
    count_nonfinite(step, r);
    // A checkpoint waits out a run of non-finite steps: it would hold the same weights under a
    // later step and rotate the last good one away.
    if (c_.saves_checkpoints() && (step + 1) % c_.checkpoint_every == 0 && nonfinite_streak_ == 0) save(step + 1);
    if ((step + 1) % kReleaseDataPagesEvery == 0) data_->release_pages();
  }
  metrics_->end();
  FT_CHECK(c_.nonfinite_limit == 0 || nonfinite_streak_ == 0 || nonfinite_streak_ < summary_.steps - first_step_, ErrorKind::Numerics,
           "every step of this run (" << first_step_ + 1 << "-" << summary_.steps << ") had a non-finite loss or gradient norm and "
           "was skipped: nothing was trained, and no checkpoint or export is written. Lower train.lr, or check the data and the "
           "initial weights");
  finish();
  return summary_;
}

// train.nonfinite = skip: a skipped step leaves the weights as they were, so weights that have
// gone bad fail every step after; train.nonfinite_limit of them in a row end the run (exit 1).
void Trainer::count_nonfinite(int64_t step, const fsdp::StepResult& r) {
  nonfinite_streak_ = r.skipped && !r.no_targets ? nonfinite_streak_ + 1 : 0;
  if (c_.nonfinite_limit == 0 || nonfinite_streak_ < c_.nonfinite_limit) return;
  metrics_->end();
  FT_CHECK(false, ErrorKind::Numerics,
           "steps " << step + 2 - nonfinite_streak_ << "-" << step + 1 << ": " << nonfinite_streak_ << " steps in a row had a non-finite "
           "loss or gradient norm and were skipped (train.nonfinite_limit = " << c_.nonfinite_limit << "); stopping. The weights are "
           "those after step " << step + 1 - nonfinite_streak_ << (saved_step_ > 0 ? "; the last checkpoint is step " +
                                                                                           std::to_string(saved_step_)
                                                                                     : std::string("; no checkpoint was saved"))
           << ". Lower train.lr or check the data");
}

// The last state is always saved when checkpoints are on (at the end and after a stop signal);
// then the export and the last memory table.
void Trainer::finish() {
  if (c_.saves_checkpoints() && summary_.steps > saved_step_) save(summary_.steps);
  if (c_.export_hf && !summary_.stopped_by_signal && bad_states_.empty())
    if (const int64_t b = first_bad_state(false); b >= 0) bad_states_ = bad_state_text(b);
  FT_CHECK(bad_states_.empty() || (saved_step_ == summary_.steps && !c_.export_hf), ErrorKind::Numerics,
           "after step " << summary_.steps << " " << bad_states_ << ": an update with a finite loss and gradient norm produced "
           "them; they are not checkpointed or exported" << (saved_step_ > 0 ? "; the last checkpoint is step " +
                                                                                    std::to_string(saved_step_)
                                                                              : std::string("; no checkpoint was saved"))
           << ". Lower train.lr or check the data");
  if (c_.export_hf && summary_.stopped_by_signal && world_.rank() == 0)
    FT_LOG_INFO("output.export: not written for a run stopped before train.steps (a resumed run exports at its end)");
  if (c_.export_hf && !summary_.stopped_by_signal) export_model(c_, src_, *fsdp_, world_);
  if (world_.rank() == 0 && summary_.steps > first_step_ + 1) print_memory_table(src_.spec, fit_->setup, *fsdp_, last_, summary_.steps);
}

}  // namespace

void note_stop_signals() {
  g_noting_since_start = true;
  for (int sig : kStopSignals) std::signal(sig, on_stop_signal);
}

TrainSummary run_training(const RunConfig& config, comm::Communicator& world) {
  check_same_config_on_every_rank(config, world);
  check_same_inputs_on_every_rank(config, world);
  Trainer trainer(config, world);
  trainer.resume();
  return trainer.run();
}

}  // namespace ftdist::train
