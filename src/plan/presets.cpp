#include "ftdist/plan/presets.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "ftdist/core/check.h"
#include "ftdist/core/suggest.h"

namespace ftdist::plan {
namespace {

// name, type, hidden, intermediate, layers, heads, kv_heads, head_dim, vocab, tied, qkv_bias, max_pos, window
ModelSpec spec(const char* name, const char* type, int64_t h, int64_t inter, int64_t layers, int64_t heads,
               int64_t kv, int64_t vocab, bool tied, bool bias, int64_t max_pos, int64_t window = 0) {
  ModelSpec m;
  m.name = name;
  m.model_type = type;
  m.hidden = h;
  m.intermediate = inter;
  m.layers = layers;
  m.heads = heads;
  m.kv_heads = kv;
  m.head_dim = h / heads;
  m.vocab = vocab;
  m.tie_embeddings = tied;
  m.qkv_bias = bias;
  m.max_position = max_pos;
  m.sliding_window = window;
  return m;
}

// The published config.json's rope_theta and rms_norm_eps (ModelSpec's defaults are 10000 and 1e-6).
ModelSpec with_norms(ModelSpec m, double rope_theta, double rms_norm_eps) {
  m.rope_theta = rope_theta;
  m.rms_norm_eps = rms_norm_eps;
  return m;
}

// Llama-3.1's rope_scaling: llama3, factor 8, frequency factors 1 and 4, 8192 original positions.
ModelSpec llama31(ModelSpec m) {
  m = with_norms(std::move(m), 500000.0, 1e-5);
  m.rope_type = "llama3";
  m.rope_factor = 8.0;
  m.rope_low_freq_factor = 1.0;
  m.rope_high_freq_factor = 4.0;
  m.rope_original_max_position = 8192;
  return m;
}

// Qwen3 (the published config.json files): head_dim 128 whatever hidden / heads is, 8 kv heads,
// per-head q/k RMSNorm, no biases, rope_theta 1e6, 40960 positions.
ModelSpec qwen3(const char* name, int64_t h, int64_t inter, int64_t layers, int64_t heads, bool tied) {
  ModelSpec m = spec(name, "qwen3", h, inter, layers, heads, 8, 151936, tied, false, 40960);
  m.head_dim = 128;
  m.qk_norm = true;
  m.rope_theta = 1000000.0;
  return m;
}

std::vector<ModelSpec> make_presets() {
  return {
      with_norms(spec("llama-2-7b", "llama", 4096, 11008, 32, 32, 32, 32000, false, false, 4096), 10000.0, 1e-5),
      with_norms(spec("llama-2-13b", "llama", 5120, 13824, 40, 40, 40, 32000, false, false, 4096), 10000.0, 1e-5),
      with_norms(spec("llama-2-70b", "llama", 8192, 28672, 80, 64, 8, 32000, false, false, 4096), 10000.0, 1e-5),
      with_norms(spec("llama-3-8b", "llama", 4096, 14336, 32, 32, 8, 128256, false, false, 8192), 500000.0, 1e-5),
      with_norms(spec("llama-3-70b", "llama", 8192, 28672, 80, 64, 8, 128256, false, false, 8192), 500000.0, 1e-5),
      llama31(spec("llama-3.1-8b", "llama", 4096, 14336, 32, 32, 8, 128256, false, false, 131072)),
      llama31(spec("llama-3.1-70b", "llama", 8192, 28672, 80, 64, 8, 128256, false, false, 131072)),
      llama31(spec("llama-3.1-405b", "llama", 16384, 53248, 126, 128, 8, 128256, false, false, 131072)),
      with_norms(spec("mistral-7b", "mistral", 4096, 14336, 32, 32, 8, 32000, false, false, 32768, 4096), 10000.0, 1e-5),
      with_norms(spec("qwen2.5-0.5b", "qwen2", 896, 4864, 24, 14, 2, 151936, true, true, 32768), 1000000.0, 1e-6),
      with_norms(spec("qwen2.5-1.5b", "qwen2", 1536, 8960, 28, 12, 2, 151936, true, true, 32768), 1000000.0, 1e-6),
      with_norms(spec("qwen2.5-7b", "qwen2", 3584, 18944, 28, 28, 4, 152064, false, true, 131072), 1000000.0, 1e-6),
      with_norms(spec("qwen2.5-14b", "qwen2", 5120, 13824, 48, 40, 8, 152064, false, true, 131072), 1000000.0, 1e-6),
      with_norms(spec("qwen2.5-32b", "qwen2", 5120, 27648, 64, 40, 8, 152064, false, true, 131072), 1000000.0, 1e-6),
      with_norms(spec("qwen2.5-72b", "qwen2", 8192, 29568, 80, 64, 8, 152064, false, true, 131072), 1000000.0, 1e-6),
      qwen3("qwen3-0.6b", 1024, 3072, 28, 16, true),
      qwen3("qwen3-1.7b", 2048, 6144, 28, 16, true),
      qwen3("qwen3-4b", 2560, 9728, 36, 32, true),
      qwen3("qwen3-8b", 4096, 12288, 36, 32, false),
      qwen3("qwen3-14b", 5120, 17408, 40, 40, false),
      qwen3("qwen3-32b", 5120, 25600, 64, 64, false),
      with_norms(spec("tinyllama-1.1b", "llama", 2048, 5632, 22, 32, 4, 32000, false, false, 2048), 10000.0, 1e-5),
      with_norms(spec("phi-3-mini", "phi3", 3072, 8192, 32, 32, 32, 32064, false, false, 4096, 2047), 10000.0, 1e-5),
  };
}

}  // namespace

const std::vector<ModelSpec>& model_presets() {
  static const std::vector<ModelSpec> presets = make_presets();
  return presets;
}

ModelSpec preset_model(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& m : model_presets()) {
    if (m.name == to_lower(name)) return m;
    names.push_back(m.name);
  }
  auto close = closest_names(name, names);
  FT_CHECK_ARG(false, "--model: unknown preset '" << name << "'"
                          << (close.empty() ? "" : "; did you mean " + join_or(close) + "?")
                          << " (`ftdist models` lists them; or pass --model-config path/to/config.json)");
  return {};
}

}  // namespace ftdist::plan
