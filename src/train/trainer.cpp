#include "ftdist/train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "ftdist/core/check.h"
#include "ftdist/core/log.h"
#include "ftdist/core/text_file.h"
#include "ftdist/data/packing.h"
#include "ftdist/data/token_file.h"
#include "ftdist/fsdp/fsdp_model.h"
#include "ftdist/fsdp/memory_counter.h"
#include "ftdist/fsdp/memory_report.h"
#include "ftdist/io/hf_checkpoint.h"
#include "ftdist/model/loss.h"
#include "ftdist/plan/presets.h"

namespace ftdist::train {
namespace {

// SIGTERM / SIGINT (e.g. Slurm preemption, Ctrl-C): finish the current step, then stop cleanly.
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

// The model with its starting weights: a Hugging Face directory, or a seeded random init.
std::unique_ptr<model::LlamaModel> build_model(const RunConfig& c, std::unique_ptr<io::HfCheckpoint>* ckpt) {
  plan::ModelSpec spec;
  if (!c.model_path.empty()) {
    *ckpt = std::make_unique<io::HfCheckpoint>(c.model_path);
    spec = (*ckpt)->spec();
  } else {
    spec = c.model_preset.empty() ? plan::model_from_hf_config(c.model_config) : plan::preset_model(c.model_preset);
  }
  // CPU path: eager attention (SDPA's CPU math backend keeps the probabilities as well, and eager
  // is what the memory model's CPU numbers describe).
  auto m = std::make_unique<model::LlamaModel>(spec, at::TensorOptions().dtype(at::kFloat), plan::Attention::Eager);
  const auto units = spec.units();
  for (size_t u = 0; u < units.size(); ++u) {
    model::UnitParams& up = m->units()[u];
    if (*ckpt) {
      io::load_unit_shard(**ckpt, units[u], 0, up.flat);
      continue;
    }
    at::Generator gen = at::detail::createCPUGenerator(c.seed * 7919ull + u);
    at::NoGradGuard ng;
    up.flat.normal_(0.0, 0.02, gen);
    for (size_t i = 0; i < up.specs.size(); ++i)
      if (up.specs[i].shape.size() == 1 && up.specs[i].name.find("norm") != std::string::npos) up.params[i].fill_(1.0);
      else if (up.specs[i].shape.size() == 1) up.params[i].zero_();  // biases
  }
  return m;
}

std::vector<fsdp::MicroBatch> micro_batches(const std::vector<data::Sample>& samples, const std::vector<int64_t>& idx,
                                            int64_t micro) {
  std::vector<fsdp::MicroBatch> out;
  for (size_t start = 0; start < idx.size(); start += size_t(micro)) {
    std::vector<at::Tensor> ids, labels;
    for (size_t k = start; k < start + size_t(micro); ++k) {
      ids.push_back(at::tensor(samples[size_t(idx[k])].ids, at::kLong));
      labels.push_back(at::tensor(samples[size_t(idx[k])].labels, at::kLong));
    }
    out.push_back({at::stack(ids), at::stack(labels)});
  }
  return out;
}

}  // namespace

TrainSummary run_training(const RunConfig& c, comm::Communicator& world) {
  fsdp::CpuMemoryCounter::install();  // measured activations for the closing memory table
  std::unique_ptr<io::HfCheckpoint> ckpt;
  std::unique_ptr<model::LlamaModel> model = build_model(c, &ckpt);
  const plan::ModelSpec& spec = model->spec();
  const int n = world.size();
  const int64_t global_batch = c.global_batch > 0 ? c.global_batch : c.micro_batch * n;
  FT_CHECK_ARG(global_batch % (c.micro_batch * n) == 0,
               c.origin << ": train.global_batch (" << global_batch << ") must be a multiple of train.micro_batch x ranks = "
                        << c.micro_batch * n);

  std::vector<data::Sample> train = data::pack(data::read_documents(c.train_data, spec.vocab, "data.train"), c.seq_len);
  std::vector<data::Sample> eval;
  if (!c.eval_data.empty()) eval = data::pack(data::read_documents(c.eval_data, spec.vocab, "data.eval"), c.seq_len);
  data::GlobalSampler sampler(int64_t(train.size()), c.seed);

  fsdp::FsdpConfig fc;
  fc.stage = c.shard;
  fc.precision = c.precision;
  fc.reduce_dtype = c.reduce_dtype;
  fc.checkpointing = c.checkpointing;
  fc.adamw.weight_decay = c.weight_decay;
  fc.max_grad_norm = c.grad_clip;
  fsdp::FsdpModel fsdp(*model, world, fc);
  optim::LrSchedule schedule{c.schedule, c.lr, c.warmup_steps, c.steps, c.min_lr};

  std::unique_ptr<std::ofstream> metrics;
  if (world.rank() == 0) {
    make_directories(c.output_dir, "output.dir");
    metrics = std::make_unique<std::ofstream>(c.output_dir + "/" + c.metrics, std::ios::trunc);
    FT_CHECK_ARG(metrics->good(), "output.metrics: cannot write '" << c.output_dir << "/" << c.metrics << "'");
  }
  FT_LOG_INFO("train: " << spec.name << " (" << spec.param_count() << " parameters), " << train.size() << " samples of "
              << c.seq_len << " tokens, " << c.steps << " steps of " << global_batch << " sequences on " << n
              << " rank(s), shard " << plan::stage_name(c.shard) << ", " << plan::precision_name(c.precision));
  const bool tty = world.rank() == 0 && isatty(fileno(stderr));
  TrainSummary summary;
  fsdp::StepResult last;
  auto start = std::chrono::steady_clock::now();
  g_stop_signal = 0;
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGINT, on_stop_signal);
  for (int64_t step = 0; step < c.steps; ++step) {
    // Every rank stops after the same step when any of them was signalled.
    at::Tensor stop = at::full({1}, int64_t(g_stop_signal), at::kLong);
    world.all_reduce(stop, comm::ReduceOp::Max);
    if (stop.item<int64_t>() != 0) {
      if (world.rank() == 0)
        std::fprintf(stderr, "%sstopping after step %lld on signal %lld (no checkpoint: checkpoints are not built yet)\n",
                     tty ? "\n" : "", static_cast<long long>(step), static_cast<long long>(stop.item<int64_t>()));
      summary.stopped_by_signal = true;
      break;
    }
    auto t0 = std::chrono::steady_clock::now();
    const double lr = schedule.lr_at(step + 1);
    auto micro = micro_batches(train, sampler.step_samples(step, global_batch, world.rank(), n), c.micro_batch);
    fsdp::StepResult r = fsdp.train_step(micro, lr);
    last = r;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (step == 0) summary.first_loss = r.loss;
    summary.last_loss = r.loss;
    summary.steps = step + 1;
    if (r.skipped) ++summary.skipped_steps;
    nlohmann::ordered_json line = {{"step", step + 1}, {"loss", r.loss}, {"lr", lr},
                                   {"grad_norm", c.grad_clip > 0 ? nlohmann::ordered_json(r.grad_norm) : nlohmann::ordered_json(nullptr)},
                                   {"tokens", r.tokens},
                                   {"tokens_per_s", double(global_batch * c.seq_len) / secs},
                                   {"peak_mem_bytes", fsdp::process_peak_rss_bytes()}};
    if (c.eval_every > 0 && !eval.empty() && ((step + 1) % c.eval_every == 0 || step + 1 == c.steps)) {
      std::vector<int64_t> all;
      for (int64_t i = world.rank(); i < int64_t(eval.size()); i += n) all.push_back(i);
      double sum = 0;
      int64_t count = 0;
      for (const auto& mb : micro_batches(eval, all, 1)) {
        fsdp::StepResult e = fsdp.eval_sums(mb);
        sum += e.loss;
        count += e.tokens;
      }
      at::Tensor t = at::tensor({sum, double(count)}, at::kDouble);
      world.all_reduce(t, comm::ReduceOp::Sum);
      if (t[1].item<double>() > 0) line["eval_loss"] = t[0].item<double>() / t[1].item<double>();
    }
    if (r.skipped) {
      line["skipped"] = true;
      FT_LOG_WARN("step " << step + 1 << ": the gradient norm is not finite; the optimizer step was skipped");
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
  }
  if (tty) std::fprintf(stderr, "\n");
  std::signal(SIGTERM, SIG_DFL);
  std::signal(SIGINT, SIG_DFL);
  if (world.rank() == 0)
    std::printf("%s", fsdp::memory_report(spec, fsdp::planned_setup(fc, n, c.micro_batch, c.seq_len, plan::Attention::Eager),
                                          fsdp, last).c_str());
  return summary;
}

}  // namespace ftdist::train
