// bench/plan_search — how long `ftdist plan` takes to search a cluster fully (every GPU count up
// to 512, every stage, micro-batch and activation checkpointing choice, every node type). Target: < 1 s.
//
//   build/bench/ftdist_bench_plan [cluster.toml ...]     (default: cluster/example-mixed-64x8.toml)
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "ftdist/plan/cluster.h"
#include "ftdist/plan/presets.h"
#include "ftdist/plan/search.h"

using namespace ftdist::plan;

int main(int argc, char** argv) {
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) files.push_back(argv[i]);
  if (files.empty()) files.push_back(FTDIST_SOURCE_DIR "/cluster/example-mixed-64x8.toml");
  GpuCatalog catalog = GpuCatalog::load(FTDIST_SOURCE_DIR "/cluster/gpus.toml");
  const double target_ms = 1000.0;
  int failures = 0;
  std::printf("%-28s %-16s %6s %11s %10s %10s %6s\n", "cluster", "model", "GPUs", "candidates", "ms (best)", "target ms", "ok");
  for (const std::string& file : files) {
    Cluster cluster = load_cluster(file, catalog);
    int total_gpus = 0;
    for (const NodeType& nt : cluster.node_types) total_gpus = std::max(total_gpus, nt.count * nt.gpus_per_node);
    for (const char* model : {"llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b"}) {
      PlanRequest req;
      req.model = preset_model(model);
      for (const NodeType& nt : cluster.node_types) req.hardware.push_back({nt.name, nt.gpu, nt.gpus_per_node, nt.count, true});
      req.base.seq_len = 4096;
      req.total_tokens = 1e10;
      req.max_gpus = 512;
      double best_ms = 1e30;
      size_t candidates = 0;
      for (int rep = 0; rep < 5; ++rep) {  // best of 5: the machine may be busy
        auto t0 = std::chrono::steady_clock::now();
        PlanResult r = search(req);
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        best_ms = std::min(best_ms, ms);
        candidates = r.candidates.size();
      }
      bool ok = best_ms < target_ms;
      failures += !ok;
      std::string name = file.substr(file.find_last_of('/') + 1);
      std::printf("%-28s %-16s %6d %11zu %10.1f %10.0f %6s\n", name.c_str(), model, total_gpus, candidates, best_ms,
                  target_ms, ok ? "yes" : "NO");
    }
  }
  return failures == 0 ? 0 : 1;
}
