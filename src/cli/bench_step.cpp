// ftdist bench step — tokens/s and memory of FSDP training steps for a model config and stage,
// world size from mpirun, on the CPU (mpi backend) or one GPU per rank (nccl; local for a plain
// single process). Random weights and tokens. Prints the time per step, then the planner's per-rank
// bytes next to the runtime's own buffers and the measured peak (counting allocator on CPU, the
// caching allocator's statistics on GPU), and MFU when the GPU's peak is known.
#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include "commands.h"
#include "options.h"
#include "ftdist/comm/communicator.h"
#include "ftdist/comm/device_binding.h"
#include "ftdist/core/bytes.h"
#include "ftdist/core/check.h"
#include "ftdist/core/log.h"
#include "ftdist/fsdp/fsdp_model.h"
#include "ftdist/fsdp/device_memory.h"
#include "ftdist/fsdp/memory_counter.h"
#include "ftdist/fsdp/memory_report.h"
#include "ftdist/plan/timeline.h"
#include "ftdist/io/random_init.h"
#include "ftdist/plan/memory_model.h"
#include "ftdist/plan/gpu_catalog.h"
#include "ftdist/plan/limits.h"
#include "ftdist/plan/presets.h"
#include "ftdist/plan/time_model.h"
#include "ftdist/train/memory_fit.h"

namespace ftdist::cli {
namespace {

// A small Llama that trains at a useful pace on a CPU.
plan::ModelSpec small_default() {
  plan::ModelSpec m = plan::preset_model("tinyllama-1.1b");
  m.name = "small-llama (bench default)";
  m.hidden = 256, m.intermediate = 688, m.layers = 4, m.heads = 8, m.kv_heads = 4, m.head_dim = 32, m.vocab = 2048;
  return m;
}

// Model FLOPs utilization: achieved FLOP/s per rank over the peak ("-" when no peak is known).
std::string mfu_text(double flops_per_s, double peak_tflops) {
  if (peak_tflops <= 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f%%", 100.0 * flops_per_s / (peak_tflops * 1e12));
  return buf;
}

void add_bench_step_options(cxxopts::Options& options) {
  options.add_options()
      ("model", "preset name (default: a small 4-layer Llama)", cxxopts::value<std::string>())
      ("model-config", "Hugging Face config.json", cxxopts::value<std::string>())
      ("layers", "override the number of layers", cxxopts::value<int64_t>())
      ("shard", "full | grad-op | optimizer | none | hybrid", cxxopts::value<std::string>()->default_value("full"))
      ("shard-group", "hybrid: ranks per shard group (0: the ranks of one node)", cxxopts::value<int>()->default_value("0"))
      ("device", "cpu | cuda | auto (cuda when a GPU is present)", cxxopts::value<std::string>()->default_value("cpu"))
      ("attention", "eager | flash (default: eager on the CPU, where the planner's activation bytes are exact; flash on a GPU)",
       cxxopts::value<std::string>())
      ("precision", "fp32 | bf16-mixed | bf16-pure", cxxopts::value<std::string>()->default_value("fp32"))
      ("reduce-dtype", "fp32 | bf16 (gradient reductions in bf16-mixed)", cxxopts::value<std::string>()->default_value("fp32"))
      ("gpu", "GPU catalog name for MFU's peak (default: none, and no MFU)",
       cxxopts::value<std::string>())
      ("peak-tflops", "dense bf16 peak per GPU for MFU (overrides --gpu)", cxxopts::value<double>())
      ("checkpointing", "none | full | K (the first K layers)", cxxopts::value<std::string>()->default_value("none"))
      ("prefetch", "units gathered at once (1..8)", cxxopts::value<int>()->default_value("2"))
      ("micro-batch", "sequences per rank per micro-batch", cxxopts::value<int64_t>()->default_value("2"))
      ("grad-accum", "micro-batches per step", cxxopts::value<int>()->default_value("1"))
      ("no-sync", "keep unsharded gradients until the last micro-batch")
      ("offload", "master weights and optimizer states in host memory, the step on the host")
      ("timeline", "print the last step's measured memory per phase")
      ("loss-chunk", "the loss over chunks of this many tokens (0: all logits at once)", cxxopts::value<int64_t>()->default_value("0"))
      ("seq-len", "tokens per sequence", cxxopts::value<int64_t>()->default_value("128"))
      ("steps", "timed steps", cxxopts::value<int>()->default_value("3"))
      ("warmup", "untimed steps first", cxxopts::value<int>()->default_value("1"))
      ("h,help", "this help");
}

// --shard, --shard-group, --precision, --reduce-dtype, --checkpointing, --prefetch, --no-sync, --offload.
fsdp::FsdpConfig runtime_options(const cxxopts::ParseResult& args) {
  fsdp::FsdpConfig cfg;
  cfg.stage = plan::stage_from_name(args["shard"].as<std::string>());
  cfg.shard_group = args["shard-group"].as<int>();
  cfg.precision = plan::precision_from_name(args["precision"].as<std::string>());
  cfg.reduce_dtype = plan::float_type_from_name(args["reduce-dtype"].as<std::string>(), "--reduce-dtype");
  cfg.activation_checkpointing = plan::activation_checkpointing_from_name(args["checkpointing"].as<std::string>());
  cfg.prefetch = args["prefetch"].as<int>();
  cfg.no_sync = args.count("no-sync") > 0;
  cfg.offload_optimizer = args.count("offload") > 0;
  cfg.loss_chunk = args["loss-chunk"].as<int64_t>();
  FT_CHECK_ARG(cfg.loss_chunk >= 0, "--loss-chunk must be >= 0 tokens, got " << cfg.loss_chunk);
  return cfg;
}

// The last step's phases, the planner's (plan/timeline.h: the same names, in the same order) beside
// the measured ones, both peaks marked.
void print_timeline(const plan::ModelSpec& spec, const plan::RunSetup& setup, const fsdp::StepResult& last) {
  const plan::StepTimeline planned = plan::step_timeline(spec, setup);
  std::printf("\n%-28s %14s %14s %8s\n", "phase (last step, rank 0)", "planned", "measured", "error");
  for (size_t k = 0; k < last.phases.size(); ++k) {
    const fsdp::StepPhase& p = last.phases[k];
    const plan::TimelinePhase* q = k < planned.phases.size() && planned.phases[k].name == p.name ? &planned.phases[k] : nullptr;
    const double want = q ? double(q->alive.budgeted(setup.host_device) - q->alive[plan::MemCategory::overhead]) : 0;
    char err[16] = "-";
    if (q && p.peak_bytes > 0) std::snprintf(err, sizeof(err), "%+.1f%%", 100.0 * (want / double(p.peak_bytes) - 1));
    std::printf("%-28s %14s %14s %8s%s%s\n", p.name.c_str(), q ? format_bytes(want).c_str() : "-",
                format_bytes(double(p.peak_bytes)).c_str(), err, &p == last.peak_phase() ? "  <- measured peak" : "",
                q == &planned.peak_phase() ? "  <- planned peak" : "");
  }
}

// The peak the MFU column divides by: --peak-tflops, else the --gpu's from the catalog (its fp32
// peak for precision fp32, which runs without tensor cores: TF32 stays off), else 0 (no MFU).
double mfu_peak_tflops(const cxxopts::ParseResult& args, plan::Precision precision) {
  if (args.count("peak-tflops")) {
    const double peak = args["peak-tflops"].as<double>();
    FT_CHECK_ARG(std::isfinite(peak) && peak > 0, "--peak-tflops: expected a positive TFLOP/s, got " << peak);
    return peak;
  }
  if (!args.count("gpu")) return 0;
  const plan::GpuCatalog catalog = plan::GpuCatalog::load_default();
  const plan::GpuSpec& g = catalog.find(args["gpu"].as<std::string>());
  return precision == plan::Precision::Fp32 ? g.fp32_tflops : g.bf16_tflops;
}

}  // namespace

int bench_step_main(int argc, char** argv) {
  cxxopts::Options options("ftdist bench step", "Tokens/s, MFU and memory of FSDP training steps (CPU or GPU).");
  add_bench_step_options(options);
  cxxopts::ParseResult args = parse_options(options, argc, argv);
  if (print_help_if_asked(options, args)) return 0;

  FT_CHECK_ARG(!(args.count("model") && args.count("model-config")), "ftdist bench step: give one of --model and --model-config, not both");
  plan::ModelSpec spec = args.count("model-config") ? plan::model_from_hf_config(args["model-config"].as<std::string>())
                         : args.count("model")      ? plan::preset_model(args["model"].as<std::string>())
                                                    : small_default();
  if (args.count("layers")) spec.layers = args["layers"].as<int64_t>();
  spec.validate("ftdist bench step");
  fsdp::FsdpConfig cfg = runtime_options(args);
  const bool cuda = cuda_from_device_option(args["device"].as<std::string>());
  const plan::Attention attention = args.count("attention") ? plan::attention_from_name(args["attention"].as<std::string>())
                                    : cuda                  ? plan::Attention::Flash
                                                            : plan::Attention::Eager;
  const double peak_tflops = mfu_peak_tflops(args, cfg.precision);
  const int64_t mb = args["micro-batch"].as<int64_t>(), seq = args["seq-len"].as<int64_t>();
  const int accum = args["grad-accum"].as<int>(), steps = args["steps"].as<int>(), warmup = args["warmup"].as<int>();
  FT_CHECK_ARG(mb >= 1 && mb <= plan::kMaxMicroBatch && seq >= 2 && seq <= plan::kMaxSeqLen && accum >= 1 && steps >= 1 && warmup >= 0,
               "--micro-batch must be 1.." << plan::kMaxMicroBatch << ", --seq-len 2.." << plan::kMaxSeqLen
                                           << ", --grad-accum and --steps >= 1, --warmup >= 0");

  if (!cuda) fsdp::CpuMemoryCounter::install();  // measures activations and gathered bytes
  auto world = comm::make_communicator(cuda ? at::kCUDA : at::kCPU);
  cfg.device = world->device();
  cfg.shard_group = plan::hybrid_group_ranks(cfg.shard_group, comm::local_size());  // collective
  if (!cuda)  // a shape that cannot fit stops here, not in the kernel's OOM killer minutes later
    train::check_fits_host(plan::peak_memory(spec, fsdp::planned_setup(cfg, world->size(), mb, seq, attention)).needed(true),
                           *world, "bench step", "lower --seq-len, --micro-batch or --layers");
  // Random weights: each rank generates only its shards, straight into its buffers.
  model::LlamaModel model(spec, at::TensorOptions().dtype(at::kFloat).device(at::kMeta), attention);
  fsdp::FsdpModel f(model, *world, cfg, io::RandomInit(spec, plan::hf_config_text(spec), 0));
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
              << ", " << plan::precision_name(cfg.precision) << ", checkpointing " << plan::activation_checkpointing_name(cfg.activation_checkpointing)
              << ", " << world->size() << " rank(s) on " << cfg.device << " (" << comm::backend_name(world->backend())
              << "), attention " << plan::attention_name(attention) << ", micro-batch " << mb << " x " << seq
              << " tokens, grad-accum " << accum);
  for (int i = 0; i < warmup; ++i) f.train_step(batch(), 1e-4);
  fsdp::reset_device_memory_peak(cfg.device);  // the peak of the timed steps (persistent buffers included)
  const double flops_per_token = plan::model_flops_per_token(spec, seq);
  if (world->rank() == 0)
    std::printf("%6s %10s %12s %14s %10s %8s\n", "step", "loss", "step s", "tokens/s", "per rank", "MFU");
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
      std::printf("%6d %10.4f %12.3f %14.0f %10.0f %8s\n", i + 1, r.loss, s, tokens / s, tokens / s / world->size(),
                  mfu_text(flops_per_token * tokens / s / world->size(), peak_tflops).c_str());
  }

  const plan::RunSetup setup = fsdp::planned_setup(cfg, world->size(), mb, seq, attention);
  if (world->rank() == 0) {
    const double tokens_per_s = double(mb * seq * accum * world->size()) * steps / total_s;
    std::printf("\n%s", fsdp::memory_report(spec, setup, f, last).c_str());
    if (args.count("timeline")) print_timeline(spec, setup, last);
    std::printf("# mean %.3f s/step, %.0f tokens/s, %.3g TFLOP/s per rank achieved (%.3g FLOPs/token), MFU %s\n",
                total_s / steps, tokens_per_s, flops_per_token * tokens_per_s / world->size() / 1e12, flops_per_token,
                mfu_text(flops_per_token * tokens_per_s / world->size(), peak_tflops).c_str());
  }
  return 0;
}

}  // namespace ftdist::cli
