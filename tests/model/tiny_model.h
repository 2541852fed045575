// Tiny model specs and random weights for model/ and io/ tests.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <string>
#include <vector>

#include "ftdist/model/llama.h"
#include "ftdist/model/loss.h"
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

// Packed examples against each alone: rows of examples (lengths 5, 9, 3 and 7, 6 in rows of 20),
// positions restarting at 0 for each, padding after them. Returns the relative difference of the
// summed loss and, per unit, the largest gradient difference over the gradient's largest element.
struct PackedVsAlone {
  double loss = 0;
  std::vector<double> grads;
};
inline PackedVsAlone packed_vs_alone(const ftdist::plan::ModelSpec& spec, ftdist::plan::Attention kind, const at::TensorOptions& options) {
  using namespace ftdist::model;
  const std::vector<std::vector<int64_t>> rows = {{5, 9, 3}, {7, 6}};
  const int64_t seq = 20;
  LlamaModel m(spec, options, kind);
  randomize(m, 7);
  auto leaves = [&] {  // fresh leaves (no gradient yet) over the same weights
    for (size_t u = 0; u < m.units().size(); ++u) m.bind(u, m.units()[u].flat.detach().clone().requires_grad_());
  };
  at::manual_seed(11);
  std::vector<at::Tensor> examples;
  at::Tensor ids = at::zeros({int64_t(rows.size()), seq}, at::kLong), labels = at::full_like(ids, -100), pos = at::zeros_like(ids);
  for (size_t r = 0; r < rows.size(); ++r) {
    int64_t j = 0;
    for (int64_t n : rows[r]) {
      at::Tensor e = at::randint(1, spec.vocab, {n}, at::kLong);
      examples.push_back(e);
      ids[int64_t(r)].narrow(0, j, n).copy_(e);
      labels[int64_t(r)].narrow(0, j, n).copy_(e);
      labels[int64_t(r)][j] = -100;  // never predicted from the example before
      pos[int64_t(r)].narrow(0, j, n).copy_(at::arange(n, at::kLong));
      j += n;
    }
    pos[int64_t(r)].narrow(0, j, seq - j).copy_(at::arange(seq - j, at::kLong));  // padding: an example of its own
  }
  const at::Device dev = options.device();
  leaves();
  const at::Tensor packed = causal_lm_loss_sum(m.forward(ids.to(dev), pos.to(dev)), labels.to(dev));
  packed.backward();
  std::vector<at::Tensor> packed_grads;
  for (const auto& u : m.units()) packed_grads.push_back(u.flat.grad().clone());
  leaves();
  at::Tensor alone = at::zeros({}, options);
  for (const at::Tensor& e : examples) alone = alone + causal_lm_loss_sum(m.forward(e.unsqueeze(0).to(dev)), e.unsqueeze(0).to(dev));
  alone.backward();
  PackedVsAlone out;
  out.loss = std::abs(packed.item<double>() - alone.item<double>()) / std::abs(alone.item<double>());
  for (size_t u = 0; u < m.units().size(); ++u) {
    const at::Tensor& want = m.units()[u].flat.grad();
    const double scale = want.abs().max().item<double>();
    out.grads.push_back(scale > 0 ? (packed_grads[u] - want).abs().max().item<double>() / scale : INFINITY);
  }
  return out;
}
