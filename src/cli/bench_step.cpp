// ftdist bench step — tokens/s and memory of FSDP training steps for a model config and stage,
// world size from mpirun (CPU path; random weights and tokens). Prints the time per step, then the
// planner's per-rank bytes next to the runtime's own persistent buffers and the process peak.
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>

#include "commands.h"
#include "options.h"
#include "ftdist/comm/communicator.h"
#include "ftdist/core/bytes.h"
#include "ftdist/core/check.h"
#include "ftdist/core/log.h"
#include "ftdist/fsdp/fsdp_model.h"
#include "ftdist/fsdp/memory_counter.h"
#include "ftdist/fsdp/memory_report.h"
#include "ftdist/plan/memory_model.h"
#include "ftdist/plan/presets.h"

namespace ftdist::cli {
namespace {

// A small Llama that trains at a useful pace on a CPU.
plan::ModelSpec small_default() {
  plan::ModelSpec m = plan::preset_model("tinyllama-1.1b");
  m.name = "small-llama (bench default)";
  m.hidden = 256, m.intermediate = 688, m.layers = 4, m.heads = 8, m.kv_heads = 4, m.head_dim = 32, m.vocab = 2048;
  return m;
}

}  // namespace

int bench_step_main(int argc, char** argv) {
  cxxopts::Options options("ftdist bench step", "Tokens/s and memory of FSDP training steps (CPU path).");
  options.add_options()
      ("model", "preset name (default: a small 4-layer Llama)", cxxopts::value<std::string>())
      ("model-config", "Hugging Face config.json", cxxopts::value<std::string>())
      ("layers", "override the number of layers", cxxopts::value<int64_t>())
      ("shard", "full | grad-op | optimizer | none | hybrid", cxxopts::value<std::string>()->default_value("full"))
      ("shard-group", "hybrid: ranks per shard group", cxxopts::value<int>()->default_value("0"))
      ("precision", "fp32 | bf16-mixed", cxxopts::value<std::string>()->default_value("fp32"))
      ("checkpointing", "none | full", cxxopts::value<std::string>()->default_value("none"))
      ("prefetch", "units gathered at once (1..8)", cxxopts::value<int>()->default_value("2"))
      ("micro-batch", "sequences per rank per micro-batch", cxxopts::value<int64_t>()->default_value("2"))
      ("grad-accum", "micro-batches per step", cxxopts::value<int>()->default_value("1"))
      ("no-sync", "keep unsharded gradients until the last micro-batch")
      ("seq-len", "tokens per sequence", cxxopts::value<int64_t>()->default_value("128"))
      ("steps", "timed steps", cxxopts::value<int>()->default_value("3"))
      ("warmup", "untimed steps first", cxxopts::value<int>()->default_value("1"))
      ("h,help", "this help");
  cxxopts::ParseResult args = parse_options(options, argc, argv);
  if (print_help_if_asked(options, args)) return 0;

  plan::ModelSpec spec = args.count("model-config") ? plan::model_from_hf_config(args["model-config"].as<std::string>())
                         : args.count("model")      ? plan::preset_model(args["model"].as<std::string>())
                                                    : small_default();
  if (args.count("layers")) spec.layers = args["layers"].as<int64_t>();
  spec.validate("ftdist bench step");
  fsdp::FsdpConfig cfg;
  cfg.stage = plan::stage_from_name(args["shard"].as<std::string>());
  cfg.shard_group = args["shard-group"].as<int>();
  cfg.precision = plan::precision_from_name(args["precision"].as<std::string>());
  cfg.checkpointing = plan::checkpointing_from_name(args["checkpointing"].as<std::string>());
  cfg.prefetch = args["prefetch"].as<int>();
  cfg.no_sync = args.count("no-sync") > 0;
  const int64_t mb = args["micro-batch"].as<int64_t>(), seq = args["seq-len"].as<int64_t>();
  const int accum = args["grad-accum"].as<int>(), steps = args["steps"].as<int>(), warmup = args["warmup"].as<int>();
  FT_CHECK_ARG(mb >= 1 && seq >= 2 && accum >= 1 && steps >= 1 && warmup >= 0,
               "--micro-batch, --grad-accum, --steps must be >= 1, --seq-len >= 2, --warmup >= 0");

  fsdp::CpuMemoryCounter::install();  // measures activations and gathered bytes
  auto world = comm::make_communicator(at::kCPU);
  model::LlamaModel model(spec, at::TensorOptions().dtype(at::kFloat), plan::Attention::Eager);
  at::manual_seed(0);
  for (auto& u : model.units()) u.flat.normal_(0.0, 0.02);
  fsdp::FsdpModel f(model, *world, cfg);
  at::manual_seed(1 + world->rank());
  auto batch = [&] {
    std::vector<fsdp::MicroBatch> micro;
    for (int j = 0; j < accum; ++j) {
      at::Tensor ids = at::randint(0, spec.vocab, {mb, seq}, at::kLong);
      micro.push_back({ids, ids});
    }
    return micro;
  };
  FT_LOG_INFO("bench step: " << spec.name << " (" << spec.param_count() << " parameters), shard " << plan::stage_name(cfg.stage)
              << ", " << plan::precision_name(cfg.precision) << ", checkpointing " << plan::checkpointing_name(cfg.checkpointing)
              << ", " << world->size() << " rank(s), micro-batch " << mb << " x " << seq << " tokens, grad-accum " << accum);
  for (int i = 0; i < warmup; ++i) f.train_step(batch(), 1e-4);
  if (world->rank() == 0) std::printf("%6s %10s %12s %14s %10s\n", "step", "loss", "step s", "tokens/s", "per rank");
  double total_s = 0;
  fsdp::StepResult last;
  for (int i = 0; i < steps; ++i) {
    auto micro = batch();
    world->barrier();
    auto t0 = std::chrono::steady_clock::now();
    fsdp::StepResult r = f.train_step(micro, 1e-4);
    last = r;
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    total_s += s;
    const double tokens = double(mb * seq * accum * world->size());
    if (world->rank() == 0)
      std::printf("%6d %10.4f %12.3f %14.0f %10.0f\n", i + 1, r.loss, s, tokens / s, tokens / s / world->size());
  }

  const plan::RunSetup setup = fsdp::planned_setup(cfg, world->size(), mb, seq, plan::Attention::Eager);
  if (world->rank() == 0) {
    std::printf("\n%s", fsdp::memory_report(spec, setup, f, last).c_str());
    std::printf("# mean %.3f s/step, %.0f tokens/s\n", total_s / steps,
                double(mb * seq * accum * world->size()) * steps / total_s);
  }
  return 0;
}

}  // namespace ftdist::cli
