#include "ftdist/plan/cluster.h"

#include "ftdist/core/text_file.h"
#include "ftdist/core/toml_util.h"
#include "ftdist/plan/limits.h"

namespace ftdist::plan {

Cluster parse_cluster(const std::string& text, const std::string& origin, const GpuCatalog& catalog) {
  toml::table root = parse_toml_text(text, origin);
  Cluster c;
  c.origin = origin;
  toml_check_keys(root, {"name", "node_type"}, origin);
  c.name = toml_get_or<std::string>(root, "name", origin, origin);
  const toml::array* types = root["node_type"].as_array();
  FT_CHECK_ARG(types != nullptr && !types->empty(), origin << ": expected at least one [[node_type]] table");
  int index = 0;
  for (const auto& node : *types) {
    std::string where = origin + " [[node_type]] #" + std::to_string(++index);
    const toml::table* t = node.as_table();
    FT_CHECK_ARG(t != nullptr, where << ": expected a table");
    NodeType nt;
    nt.name = toml_get_or<std::string>(*t, "name", "node-type-" + std::to_string(index), where);
    where = origin + " [[node_type]] " + nt.name;
    for (const NodeType& other : c.node_types)
      FT_CHECK_ARG(other.name != nt.name, where << ": a node type of that name is given already (plans name node types: give each its own \"name\")");
    toml_check_keys(*t, {"name", "gpu", "gpus_per_node", "count", "nvlink_busbw_gbs", "network_busbw_gbs", "price_per_node_hour"},
                    where);
    nt.gpu = catalog.find(toml_get<std::string>(*t, "gpu", where), where + ": \"gpu\"");
    const int64_t per_node = toml_get_or<int64_t>(*t, "gpus_per_node", nt.gpu.gpus_per_node, where);
    const int64_t count = toml_get<int64_t>(*t, "count", where);
    FT_CHECK_ARG(per_node >= 1 && per_node <= kMaxGpusPerNode, where << ": gpus_per_node must be 1.." << kMaxGpusPerNode << ", got " << per_node);
    FT_CHECK_ARG(count >= 1 && count <= kMaxNodes, where << ": count must be 1.." << kMaxNodes << " nodes, got " << count);
    nt.gpus_per_node = int(per_node);
    nt.count = int(count);
    nt.gpu.gpus_per_node = nt.gpus_per_node;
    nt.gpu.link_busbw_gbs = toml_get_or<double>(*t, "nvlink_busbw_gbs", nt.gpu.link_busbw_gbs, where);
    nt.gpu.network_busbw_gbs = toml_get_or<double>(*t, "network_busbw_gbs", nt.gpu.network_busbw_gbs, where);
    if (t->contains("price_per_node_hour")) {  // (else the catalog's price per GPU)
      const double node_price = toml_get<double>(*t, "price_per_node_hour", where);
      FT_CHECK_ARG(node_price >= 0 && node_price <= 1e9, where << ": price_per_node_hour must be 0..1e9, got " << node_price);
      nt.gpu.price_per_hour = node_price / nt.gpus_per_node;
    }
    toml_check_finite({{"nvlink_busbw_gbs", nt.gpu.link_busbw_gbs}, {"network_busbw_gbs", nt.gpu.network_busbw_gbs}}, where);
    FT_CHECK_ARG(nt.gpu.link_busbw_gbs >= kMinBandwidthGBs,
                 where << ": nvlink_busbw_gbs must be at least " << kMinBandwidthGBs << " GB/s, got " << nt.gpu.link_busbw_gbs);
    FT_CHECK_ARG(nt.gpu.network_busbw_gbs >= kMinBandwidthGBs,
                 where << ": network_busbw_gbs must be at least " << kMinBandwidthGBs << " GB/s, got " << nt.gpu.network_busbw_gbs);
    c.node_types.push_back(std::move(nt));
  }
  return c;
}

Cluster load_cluster(const std::string& path, const GpuCatalog& catalog) {
  return parse_cluster(read_text_file(path, "--cluster"), path, catalog);
}

}  // namespace ftdist::plan
