// ftdist bench load — how long each rank takes to build its shards of a model, and how much host
// memory it needs while doing so, next to the planner's host-memory figure. The world size comes
// from mpirun; weights from a Hugging Face directory or an ftdist checkpoint (--model-path), or the
// seeded random init of a preset / config.json.
//
//   mpirun -np 4 ftdist bench load --model qwen2.5-0.5b --shard full
//
// Columns per rank: load seconds; peak RSS while loading (the kernel's high-water mark, reset
// just before); RSS after; the counting allocator's peak (CPU runs); planned load peak per rank.
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "ftdist/train/memory_fit.h"
#include "options.h"
#include "ftdist/comm/communicator.h"
#include "ftdist/comm/device_binding.h"
#include "ftdist/core/bytes.h"
#include "ftdist/core/check.h"
#include "ftdist/core/log.h"
#include "ftdist/fsdp/fsdp_model.h"
#include "ftdist/fsdp/memory_counter.h"
#include "ftdist/fsdp/memory_report.h"
#include "ftdist/io/random_init.h"
#include "ftdist/plan/host_memory.h"
#include "ftdist/plan/presets.h"

namespace ftdist::cli {

int bench_load_main(int argc, char** argv) {
  cxxopts::Options options("ftdist bench load", "Seconds and host memory per rank to load a model's shards.");
  options.add_options()
      ("model", "preset name (random init)", cxxopts::value<std::string>())
      ("model-config", "Hugging Face config.json (random init)", cxxopts::value<std::string>())
      ("model-path", "Hugging Face model directory or ftdist checkpoint to read", cxxopts::value<std::string>())
      ("shard", "full | grad-op | optimizer | none | hybrid", cxxopts::value<std::string>()->default_value("full"))
      ("shard-group", "hybrid: ranks per shard group (0: the ranks of one node)", cxxopts::value<int>()->default_value("0"))
      ("precision", "fp32 | bf16-mixed | bf16-pure", cxxopts::value<std::string>()->default_value("fp32"))
      ("device", "cpu | cuda | auto (cuda when a GPU is present)", cxxopts::value<std::string>()->default_value("cpu"))
      ("seed", "random init seed", cxxopts::value<uint64_t>()->default_value("0"))
      ("h,help", "this help");
  cxxopts::ParseResult args = parse_options(options, argc, argv);
  if (print_help_if_asked(options, args)) return 0;
  FT_CHECK_ARG(args.count("model") + args.count("model-config") + args.count("model-path") == 1,
               "ftdist bench load: give exactly one of --model, --model-config, --model-path");
  fsdp::FsdpConfig cfg;
  cfg.stage = plan::stage_from_name(args["shard"].as<std::string>());
  cfg.shard_group = args["shard-group"].as<int>();
  cfg.precision = plan::precision_from_name(args["precision"].as<std::string>());
  const bool cuda = cuda_from_device_option(args["device"].as<std::string>());

  std::unique_ptr<io::WeightSource> init;
  if (args.count("model-path")) {
    init = io::open_weights(args["model-path"].as<std::string>(), "--model-path");
  } else {
    plan::ModelSpec spec = args.count("model") ? plan::preset_model(args["model"].as<std::string>())
                                               : plan::model_from_hf_config(args["model-config"].as<std::string>());
    init = std::make_unique<io::RandomInit>(spec, plan::hf_config_text(spec), args["seed"].as<uint64_t>());
  }
  const plan::ModelSpec& spec = init->spec();

  fsdp::CpuMemoryCounter& counter = fsdp::CpuMemoryCounter::install();
  auto world = comm::make_communicator(cuda ? at::kCUDA : at::kCPU);
  cfg.device = world->device();
  cfg.shard_group = plan::hybrid_group_ranks(cfg.shard_group, comm::local_size());  // collective
  // The report's own small collectives go over the CPU (the nccl backend takes GPU tensors only).
  std::unique_ptr<comm::Communicator> cpu_comm;
  if (cuda) cpu_comm = comm::make_communicator(at::kCPU);
  comm::Communicator& host = cuda ? *cpu_comm : *world;
  const int ranks_per_node = comm::local_size();
  model::LlamaModel model(spec, at::TensorOptions().dtype(at::kFloat).device(at::kMeta));
  const plan::RunSetup setup = fsdp::planned_setup(cfg, world->size(), 1, 2, plan::Attention::Flash);
  const plan::HostMemory planned = plan::estimate_host_memory(spec, setup, ranks_per_node);
  train::check_fits_host(planned.load_peak, host, "bench load", "use more ranks or nodes, or a smaller model");
  FT_LOG_INFO("bench load: " << spec.name << " (" << spec.param_count() << " parameters) from " << init->dir() << ", shard "
              << plan::stage_name(cfg.stage) << ", " << plan::precision_name(cfg.precision) << ", " << world->size()
              << " rank(s) on " << cfg.device << ", " << ranks_per_node << " per node");

  host.barrier();
  const bool hwm = fsdp::reset_peak_rss();
  const int64_t alloc_before = counter.current();
  const auto t0 = std::chrono::steady_clock::now();
  fsdp::FsdpModel f(model, *world, cfg, *init);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double peak_rss = double(hwm ? fsdp::peak_rss_since_reset_bytes() : fsdp::process_peak_rss_bytes());
  const double mine[] = {secs, peak_rss, double(fsdp::current_rss_bytes()), double(counter.lifetime_peak() - alloc_before),
                         double(f.persistent_bytes().total())};
  constexpr int kCols = 5;
  world->synchronize();
  at::Tensor all = at::empty({host.size() * kCols}, at::kDouble);
  host.all_gather_into(all, at::tensor(c10::ArrayRef<double>(mine, kCols), at::kDouble));
  if (host.rank() == 0) {
    std::printf("%5s %9s %14s %14s %14s %14s %16s\n", "rank", "load s", "peak RSS", "RSS after", "allocated",
                "persistent", "planned (load)");
    double worst_s = 0, worst_rss = 0;
    for (int r = 0; r < host.size(); ++r) {
      const double* v = all.data_ptr<double>() + r * kCols;
      worst_s = std::max(worst_s, v[0]);
      worst_rss = std::max(worst_rss, v[1]);
      std::printf("%5d %9.2f %14s %14s %14s %14s %16s\n", r, v[0], format_bytes(v[1]).c_str(), format_bytes(v[2]).c_str(),
                  cuda ? "-" : format_bytes(v[3]).c_str(), format_bytes(v[4]).c_str(), format_bytes(double(planned.load_peak)).c_str());
    }
    std::printf("# %s, %d rank(s): load %.2f s (slowest rank), peak RSS %s per rank (largest; %s), planned %s per rank, "
                "%s per node of %d\n",
                spec.name.c_str(), world->size(), worst_s, format_bytes(worst_rss).c_str(),
                hwm ? "high-water mark during load" : "process peak: the kernel cannot reset the high-water mark",
                format_bytes(double(planned.load_peak)).c_str(), format_bytes(double(planned.node_load_peak())).c_str(),
                ranks_per_node);
  }
  return 0;
}

}  // namespace ftdist::cli
