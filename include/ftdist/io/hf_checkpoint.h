// A Hugging Face model directory: config.json plus model.safetensors, or several shards listed in
// model.safetensors.index.json. Ranks read only the slices of each unit their shard owns.
//
//   HfCheckpoint ckpt("/models/mistral-7b");
//   for (const auto& unit : ckpt.spec().units())
//     load_unit_shard(ckpt, unit, rank * shard_numel, my_shard);   // my_shard: S elements, any dtype
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ftdist/io/safetensors.h"
#include "ftdist/io/weight_source.h"
#include "ftdist/plan/model_spec.h"

namespace ftdist::io {

class HfCheckpoint : public WeightSource {
 public:
  explicit HfCheckpoint(const std::string& dir);

  const std::string& dir() const override { return dir_; }
  const plan::ModelSpec& spec() const override { return spec_; }
  const std::string& config_text() const override { return config_text_; }
  void read_unit_range(size_t unit, int64_t begin, const at::Tensor& out) const override;
  bool contains(const std::string& name) const { return where_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;  // Error(BadInput) naming the directory
  void read_range(const std::string& name, int64_t first, int64_t count, const at::Tensor& out) const;
  // The dtype most weights are stored in (for defaults such as eval's compute dtype).
  at::ScalarType stored_dtype() const override;
  void release_pages() const override;

 private:
  void check_tied_head() const;  // a tied config with a different lm_head.weight: Error(BadInput)
  std::string dir_;
  std::string config_text_;
  plan::ModelSpec spec_;
  std::vector<plan::ModelSpec::Unit> units_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // tensor name -> file
};

// Fills `shard` (contiguous, any dtype) with the elements [shard_begin, shard_begin + numel) of the
// unit's flat buffer — its tensors concatenated in order, then zero padding — reading only the
// bytes that range covers. Shapes are checked against the config. Phi-3's fused tensors are split
// by reading: q, k, v (gate, up) are consecutive row blocks of qkv_proj (gate_up_proj), which is
// where the unit's flat order puts them (plan::ModelSpec::hf_tensors()).
void load_unit_shard(const HfCheckpoint& ckpt, const plan::ModelSpec::Unit& unit, int64_t shard_begin,
                     const at::Tensor& shard);

// Writes a Hugging Face directory: config.json (as given) and model.safetensors.
void save_hf_model(const std::string& dir, const std::string& config_text,
                   const std::vector<std::pair<std::string, at::Tensor>>& tensors);

}  // namespace ftdist::io
