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
  if (type == "qwen3") m.qk_norm = true, m.head_dim = 6;  // head_dim not hidden / heads
  return m;
}

// A grouped-query model (4 query heads, 2 kv heads) for the attention-memory tests: Llama, or
// Mistral with a sliding window of `window` tokens (window > 0).
inline ftdist::plan::ModelSpec grouped_attention_spec(int64_t window, int64_t hidden, int64_t intermediate, int64_t vocab) {
  ftdist::plan::ModelSpec m = tiny_spec(window ? "mistral" : "llama");
  m.hidden = hidden, m.intermediate = intermediate, m.heads = 4, m.kv_heads = 2, m.head_dim = hidden / 4, m.vocab = vocab;
  m.sliding_window = window;
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
