// The GPU catalog (cluster/gpus.toml, user-editable): memory, peak bf16 rate, bandwidths, node size,
// efficiency and price of each GPU model the planner knows.
//
//   GpuCatalog cat = GpuCatalog::load_default();   // --gpu-catalog / FTDIST_GPU_CATALOG / built-in
//   const GpuSpec& g = cat.find("a100-80gb");       // names and aliases, case-insensitive
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ftdist::plan {

struct GpuSpec {
  std::string name;     // the catalog key, e.g. "h100-80gb-sxm"
  std::string display;  // "NVIDIA H100 80GB SXM"
  std::vector<std::string> aliases;
  double memory_gib = 0;
  double bf16_tflops = 0;
  double fp32_tflops = 0;  // plain fp32 (no tensor cores: ftdist leaves TF32 off); catalog default bf16 / 16
  double hbm_gbs = 0;
  double link_busbw_gbs = 0;     // intra-node collectives
  double network_busbw_gbs = 0;  // across nodes, per GPU
  int gpus_per_node = 8;
  double efficiency = 0.4;       // achievable MFU
  double price_per_hour = 0;     // USD per GPU-hour (assumption)

  uint64_t memory_bytes() const { return static_cast<uint64_t>(memory_gib * 1073741824.0); }
};

class GpuCatalog {
 public:
  // Parses TOML text (see cluster/gpus.toml); `origin` names the file in errors.
  static GpuCatalog parse(const std::string& toml_text, const std::string& origin);
  static GpuCatalog load(const std::string& path, const std::string& what = "--gpu-catalog");  // (`what` names where the path came from)
  // Path given (flag) > FTDIST_GPU_CATALOG > <source tree>/cluster/gpus.toml > the copy built in.
  static GpuCatalog load_default(const std::string& path_flag = "");

  const std::vector<GpuSpec>& gpus() const { return gpus_; }
  const std::string& origin() const { return origin_; }
  // Throws Error(BadInput) naming `what` (the flag or key the name came from) and suggesting the
  // closest names.
  const GpuSpec& find(const std::string& name, const std::string& what = "--gpu") const;

 private:
  std::vector<GpuSpec> gpus_;
  std::string origin_;
};

}  // namespace ftdist::plan
