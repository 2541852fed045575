// Tiny model specs and random weights for model/ and io/ tests.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "ftdist/model/llama.h"
#include "ftdist/plan/model_spec.h"

inline ftdist::plan::ModelSpec tiny_spec(const std::string& type = "llama", bool tied = false) {
  ftdist::plan::ModelSpec m;
  m.name = "tiny-" + type;
  m.model_type = type;
  m.hidden = 16;
  m.intermediate = 24;
  m.layers = 2;
  m.heads = 4;
  m.kv_heads = 2;
  m.head_dim = 4;
  m.vocab = 37;
  m.tie_embeddings = tied;
  m.qkv_bias = type == "qwen2";
  m.rms_norm_eps = 1e-5;
  if (type == "mistral") m.sliding_window = 3;
  return m;
}

// Fills every unit with N(0, std) weights (norm weights around 1).
inline void randomize(ftdist::model::LlamaModel& model, uint64_t seed, double std = 0.3) {
  at::manual_seed(seed);
  for (auto& unit : model.units()) {
    at::NoGradGuard no_grad;
    unit.flat.normal_(0.0, std);
    for (size_t i = 0; i < unit.specs.size(); ++i)
      if (unit.specs[i].name.find("norm") != std::string::npos) unit.params[i].add_(1.0);
  }
}
