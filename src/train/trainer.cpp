#include "ftdist/train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>

#include "ftdist/comm/device_binding.h"
#include "ftdist/core/bytes.h"
#include "ftdist/core/check.h"
#include "ftdist/core/log.h"
#include "ftdist/core/progress.h"
#include "ftdist/core/text_file.h"
#include "ftdist/data/packing.h"
#include "ftdist/data/token_cache.h"
#include "ftdist/data/token_file.h"
#include "ftdist/data/tokenizer.h"
#include "ftdist/fsdp/fsdp_model.h"
#include "ftdist/fsdp/device_memory.h"
#include "ftdist/fsdp/memory_counter.h"
#include "ftdist/fsdp/memory_report.h"
#include "ftdist/io/checkpoint.h"
#include "ftdist/io/hf_checkpoint.h"
#include "ftdist/io/hf_export.h"
#include "ftdist/io/random_init.h"
#include "ftdist/model/loss.h"
#include "ftdist/plan/host_memory.h"
#include "ftdist/plan/presets.h"
#include "ftdist/plan/time_model.h"
#include "ftdist/train/checkpointing.h"
#include "ftdist/train/memory_fit.h"

namespace ftdist::train {
namespace {

// SIGTERM / SIGINT (e.g. Slurm preemption, Ctrl-C): finish the current step, then stop cleanly.
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

// The run's model: a Hugging Face directory (its config and, unless a checkpoint is resumed, its
// weights), a preset or a config.json with the seeded random init. A resumed checkpoint supplies
// the starting weights instead (starting_weights()).
struct ModelSource {
  plan::ModelSpec spec;
  std::string config_text;    // for checkpoints and exports
  std::string tokenizer_dir;  // the HF directory, whose tokenizer files travel along
  std::unique_ptr<io::HfCheckpoint> hf;
  std::unique_ptr<io::RandomInit> random;
};

ModelSource model_source(const RunConfig& c) {
  ModelSource m;
  if (!c.model_path.empty()) {
    m.hf = std::make_unique<io::HfCheckpoint>(c.model_path);
    m.spec = m.hf->spec();
    m.config_text = m.hf->config_text();
    m.tokenizer_dir = c.model_path;
    return m;
  }
  if (!c.model_preset.empty()) {
    m.spec = plan::preset_model(c.model_preset);
    m.config_text = plan::hf_config_text(m.spec);
  } else {
    const std::string file = is_directory(c.model_config) ? c.model_config + "/config.json" : c.model_config;
    m.config_text = read_text_file(file, "model.config");
    m.spec = plan::model_from_hf_config_text(m.config_text, file);
  }
  m.random = std::make_unique<io::RandomInit>(m.spec, m.config_text, c.seed);
  return m;
}

const io::WeightSource& starting_weights(const ModelSource& src, const io::CheckpointReader* resume) {
  if (resume) return *resume;
  if (src.hf) return *src.hf;
  return *src.random;
}

// The model's structure only: its parameters get memory from the runtime, which fills each rank's
// part from the starting weights (fsdp::FsdpModel).
std::unique_ptr<model::LlamaModel> build_model(const RunConfig& c, const ModelSource& src) {
  return std::make_unique<model::LlamaModel>(src.spec, at::TensorOptions().dtype(at::kFloat).device(at::kMeta),
                                             runtime_attention(c));
}

// The runtime over `model`, each rank reading its part of every unit from `init`; rank 0 shows the
// progress and the time it took.
std::unique_ptr<fsdp::FsdpModel> load_model(model::LlamaModel& model, comm::Communicator& comm, const fsdp::FsdpConfig& fc,
                                            const io::WeightSource& init, bool report) {
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<ProgressBar> bar;
  if (report) {
    bar = std::make_unique<ProgressBar>("loading " + init.dir(), model.units().size(), "units");
    bar->quiet_for(1.0);  // shown once loading takes more than a second
  }
  auto m = std::make_unique<fsdp::FsdpModel>(model, comm, fc, init, [&](size_t done, size_t) {
    if (bar) bar->update(done);
  });
  if (bar) bar->finish();
  char secs[32];
  std::snprintf(secs, sizeof(secs), "%.2f", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  FT_LOG_INFO("loaded " << model.spec().name << " from " << init.dir() << " in " << secs << " s ("
              << format_bytes(double(m->persistent_bytes().total())) << " per rank on " << m->config().device << ")");
  return m;
}

// The checkpoint to resume from ("" for a fresh start). A fresh run refuses a checkpoint directory
// that already holds another run's checkpoints rather than mixing with them.
std::string checkpoint_to_resume(const RunConfig& c) {
  if (!c.checkpointing_on() && !c.resume) return "";
  const std::string latest = io::find_latest_checkpoint(c.checkpoint_root());
  if (!c.resume) {
    FT_CHECK_ARG(latest.empty(), c.origin << ": checkpoint.dir '" << c.checkpoint_root() << "' already holds checkpoints (latest: "
                                          << latest << "); set checkpoint.resume = true to continue from it, or choose "
                                             "another checkpoint.dir");
    return "";
  }
  if (latest.empty()) FT_LOG_INFO("checkpoint.resume: no checkpoint in '" << c.checkpoint_root() << "' yet; starting at step 0");
  return latest;
}

// Keeps the metrics lines of steps up to `step` (a resumed run rewrites what came after).
void truncate_metrics(const std::string& path, int64_t step) {
  if (!file_exists(path)) return;
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() <= step)
      kept += line + "\n";
  }
  write_text_file_atomic(path, kept, "output.metrics");
}

std::string hex_of(const at::Tensor& bytes) {
  static const char* digits = "0123456789abcdef";
  at::Tensor b = bytes.contiguous();
  const uint8_t* p = b.data_ptr<uint8_t>();
  std::string out;
  for (int64_t i = 0; i < b.numel(); ++i) {
    out.push_back(digits[p[i] >> 4]);
    out.push_back(digits[p[i] & 15]);
  }
  return out;
}

at::Tensor bytes_of_hex(const std::string& hex) {
  at::Tensor t = at::empty({int64_t(hex.size() / 2)}, at::kByte);
  uint8_t* p = t.data_ptr<uint8_t>();
  auto val = [](char ch) { return ch <= '9' ? ch - '0' : ch - 'a' + 10; };
  for (size_t i = 0; i + 1 < hex.size(); i += 2) p[i / 2] = uint8_t(val(hex[i]) * 16 + val(hex[i + 1]));
  return t;
}

// Streams the trained model into <output.dir>/hf, one unit gathered at a time (rank 0 writes).
void export_at_end(const RunConfig& c, const ModelSource& src, fsdp::FsdpModel& fsdp, comm::Communicator& world) {
  const std::string out = c.output_dir + "/hf";
  std::unique_ptr<io::HfExporter> ex;
  if (world.rank() == 0) {
    remove_tree(out, "output.export");  // the previous export of this output directory
    ex = std::make_unique<io::HfExporter>(out, src.spec, src.config_text,
                                          io::ExportOptions{c.export_dtype == "fp32" ? at::kFloat : at::kBFloat16});
  }
  for (size_t u = 0; u < fsdp.num_units(); ++u) {
    at::Tensor flat = fsdp.gather_master(u);
    if (ex) ex->add_unit(flat);
  }
  if (ex) {
    if (!src.tokenizer_dir.empty()) ex->copy_tokenizer_files(src.tokenizer_dir);
    ex->finish();
    FT_LOG_INFO("exported the model to " << out << " (" << c.export_dtype << ")");
  }
  world.barrier();
}

// Runs `work` on rank 0 while the other ranks wait for it, however long it takes: `work` calls the
// heartbeat it is given every few seconds at least (a broadcast the waiting ranks answer), so the
// communicator's timeout bounds rank 0's silence, not the length of the work. An error on rank 0
// ends the job as any error does.
void on_rank0_while_others_wait(comm::Communicator& world, const std::function<void(const std::function<void()>&)>& work) {
  at::Tensor flag = at::zeros({1}, at::kLong);  // 1: still working, 0: done
  if (world.rank() != 0) {
    do world.broadcast(flag, 0);
    while (flag.item<int64_t>() != 0);
    return;
  }
  auto last = std::chrono::steady_clock::now();
  work([&] {
    if (std::chrono::steady_clock::now() - last < std::chrono::seconds(5)) return;
    flag.fill_(1);
    world.broadcast(flag, 0);
    last = std::chrono::steady_clock::now();
  });
  flag.fill_(0);
  world.broadcast(flag, 0);
}

// A data path as samples cut on demand from a memory-mapped token file: a .ftok as it is; JSONL
// tokenized once into <output.dir>/data/ (rank 0 writes, with a progress bar, while the others
// wait; reused while the input and the tokenizer are unchanged).
data::PackedSamples open_samples(const std::string& path, const std::string& what, const RunConfig& c,
                                 const data::Tokenizer& tokenizer, int64_t vocab, comm::Communicator& world) {
  std::string ftok = path;
  if (!data::is_token_file_path(path)) {  // JSONL
    const std::string dir = c.output_dir + "/data";
    on_rank0_while_others_wait(world, [&](const std::function<void()>& heartbeat) {
      if (data::tokenized_cache_is_current(path, c.tokenizer, vocab, dir)) {
        FT_LOG_INFO(what << ": reusing the tokenized " << path << " (" << data::tokenized_cache_path(path, c.tokenizer, vocab, dir) << ")");
        return;
      }
      std::optional<ProgressBar> bar;  // made at the first report, which knows the size
      const std::string out = data::tokenized_cache(path, &tokenizer, c.tokenizer, vocab, dir, what,
                                                    [&](uint64_t done, uint64_t total, size_t docs) {
                                                      if (!bar) {
                                                        bar.emplace("tokenizing " + path, total, "B");
                                                        bar->quiet_for(1.0);  // shown once it takes more than a second
                                                      }
                                                      bar->update(done, std::to_string(docs) + " documents");
                                                      heartbeat();
                                                    },
                                                    heartbeat);
      if (bar) bar->finish();
      FT_LOG_INFO(what << ": tokenized " << path << " into " << out);
    });
    ftok = data::tokenized_cache_path(path, c.tokenizer, vocab, dir);
  }
  return data::PackedSamples(std::make_shared<const data::TokenFile>(ftok, vocab), c.seq_len);
}

// Micro-batches of `micro` sequences from the samples at `idx`: (micro, seq_len) int64 ids and labels,
// cut from the token file now.
std::vector<fsdp::MicroBatch> micro_batches(const data::PackedSamples& samples, const std::vector<int64_t>& idx,
                                            int64_t micro) {
  const int64_t s = samples.seq_len();
  std::vector<fsdp::MicroBatch> out;
  for (size_t start = 0; start < idx.size(); start += size_t(micro)) {
    at::Tensor ids = at::empty({micro, s}, at::kLong), labels = at::empty({micro, s}, at::kLong);
    for (int64_t k = 0; k < micro; ++k)
      samples.sample(idx[start + size_t(k)], ids.data_ptr<int64_t>() + k * s, labels.data_ptr<int64_t>() + k * s);
    out.push_back({ids, labels});
  }
  return out;
}

// The mean loss over every counted token of the eval samples (nullopt when none counts). Samples
// rank, rank + n, ...; every rank runs the same number of forwards (their gathers are
// collectives), the ranks short of one run a last one whose labels count nothing.
std::optional<double> evaluate(fsdp::FsdpModel& fsdp, const data::PackedSamples& eval, comm::Communicator& world) {
  const int n = world.size();
  const int64_t size = eval.num_samples(), per_rank = (size + n - 1) / n;
  double sum = 0;
  int64_t count = 0;
  for (int64_t k = 0; k < per_rank; ++k) {
    const int64_t i = k * n + world.rank();
    fsdp::MicroBatch mb = micro_batches(eval, {std::min(i, size - 1)}, 1).front();
    if (i >= size) mb.labels.fill_(model::kIgnoreIndex);
    fsdp::StepResult e = fsdp.eval_sums(mb);
    sum += e.loss;
    count += e.tokens;
  }
  at::Tensor t = at::tensor({sum, double(count)}, at::kDouble);
  world.all_reduce(t, comm::ReduceOp::Sum);
  if (t[1].item<double>() <= 0) return std::nullopt;
  return t[0].item<double>() / t[1].item<double>();
}

// Rank 0's metrics file (JSON lines): new, or on resume the lines up to `first_step` kept and
// appended to.
std::unique_ptr<std::ofstream> open_metrics(const RunConfig& c, int64_t first_step) {
  make_directories(c.output_dir, "output.dir");
  const std::string path = c.output_dir + "/" + c.metrics;
  if (first_step > 0) truncate_metrics(path, first_step);
  auto metrics = std::make_unique<std::ofstream>(path, first_step > 0 ? std::ios::app : std::ios::trunc);
  FT_CHECK_ARG(metrics->good(), "output.metrics: cannot write '" << path << "'");
  return metrics;
}

// After the first step: the largest peak over the ranks of the resident memory and of the counting
// allocator since the start (loading included), next to the plan's host memory and allocated bytes;
// logged, and kept in <output.dir>/memory.json.
void report_memory_since_start(const RunConfig& c, const plan::ModelSpec& spec, const plan::RunSetup& setup,
                               const fsdp::CpuMemoryCounter& counter, comm::Communicator& world, int per_node) {
  at::Tensor peaks = at::tensor({fsdp::process_peak_rss_bytes(), counter.lifetime_peak()}, at::kLong);
  world.all_reduce(peaks, comm::ReduceOp::Max);
  if (world.rank() != 0) return;
  const plan::MemoryBreakdown planned = plan::estimate_memory(spec, setup);
  const plan::HostMemory host = plan::estimate_host_memory(spec, setup, per_node);
  const int64_t rss = peaks[0].item<int64_t>(), allocated = peaks[1].item<int64_t>();
  const uint64_t planned_allocated = planned.total() - planned[plan::MemCategory::overhead];
  nlohmann::ordered_json j = {
      {"ranks", world.size()},
      {"ranks_per_node", per_node},
      {"planned_per_rank", {{"allocated_bytes", planned_allocated}, {"total_bytes", planned.total()},
                            {"host_load_peak_bytes", host.load_peak}, {"host_steady_bytes", host.steady}}},
      {"measured_largest_rank", {{"peak_rss_bytes", rss},
                                 {"allocated_peak_bytes", setup.host_device ? nlohmann::ordered_json(allocated) : nlohmann::ordered_json(nullptr)}}}};
  write_text_file_atomic(c.output_dir + "/memory.json", j.dump(2) + "\n", "output.dir");
  FT_LOG_INFO("host memory from the start to the end of step 1 (largest rank): peak RSS " << format_bytes(double(rss))
              << " (planned " << format_bytes(double(host.steady)) << " per rank)"
              << (setup.host_device ? ", allocated " + format_bytes(double(allocated)) + " (planned " +
                                          format_bytes(double(planned_allocated)) + ")"
                                    : std::string()));
}

void print_memory_table(const plan::ModelSpec& spec, const plan::RunSetup& setup, const fsdp::FsdpModel& fsdp,
                        const fsdp::StepResult& last, int64_t step) {
  std::printf("after step %lld:\n%s", static_cast<long long>(step), fsdp::memory_report(spec, setup, fsdp, last).c_str());
  std::fflush(stdout);
}

}  // namespace

constexpr int64_t kReleaseDataPagesEvery = 50;  // steps

TrainSummary run_training(const RunConfig& config, comm::Communicator& world) {
  fsdp::CpuMemoryCounter& counter = fsdp::CpuMemoryCounter::install();  // measured activations, the budget
  FT_CHECK_ARG(config.device != "cuda" || comm::cuda_device_present(),
               config.origin << ": parallel.device = \"cuda\", but no CUDA device is present (or ftdist was built without "
                                "CUDA); use \"cpu\" or \"auto\"");
  ModelSource src = model_source(config);
  const int n = world.size();
  const int64_t global_batch = config.global_batch > 0 ? config.global_batch : config.micro_batch * n;
  FT_CHECK_ARG(global_batch % (config.micro_batch * n) == 0,
               config.origin << ": train.global_batch (" << global_batch << ") must be a multiple of train.micro_batch x ranks = "
                             << config.micro_batch * n);
  // Fail fast: the plan against the budget before anything is allocated, then (below) every
  // persistent buffer and one step at the full sequence length before step 1.
  const MemoryBudget budget = memory_budget(config);
  RunConfig c = config;
  if (config.auto_parallel) {
    c = choose_parallel(config, src.spec, n, global_batch, budget);
    FT_LOG_INFO("parallel.auto: shard " << plan::stage_name(c.shard) << ", micro_batch " << c.micro_batch << ", checkpointing "
                << plan::checkpointing_name(c.checkpointing) << " for " << n << " rank(s) of "
                << format_bytes(double(budget.bytes)) << " (" << budget.source << ")");
  }
  if (c.shard == plan::Stage::Hybrid) {
    if (c.shard_group == 0) c.shard_group = comm::local_size();  // collective: every rank, the same config
    FT_CHECK_ARG(n % c.shard_group == 0, c.origin << ": parallel.shard_group (" << c.shard_group << ") must divide the "
                                                  << n << " ranks (hybrid: shard groups of equal size)");
    if (c.shard_group == n && n > 1 && world.rank() == 0)
      FT_LOG_WARN("shard hybrid with one shard group of all " << n << " ranks is full sharding; set parallel.shard_group "
                  "to the ranks that shard together (e.g. one node's)");
  }
  const FitCheck fit{src.spec, runtime_setup(c, n, c.micro_batch), budget, c, n, global_batch};
  fit.check_plan();
  const int ranks_per_node = comm::local_size();  // collective
  {
    // A GPU run's host memory while loading, against the least MemAvailable any rank sees (one
    // verdict for all).
    at::Tensor least = at::full({1}, -int64_t(mem_available_bytes()), at::kLong);
    world.all_reduce(least, comm::ReduceOp::Max);
    fit.check_host(uint64_t(-least.item<int64_t>()), ranks_per_node);
  }
  const bool gpu = resolved_device(c) == "cuda";
  if (!gpu) counter.set_limit(int64_t(budget.bytes));  // on CPU the budget is enforced like a device's capacity
  // On a GPU the runtime's collectives go over NCCL; `world` (CPU) carries the trainer's own.
  std::unique_ptr<comm::Communicator> gpu_comm;
  if (gpu) gpu_comm = comm::make_communicator(at::kCUDA);

  const std::string resume_dir = checkpoint_to_resume(c);
  std::unique_ptr<io::CheckpointReader> resume;
  if (!resume_dir.empty()) {
    resume = std::make_unique<io::CheckpointReader>(resume_dir);
    resume->meta().check_model(src.spec, resume_dir + "/meta.json");
  }
  // The data first (a bad token file stops the run before the model loads): mapped, not read.
  const std::unique_ptr<data::Tokenizer> tokenizer = data::load_tokenizer(c.tokenizer, c.origin + " [data] tokenizer");
  const data::PackedSamples train = open_samples(c.train_data, "data.train", c, *tokenizer, src.spec.vocab, world);
  std::optional<data::PackedSamples> eval;
  if (!c.eval_data.empty()) eval = open_samples(c.eval_data, "data.eval", c, *tokenizer, src.spec.vocab, world);
  data::GlobalSampler sampler(train.num_samples(), c.seed);

  std::unique_ptr<model::LlamaModel> model = build_model(c, src);
  const plan::ModelSpec& spec = model->spec();


  const fsdp::FsdpConfig fc = fsdp_config(c);
  std::unique_ptr<fsdp::FsdpModel> fsdp_ptr;
  fit.run("while loading the model into the persistent buffers (parameter, master, optimizer and gradient shards)", [&] {
    fsdp_ptr = load_model(*model, gpu ? *gpu_comm : world, fc, starting_weights(src, resume.get()), world.rank() == 0);
  });
  fsdp::FsdpModel& fsdp = *fsdp_ptr;
  const at::Device device = fsdp.config().device;
  {
    // One forward and backward at the longest sequence, before step 1 (nothing is updated).
    const at::Tensor ids = at::zeros({c.micro_batch, c.seq_len}, at::kLong);
    // Peaks from here on: the probe's, then the steps' (not the model's construction and copies).
    fsdp::reset_device_memory_peak(device);
    fit.run("in the probe step (one forward and backward of " + std::to_string(c.micro_batch) + " x " +
                std::to_string(c.seq_len) + " tokens)",
            [&] { fsdp.dry_run({ids, ids}); });
    const plan::MemoryBreakdown planned = plan::estimate_memory(spec, fit.setup);
    std::string parts;
    for (plan::MemCategory cat : plan::all_mem_categories())
      if (planned[cat] > 0) parts += std::string(parts.empty() ? "" : ", ") + plan::mem_category_name(cat) + " " + format_bytes(double(planned[cat]));
    FT_LOG_INFO("memory probe: a step fits, peak " << format_bytes(double(fsdp::device_memory_peak(device))) << " allocated per rank on " << device << " (planned "
                << format_bytes(double(planned.total())) << ": " << parts << "; available "
                << (budget.bytes ? format_bytes(double(budget.bytes)) + ", " + budget.source : "unknown") << ")");
  }
  optim::LrSchedule schedule{c.schedule, c.lr, c.warmup_steps, c.steps, c.min_lr};

  TrainSummary summary;
  int64_t first_step = 0;
  const nlohmann::ordered_json config_json = run_config_json(c);
  if (resume) {
    fsdp.load_state(*resume);
    const io::CheckpointMeta& meta = resume->meta();
    first_step = meta.step;
    summary.steps = first_step;
    summary.skipped_steps = meta.trainer.value("skipped_steps", int64_t(0));
    summary.resumed_from = meta.step;
    if (meta.trainer.contains("rng_cpu"))
      at::Generator(at::detail::getDefaultCPUGenerator()).set_state(bytes_of_hex(meta.trainer["rng_cpu"].get<std::string>()));
    if (meta.trainer.value("trajectory_hash", "") != trajectory_hash(c) && world.rank() == 0) {
      std::string keys;
      for (const std::string& k : changed_keys(nlohmann::ordered_json(meta.trainer.value("run_config", nlohmann::json::object())), config_json))
        if (k.rfind("model.", 0) == 0 || k.rfind("data.", 0) == 0 || k.rfind("train.", 0) == 0) keys += " " + k;
      FT_LOG_WARN("resuming with a run config that differs from the checkpoint's in:" << keys
                  << "; the run will not match an uninterrupted one");
    }
    FT_LOG_INFO("resuming from " << resume_dir << " (step " << meta.step << ", saved on " << meta.world_size << " rank(s), shard "
                << meta.stage << ") on " << n << " rank(s), shard " << plan::stage_name(c.shard));
    FT_CHECK_ARG(first_step <= c.steps, c.origin << ": train.steps (" << c.steps << ") is below the checkpoint's step "
                                                 << first_step << " (" << resume_dir << ")");
    resume.reset();
  }

  const std::unique_ptr<std::ofstream> metrics = world.rank() == 0 ? open_metrics(c, first_step) : nullptr;
  int64_t saved_step = first_step;
  auto save = [&](int64_t step) {
    SaveRequest req;
    req.step = step;
    req.trainer = {{"sampler", {{"seed", c.seed}, {"next_step", step}, {"global_batch", global_batch}, {"samples", train.num_samples()}}},
                   {"skipped_steps", summary.skipped_steps},
                   {"rng_cpu", hex_of(at::detail::getDefaultCPUGenerator().get_state())},
                   {"trajectory_hash", trajectory_hash(c)},
                   {"run_config", config_json}};
    req.config_text = src.config_text;
    req.tokenizer_dir = src.tokenizer_dir;
    req.keep = int(c.checkpoint_keep);
    const std::string dir = save_checkpoint(c.checkpoint_root(), req, fsdp, world);
    saved_step = step;
    if (world.rank() == 0) FT_LOG_INFO("checkpoint: " << dir);
  };
  FT_LOG_INFO("train: " << spec.name << " (" << spec.param_count() << " parameters), " << train.num_samples() << " samples of "
              << c.seq_len << " tokens, " << c.steps << " steps of " << global_batch << " sequences on " << n
              << " rank(s), shard " << plan::stage_name(c.shard)
              << (c.shard == plan::Stage::Hybrid ? " (" + std::to_string(n / fsdp.shard_group_size()) + " replicas of " +
                                                       std::to_string(fsdp.shard_group_size()) + "-rank shard groups)"
                                                 : std::string())
              << ", " << plan::precision_name(c.precision) << (c.no_sync ? ", no_sync accumulation" : ""));
  const bool tty = world.rank() == 0 && isatty(fileno(stderr));
  const double flops_per_token = plan::model_flops_per_token(spec, c.seq_len);
  fsdp::StepResult last;
  auto start = std::chrono::steady_clock::now();
  g_stop_signal = 0;
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGINT, on_stop_signal);
  for (int64_t step = first_step; step < c.steps; ++step) {
    // Every rank stops after the same step when any of them was signalled.
    at::Tensor stop = at::full({1}, int64_t(g_stop_signal), at::kLong);
    world.all_reduce(stop, comm::ReduceOp::Max);
    if (stop.item<int64_t>() != 0) {
      if (world.rank() == 0)
        std::fprintf(stderr, "%sstopping after step %lld on signal %lld%s\n", tty ? "\n" : "", static_cast<long long>(step),
                     static_cast<long long>(stop.item<int64_t>()),
                     c.checkpointing_on() ? "" : " (no checkpoint: checkpoint.every is 0)");
      summary.stopped_by_signal = true;
      break;
    }
    auto t0 = std::chrono::steady_clock::now();
    const double lr = schedule.lr_at(step + 1);
    auto micro = micro_batches(train, sampler.step_samples(step, global_batch, world.rank(), n), c.micro_batch);
    fsdp::StepResult r;
    if (step == first_step)  // what the probe does not run (the norm, the update) fails like it, naming the category
      fit.run("in step " + std::to_string(step + 1), [&] { r = fsdp.train_step(micro, lr); });
    else
      r = fsdp.train_step(micro, lr);
    last = r;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (c.abort_on_nonfinite && (r.skipped || !std::isfinite(r.loss)))
      FT_CHECK(false, ErrorKind::Numerics, "step " << step + 1 << ": the loss (" << r.loss << ") or the gradient norm ("
                                                   << r.grad_norm << ") is not finite; stopping (train.nonfinite = abort). The last "
                                                      "checkpoint, if any, is from before it");
    if (step == first_step) summary.first_loss = r.loss;
    summary.last_loss = r.loss;
    summary.steps = step + 1;
    if (r.skipped) ++summary.skipped_steps;
    nlohmann::ordered_json line = {{"step", step + 1}, {"loss", r.loss}, {"lr", lr},
                                   {"grad_norm", fc.global_norm() ? nlohmann::ordered_json(r.grad_norm) : nlohmann::ordered_json(nullptr)},
                                   {"tokens", r.tokens},
                                   {"tokens_per_s", double(global_batch * c.seq_len) / secs},
                                   {"mfu", c.peak_tflops > 0 ? nlohmann::ordered_json(flops_per_token * double(global_batch * c.seq_len) / secs /
                                                                                      (double(n) * c.peak_tflops * 1e12))
                                                             : nlohmann::ordered_json(nullptr)},
                                   {"peak_mem_bytes", gpu ? fsdp::device_memory_peak(device) : fsdp::process_peak_rss_bytes()}};
    if (c.eval_every > 0 && eval && ((step + 1) % c.eval_every == 0 || step + 1 == c.steps))
      if (const std::optional<double> loss = evaluate(fsdp, *eval, world)) line["eval_loss"] = *loss;
    if (r.skipped) {
      line["skipped"] = true;
      FT_LOG_WARN("step " << step + 1 << ": the gradient norm is not finite; the optimizer step was skipped");
    }
    // The plan against what the first step of this run measured (a mismatch shows before hours
    // are spent), and again at the end.
    if (step == first_step) {
      report_memory_since_start(c, spec, fit.setup, counter, world, ranks_per_node);
      if (world.rank() == 0) print_memory_table(spec, fit.setup, fsdp, r, step + 1);
    }
    if (world.rank() == 0) {
      *metrics << line.dump() << "\n";
      metrics->flush();
      if ((step + 1) % c.log_every == 0 || step + 1 == c.steps) {
        double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        double eta = elapsed / double(step + 1) * double(c.steps - step - 1);
        std::fprintf(stderr, "%sstep %lld/%lld  loss %.4f  lr %.2e  %.0f tokens/s  ETA %.0f s%s", tty ? "\r" : "",
                     static_cast<long long>(step + 1), static_cast<long long>(c.steps), r.loss, lr,
                     line["tokens_per_s"].get<double>(), eta, tty ? "   " : "\n");
        std::fflush(stderr);
      }
    }
    if (c.checkpointing_on() && (step + 1) % c.checkpoint_every == 0) save(step + 1);
    // The token files' pages read so far leave the rank's resident memory (they stay in the page
    // cache): over an epoch a rank would otherwise come to hold every page it ever trained on.
    if ((step + 1) % kReleaseDataPagesEvery == 0) {
      train.file().release_pages();
      if (eval) eval->file().release_pages();
    }
  }
  if (tty) std::fprintf(stderr, "\n");
  // The last state is always kept when checkpointing: at the end and after a stop signal.
  if (c.checkpointing_on() && summary.steps > saved_step) save(summary.steps);
  if (c.export_hf) export_at_end(c, src, fsdp, world);
  std::signal(SIGTERM, SIG_DFL);
  std::signal(SIGINT, SIG_DFL);
  if (world.rank() == 0 && summary.steps > first_step + 1) print_memory_table(spec, fit.setup, fsdp, last, summary.steps);
  return summary;
}

}  // namespace ftdist::train
