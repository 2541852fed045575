// ftdist models — the model presets with their exact parameter counts.
// ftdist gpus   — the GPU catalog.

#include <cstdio>

#include "commands.h"
#include "options.h"
#include "ftdist/core/check.h"
#include "ftdist/plan/gpu_catalog.h"
#include "ftdist/plan/presets.h"

namespace ftdist::cli {
int models_main(int argc, char** argv) {
  cxxopts::Options options("ftdist models", "Model presets for `ftdist plan --model`.");
  options.add_options()("h,help", "this help");
  auto args = parse_options(options, argc, argv);
  if (print_help_if_asked(options, args)) return 0;
  std::printf("%-16s %-8s %16s %7s %7s %7s %6s %4s %8s  %s\n", "name", "type", "parameters", "layers", "hidden",
              "inter", "heads", "kv", "vocab", "notes");
  for (const auto& m : plan::model_presets()) {
    std::string notes;
    if (m.tie_embeddings) notes += "tied embeddings ";
    if (m.qkv_bias) notes += "qkv bias ";
    if (m.qk_norm) notes += "q/k norm ";
    if (m.head_dim * m.heads != m.hidden) notes += "head_dim " + std::to_string(m.head_dim) + " ";
    if (m.sliding_window) notes += "sliding window " + std::to_string(m.sliding_window);
    std::printf("%-16s %-8s %16lld %7lld %7lld %7lld %6lld %4lld %8lld  %s\n", m.name.c_str(), m.model_type.c_str(),
                static_cast<long long>(m.param_count()), static_cast<long long>(m.layers),
                static_cast<long long>(m.hidden), static_cast<long long>(m.intermediate),
                static_cast<long long>(m.heads), static_cast<long long>(m.kv_heads), static_cast<long long>(m.vocab),
                notes.c_str());
  }
  return 0;
}

int gpus_main(int argc, char** argv) {
  cxxopts::Options options("ftdist gpus", "The GPU catalog `ftdist plan --gpu` reads (cluster/gpus.toml).");
  options.add_options()("gpu-catalog", "catalog TOML", cxxopts::value<std::string>()->default_value(""))("h,help", "this help");
  auto args = parse_options(options, argc, argv);
  if (print_help_if_asked(options, args)) return 0;
  plan::GpuCatalog cat = plan::GpuCatalog::load_default(args["gpu-catalog"].as<std::string>());
  std::printf("# %s (prices are assumptions: edit them)\n", cat.origin().c_str());
  std::printf("%-16s %-30s %8s %10s %9s %10s %10s %5s %5s %8s\n", "name", "model", "mem GiB", "bf16 TF/s", "HBM GB/s",
              "link GB/s", "net GB/s", "/node", "eff", "$/hour");
  for (const auto& g : cat.gpus()) {
    std::printf("%-16s %-30s %8.2f %10.0f %9.0f %10.0f %10.0f %5d %5.2f %8.2f\n", g.name.c_str(), g.display.c_str(),
                g.memory_gib, g.bf16_tflops, g.hbm_gbs, g.link_busbw_gbs, g.network_busbw_gbs, g.gpus_per_node,
                g.efficiency, g.price_per_hour);
  }
  return 0;
}

}  // namespace ftdist::cli
