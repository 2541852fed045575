// A Hugging Face model directory: config.json plus model.safetensors, or several shards listed in
// model.safetensors.index.json (model.safetensors wins where both are there, as in Transformers).
// Tensors are named as in the CausalLM checkpoint; as Transformers loads them, a base model's
// checkpoint (no "model." prefix) reads with the prefix, and a tied model whose file holds only
// lm_head.weight takes it as the embeddings. Ranks read only the slices of each unit their shard owns.
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
  // `what` names the setting in messages ("model.path", "--model").
  explicit HfCheckpoint(const std::string& dir, const std::string& what = "--model");

  const std::string& dir() const override { return dir_; }
  const plan::ModelSpec& spec() const override { return spec_; }
  const std::string& config_text() const override { return config_text_; }
  void read_unit_range(size_t unit, int64_t begin, const at::Tensor& out) const override;
  bool contains(const std::string& name) const { return where_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;  // Error(BadInput) naming the directory
  void read_range(const std::string& name, int64_t first, int64_t count, const at::Tensor& out) const;
  // config.json's "dtype" ("torch_dtype" before Transformers 5), as Transformers' dtype="auto"
  // reads it; without one, the dtype most weights are stored in (eval's default compute dtype).
  at::ScalarType stored_dtype() const override;
  void release_pages() const override;
  // The stored tensors the config does not use (layers past num_hidden_layers, other heads), which
  // are not loaded; RoPE's stored inv_freq buffers are not counted. The constructor warns of them
  // (on rank 0), as Transformers warns of unexpected keys.
  std::vector<std::string> unused_tensors() const;

 private:
  void refuse_quantized() const;  // config.json's quantization_config: Error(BadInput)
  void add_aliases();            // the base-model prefix and a tied head standing for the embeddings
  void check_tied_head() const;  // a tied config with a different lm_head.weight: Error(BadInput)
  std::string dir_;
  std::string config_text_;
  plan::ModelSpec spec_;
  std::vector<plan::ModelSpec::Unit> units_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  struct Location {
    size_t file;         // index into files_
    std::string stored;  // the name in that file
  };
  std::map<std::string, Location> where_;  // tensor name (as in a CausalLM checkpoint) -> where it is
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
