// ModelSpec — the shape of a Llama-family decoder (Llama 2/3, Mistral, Qwen2, Qwen3, Phi-3), enough to
// count every parameter tensor of its Hugging Face checkpoint exactly and to size activations.
//
//   ModelSpec m = preset_model("mistral-7b");                 // presets.h
//   ModelSpec m = model_from_hf_config("/models/x/config.json");
//   m.param_count() == 7'241'732'096
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ftdist::plan {

struct ModelSpec {
  std::string name;
  std::string model_type = "llama";  // llama | mistral | qwen2 | qwen3 | phi3
  int64_t hidden = 0;                // h
  int64_t intermediate = 0;          // I (SwiGLU: gate, up: h->I; down: I->h)
  int64_t layers = 0;                // L
  int64_t heads = 0;                 // query heads
  int64_t kv_heads = 0;              // key/value heads (GQA; == heads for MHA)
  int64_t head_dim = 0;              // explicit head_dim, else hidden / heads
  int64_t vocab = 0;                 // V
  bool tie_embeddings = false;       // lm_head shares the embedding matrix (no lm_head tensor)
  bool qkv_bias = false;             // q/k/v projections carry biases (Qwen2; Llama attention_bias)
  bool o_bias = false;               // o_proj carries a bias (Llama attention_bias)
  bool mlp_bias = false;             // gate/up/down carry biases (Llama mlp_bias)
  bool qk_norm = false;              // RMSNorm over each head of q and of k before RoPE (Qwen3)
  int64_t max_position = 0;
  int64_t sliding_window = 0;        // 0 = full attention
  int64_t pad_token_id = -1;         // the embedding row that gets no gradient from its lookups (padding_idx); -1: none
  double initializer_range = 0.02;   // the std of a random init's matrices (config.json's)
  // Which layers attend through the window (Qwen2's max_window_layers onwards, or "layer_types"):
  // one flag per layer, or empty for every layer. Empty when sliding_window is 0.
  std::vector<bool> window_layers;
  // The config's dropout ("<file>: \"resid_pdrop\" is 0.1") when it asks for some: training refuses
  // it (train::resolve_run), evaluation and export have none; "" otherwise.
  std::string dropout;

  // Numerics the runtime needs (the planner does not).
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  // default | llama3 | linear | dynamic | yarn | longrope (Transformers' rope_type; in a phi3 config
  // "yarn" reads as longrope, as Phi3Config reads it, and so does the legacy "su", as Transformers 4
  // read it)
  std::string rope_type = "default";
  double rope_partial = 1.0;          // Phi-3's partial_rotary_factor (RoPE rotates rotary_dim() dims)
  double rope_factor = 1.0;           // llama3, linear, dynamic, yarn, longrope: the scaling factor
  double rope_low_freq_factor = 1.0;  // llama3
  double rope_high_freq_factor = 4.0;
  int64_t rope_original_max_position = 8192;  // llama3, yarn, longrope: the pre-training context
  double rope_attention_factor = 1.0;  // yarn, longrope: cos and sin are multiplied by it (1 otherwise)
  // longrope (Phi-3 128k, Phi-3.5): rotary_dim()/2 divisors of the inverse frequencies, the short
  // ones for an example of up to rope_original_max_position tokens, the long ones beyond it.
  std::vector<double> rope_short_factor, rope_long_factor;
  double rope_beta_fast = 32, rope_beta_slow = 1;  // yarn: the rotation counts bounding the ramp
  bool rope_truncate = true;                       // yarn: the ramp's bounds rounded to whole dimensions

  // Whether decoder layer `layer` attends through the sliding window.
  bool layer_uses_window(int64_t layer) const {
    return sliding_window > 0 && (window_layers.empty() || window_layers.at(size_t(layer)));
  }
  // How many decoder layers attend through the window.
  int64_t window_layer_count() const;

  int64_t q_dim() const { return heads * head_dim; }      // hq
  int64_t kv_dim() const { return kv_heads * head_dim; }  // hkv
  // The leading dimensions of each head that RoPE rotates (Transformers: int(head_dim * factor)).
  int64_t rotary_dim() const { return int64_t(double(head_dim) * rope_partial); }

  // Parameters of one decoder layer: q,k,v,o projections (+ biases), gate/up/down, two RMSNorms
  // (+ Qwen3's q_norm and k_norm, head_dim each).
  int64_t layer_params() const;
  // Parameters outside the layers: embedding, final norm, lm_head (unless tied).
  int64_t root_params() const;
  int64_t embed_params() const;
  int64_t head_params() const;
  // Everything: the sum of the sizes of the tensors in the HF checkpoint.
  int64_t param_count() const { return layers * layer_params() + root_params(); }
  // Parameters that take part in matrix products per token (all but the embedding lookup; a tied
  // lm_head counts once, as the product it is): the Ψ of 6Ψ FLOPs per token.
  int64_t matmul_params() const;

  // One line per tensor of one layer and of the root, with its shape — for --explain and tests.
  struct Tensor {
    std::string name;
    std::vector<int64_t> shape;
  };
  std::vector<Tensor> layer_tensors() const;
  std::vector<Tensor> root_tensors() const;   // embed_tensors() + head_tensors()

  // The units the runtime shards and the planner prices, in execution order: `embed`, `layers.0`
  // ... `layers.{L-1}`, `head` — or, with tied embeddings, `root` first (embedding + final norm)
  // and no head. Tensors carry their full HF names, in a stable order (the flat-buffer order).
  struct Unit {
    std::string name;
    std::vector<Tensor> tensors;
    int64_t numel() const;
  };
  std::vector<Unit> units() const;
  // The units that are not decoder layers (embed and head, or root): cheap, for the planner's
  // per-candidate layout (units() names every layer's tensors).
  std::vector<Unit> edge_units() const;
  std::vector<Tensor> embed_tensors() const;  // the embedding (with tied embeddings: also lm_head's weight)
  std::vector<Tensor> head_tensors() const;   // final norm and lm_head (only the norm when tied)
  // The unit's tensors as a Hugging Face checkpoint stores them: the same elements in the same flat
  // order, but Phi-3 keeps q, k, v as one self_attn.qkv_proj.weight (rows q, then k, then v) and
  // gate, up as one mlp.gate_up_proj.weight (rows gate, then up) — each fused tensor covers the
  // contiguous range of its parts. Every other model type stores unit.tensors as they are.
  std::vector<Tensor> hf_tensors(const Unit& unit) const;

  // Throws ftdist::Error(BadInput) naming the first impossible field ("heads must divide hidden").
  void validate(const std::string& origin) const;
};

// Elements of a tensor of this shape (1 for a scalar).
int64_t shape_numel(const std::vector<int64_t>& shape);

// Reads a Hugging Face config.json (model types llama, mistral, qwen2, qwen3, phi3). Errors name the
// file and the key that is missing or malformed, or that asks for what ftdist does not compute
// (a rope_type Transformers does not define for the model, an activation other than SiLU, ...); dropout is kept
// in ModelSpec::dropout for training to refuse.
ModelSpec model_from_hf_config(const std::string& path);
ModelSpec model_from_hf_config_text(const std::string& json_text, const std::string& origin);

// The inverse: a Hugging Face config.json for `spec` (for checkpoints and exports of models that
// came from a preset). model_from_hf_config_text(hf_config_text(m)) describes the same model.
std::string hf_config_text(const ModelSpec& spec);

}  // namespace ftdist::plan
