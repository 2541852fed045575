// Cluster descriptions (cluster/*.toml, user-editable): node types with their GPU model, GPUs per
// node, NVLink and network bandwidth, how many nodes exist, and optionally a price per node-hour.
//
//   name = "4 x 8 H100"
//   [[node_type]]
//   name = "h100-node"; gpu = "h100-80gb-sxm"; gpus_per_node = 8; count = 4
//   nvlink_busbw_gbs = 360        # optional, else the catalog's link_busbw_gbs
//   network_busbw_gbs = 46        # optional, per GPU, else the catalog's
//   price_per_node_hour = 24.0    # optional, else gpus_per_node x the catalog's price
#pragma once

#include <string>
#include <vector>

#include "ftdist/plan/gpu_catalog.h"

namespace ftdist::plan {

struct NodeType {
  std::string name;
  GpuSpec gpu;  // the catalog's entry with this node type's overrides applied
  int gpus_per_node = 8;
  int count = 1;  // nodes available
};

struct Cluster {
  std::string name;
  std::string origin;
  std::vector<NodeType> node_types;
};

Cluster parse_cluster(const std::string& toml_text, const std::string& origin, const GpuCatalog& catalog);
Cluster load_cluster(const std::string& path, const GpuCatalog& catalog);

}  // namespace ftdist::plan
