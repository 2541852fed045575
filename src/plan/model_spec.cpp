#include "ftdist/plan/model_spec.h"

#include <algorithm>
#include <cmath>

#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ftdist/core/check.h"
#include "ftdist/core/suggest.h"
#include "ftdist/core/json.h"
#include "ftdist/core/text_file.h"
#include "ftdist/plan/limits.h"

namespace ftdist::plan {

int64_t shape_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {
int64_t numel(const std::vector<int64_t>& shape) { return shape_numel(shape); }
int64_t sum_numel(const std::vector<ModelSpec::Tensor>& tensors) {
  int64_t n = 0;
  for (const auto& t : tensors) n += numel(t.shape);
  return n;
}
}  // namespace

std::vector<ModelSpec::Tensor> ModelSpec::layer_tensors() const {
  // Phi-3 stores q,k,v fused (qkv_proj) and gate,up fused (gate_up_proj): same elements (hf_tensors()).
  std::vector<Tensor> t = {
      {"self_attn.q_proj.weight", {q_dim(), hidden}},
      {"self_attn.k_proj.weight", {kv_dim(), hidden}},
      {"self_attn.v_proj.weight", {kv_dim(), hidden}},
      {"self_attn.o_proj.weight", {hidden, q_dim()}},
      {"mlp.gate_proj.weight", {intermediate, hidden}},
      {"mlp.up_proj.weight", {intermediate, hidden}},
      {"mlp.down_proj.weight", {hidden, intermediate}},
      {"input_layernorm.weight", {hidden}},
      {"post_attention_layernorm.weight", {hidden}},
  };
  if (qk_norm) {
    t.push_back({"self_attn.q_norm.weight", {head_dim}});
    t.push_back({"self_attn.k_norm.weight", {head_dim}});
  }
  if (qkv_bias) {
    t.push_back({"self_attn.q_proj.bias", {q_dim()}});
    t.push_back({"self_attn.k_proj.bias", {kv_dim()}});
    t.push_back({"self_attn.v_proj.bias", {kv_dim()}});
  }
  if (o_bias) t.push_back({"self_attn.o_proj.bias", {hidden}});
  if (mlp_bias) {
    t.push_back({"mlp.gate_proj.bias", {intermediate}});
    t.push_back({"mlp.up_proj.bias", {intermediate}});
    t.push_back({"mlp.down_proj.bias", {hidden}});
  }
  return t;
}

std::vector<ModelSpec::Tensor> ModelSpec::embed_tensors() const { return {{"model.embed_tokens.weight", {vocab, hidden}}}; }

std::vector<ModelSpec::Tensor> ModelSpec::head_tensors() const {
  std::vector<Tensor> t = {{"model.norm.weight", {hidden}}};
  if (!tie_embeddings) t.push_back({"lm_head.weight", {vocab, hidden}});
  return t;
}

std::vector<ModelSpec::Tensor> ModelSpec::root_tensors() const {
  std::vector<Tensor> t = embed_tensors();
  for (auto& h : head_tensors()) t.push_back(h);
  return t;
}

int64_t ModelSpec::layer_params() const { return sum_numel(layer_tensors()); }

int64_t ModelSpec::Unit::numel() const { return sum_numel(tensors); }

std::vector<ModelSpec::Unit> ModelSpec::edge_units() const {
  if (tie_embeddings) return {{"root", root_tensors()}};
  return {{"embed", embed_tensors()}, {"head", head_tensors()}};
}

std::vector<ModelSpec::Unit> ModelSpec::units() const {
  std::vector<Unit> edges = edge_units();
  std::vector<Unit> out = {edges.front()};  // embed or root first
  const std::vector<Tensor> layer = layer_tensors();
  for (int64_t i = 0; i < layers; ++i) {
    Unit u{"layers." + std::to_string(i), layer};
    for (auto& t : u.tensors) t.name = "model.layers." + std::to_string(i) + "." + t.name;
    out.push_back(std::move(u));
  }
  if (edges.size() > 1) out.push_back(edges.back());  // head last
  return out;
}

namespace {
// Whether tensors[i..] are the parts `parts` of one fused tensor; then `fused` is it (named with the
// prefix of tensors[i] and `fused_suffix`, rows the sum of the parts' rows).
bool fuse(const std::vector<ModelSpec::Tensor>& tensors, size_t i, const std::vector<std::string>& parts,
          const std::string& fused_suffix, ModelSpec::Tensor* fused) {
  if (i + parts.size() > tensors.size() || !ends_with(tensors[i].name, parts[0])) return false;
  const std::string prefix = tensors[i].name.substr(0, tensors[i].name.size() - parts[0].size());
  int64_t rows = 0;
  for (size_t k = 0; k < parts.size(); ++k) {
    const ModelSpec::Tensor& t = tensors[i + k];
    if (t.name != prefix + parts[k] || t.shape.size() != 2 || t.shape[1] != tensors[i].shape[1]) return false;
    rows += t.shape[0];
  }
  *fused = {prefix + fused_suffix, {rows, tensors[i].shape[1]}};
  return true;
}
}  // namespace

std::vector<ModelSpec::Tensor> ModelSpec::hf_tensors(const Unit& unit) const {
  if (model_type != "phi3") return unit.tensors;
  std::vector<Tensor> out;
  for (size_t i = 0; i < unit.tensors.size(); ++i) {
    Tensor fused;
    if (fuse(unit.tensors, i, {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"},
             "self_attn.qkv_proj.weight", &fused)) {
      i += 2;
    } else if (fuse(unit.tensors, i, {"mlp.gate_proj.weight", "mlp.up_proj.weight"}, "mlp.gate_up_proj.weight", &fused)) {
      i += 1;
    } else {
      fused = unit.tensors[i];
    }
    out.push_back(std::move(fused));
  }
  return out;
}

int64_t ModelSpec::root_params() const { return sum_numel(root_tensors()); }
int64_t ModelSpec::embed_params() const { return sum_numel(embed_tensors()); }
int64_t ModelSpec::head_params() const { return sum_numel(head_tensors()); }
int64_t ModelSpec::matmul_params() const { return param_count() - (tie_embeddings ? 0 : vocab * hidden); }

int64_t ModelSpec::window_layer_count() const {
  if (sliding_window <= 0) return 0;
  return window_layers.empty() ? layers : int64_t(std::count(window_layers.begin(), window_layers.end(), true));
}

void ModelSpec::validate(const std::string& origin) const {
  auto positive = [&](int64_t v, const char* key, int64_t max) {
    FT_CHECK_ARG(v > 0, origin << ": " << key << " must be a positive integer, got " << v);
    FT_CHECK_ARG(v <= max, origin << ": " << key << " (" << v << ") is beyond what ftdist models (1.." << max << ")");
  };
  positive(hidden, "hidden_size", kMaxHidden);
  positive(intermediate, "intermediate_size", kMaxIntermediate);
  positive(layers, "num_hidden_layers", kMaxLayers);
  positive(heads, "num_attention_heads", kMaxHeads);
  positive(kv_heads, "num_key_value_heads", kMaxHeads);
  positive(head_dim, "head_dim", kMaxHeadDim);
  positive(vocab, "vocab_size", kMaxVocab);
  FT_CHECK_ARG(max_position >= 0 && max_position <= kMaxPositions,
               origin << ": max_position_embeddings (" << max_position << ") must be 0.." << kMaxPositions);
  FT_CHECK_ARG(sliding_window >= 0 && sliding_window <= kMaxPositions,
               origin << ": sliding_window (" << sliding_window << ") must be 0.." << kMaxPositions);
  FT_CHECK_ARG(heads % kv_heads == 0, origin << ": num_attention_heads (" << heads
               << ") must be a multiple of num_key_value_heads (" << kv_heads << ")");
  FT_CHECK_ARG(rotary_dim() % 2 == 0, origin << ": head_dim (" << head_dim << ") must be even: RoPE rotates pairs of dimensions"
                                             << (rope_partial < 1 ? " (head_dim x partial_rotary_factor = " + std::to_string(rotary_dim()) + ")" : ""));
  FT_CHECK_ARG(std::isfinite(rms_norm_eps) && rms_norm_eps > 0, origin << ": rms_norm_eps must be a positive number, got " << rms_norm_eps);
  FT_CHECK_ARG(std::isfinite(rope_theta) && rope_theta > 0, origin << ": rope_theta must be a positive number, got " << rope_theta);
  FT_CHECK_ARG(window_layers.empty() || int64_t(window_layers.size()) == layers,
               origin << ": the sliding window names " << window_layers.size() << " layers of " << layers);
  if (rope_type != "default")
    FT_CHECK_ARG(std::isfinite(rope_factor) && rope_factor > 0,
                 origin << ": rope scaling (" << rope_type << ") needs factor > 0, got " << rope_factor);
  FT_CHECK_ARG(rope_type != "dynamic" || max_position > 0, origin << ": dynamic rope scaling needs max_position_embeddings > 0");
  FT_CHECK_ARG(std::isfinite(rope_attention_factor) && rope_attention_factor > 0,
               origin << ": the rope attention_factor must be a positive number, got " << rope_attention_factor);
  if (rope_type == "longrope") {
    FT_CHECK_ARG(rope_original_max_position > 0, origin << ": longrope needs original_max_position_embeddings > 0");
    for (const auto* factors : {&rope_short_factor, &rope_long_factor}) {
      const char* key = factors == &rope_short_factor ? "short_factor" : "long_factor";
      FT_CHECK_ARG(int64_t(factors->size()) * 2 == rotary_dim(),
                   origin << ": longrope's " << key << " has " << factors->size() << " numbers; it needs one per pair of rotated "
                          << "dimensions, " << rotary_dim() / 2 << " (head_dim x partial_rotary_factor / 2)");
      for (size_t i = 0; i < factors->size(); ++i)
        FT_CHECK_ARG(std::isfinite((*factors)[i]) && (*factors)[i] > 0,
                     origin << ": longrope's " << key << "[" << i << "] must be a positive number, got " << (*factors)[i]);
    }
  }
  if (rope_type == "llama3")
    FT_CHECK_ARG(std::isfinite(rope_factor) && rope_factor > 0 && rope_low_freq_factor > 0 &&
                     std::isfinite(rope_high_freq_factor) && rope_high_freq_factor > rope_low_freq_factor && rope_original_max_position > 0,
                 origin << ": llama3 rope scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor and "
                           "original_max_position_embeddings > 0");
  FT_CHECK_ARG(double(layers) * double(layer_params()) + double(root_params()) <= kMaxParams,
               origin << ": " << double(layers) * double(layer_params()) + double(root_params())
                      << " parameters is beyond what ftdist models (" << kMaxParams << ")");
}

namespace {
using nlohmann::json;

int64_t get_int(const json& j, const char* key, const std::string& origin) {
  FT_CHECK_ARG(j.contains(key), origin << ": missing key \"" << key << "\"");
  const json& v = j.at(key);
  FT_CHECK_ARG(v.is_number_integer(), origin << ": \"" << key << "\" must be an integer, got " << json_excerpt(v));
  return v.get<int64_t>();
}

int64_t get_int_or(const json& j, const char* key, int64_t fallback, const std::string& origin) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  return get_int(j, key, origin);
}

double get_number_or(const json& j, const char* key, double fallback, const std::string& origin) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  FT_CHECK_ARG(j.at(key).is_number(), origin << ": \"" << key << "\" must be a number, got " << json_excerpt(j.at(key)));
  return j.at(key).get<double>();
}

bool get_bool_or(const json& j, const char* key, bool fallback, const std::string& origin) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  FT_CHECK_ARG(j.at(key).is_boolean(), origin << ": \"" << key << "\" must be true or false, got " << json_excerpt(j.at(key)));
  return j.at(key).get<bool>();
}

// The pre-training context of llama3, yarn and longrope scaling, as Transformers' standardize_rope_params
// finds it: a top-level original_max_position_embeddings wins (Phi3Config always has one, 4096 by
// default), then the scaling's own key, then max_position_embeddings.
int64_t original_max_position(const json& j, const json& p, const std::string& origin, const std::string& where, const ModelSpec& m) {
  const int64_t own = get_int_or(p, "original_max_position_embeddings", m.max_position, where);
  const int64_t top = get_int_or(j, "original_max_position_embeddings", m.model_type == "phi3" ? 4096 : own, origin);
  FT_CHECK_ARG(top > 0, where << ": " << m.rope_type << " rope scaling needs original_max_position_embeddings (or max_position_embeddings) > 0");
  return top;
}

// The keys a scaling must have, as Transformers' rope validation requires them (its KeyError):
// never a default that changes the frequencies.
void need_rope_keys(const json& p, const std::string& where, const std::string& type, std::initializer_list<const char*> keys) {
  for (const char* key : keys)
    FT_CHECK_ARG(p.contains(key) && p.at(key).is_number(),
                 where << ": rope_type \"" << type << "\" needs \"" << key << "\", a number: ftdist does not guess a value that "
                          "changes the frequencies (Transformers 4 refuses the config; 5 derives some with a warning)");
}

// YaRN (Transformers' _compute_yarn_parameters): the pre-training context, the factor, and the
// attention factor cos and sin are scaled by (0.1 ln factor + 1, or the mscale ratio, unless given).
void read_yarn(const json& j, const json& p, const std::string& origin, const std::string& where, ModelSpec* m) {
  m->rope_original_max_position = original_max_position(j, p, origin, where, *m);
  need_rope_keys(p, where, "yarn", {"factor"});
  m->rope_factor = p.at("factor").get<double>();
  auto mscale = [](double scale, double k) { return scale <= 1 ? 1.0 : 0.1 * k * std::log(scale) + 1.0; };
  const double ms = get_number_or(p, "mscale", 0, where), ms_all = get_number_or(p, "mscale_all_dim", 0, where);
  m->rope_attention_factor = get_number_or(
      p, "attention_factor", ms != 0 && ms_all != 0 ? mscale(m->rope_factor, ms) / mscale(m->rope_factor, ms_all) : mscale(m->rope_factor, 1), where);
  // (Transformers: `or 32`, `or 1` — a 0 or null takes the default)
  const double fast = get_number_or(p, "beta_fast", 0, where), slow = get_number_or(p, "beta_slow", 0, where);
  m->rope_beta_fast = fast != 0 ? fast : 32;
  m->rope_beta_slow = slow != 0 ? slow : 1;
  m->rope_truncate = get_bool_or(p, "truncate", true, where);
}

std::vector<double> get_numbers(const json& p, const char* key, const std::string& where) {
  FT_CHECK_ARG(p.contains(key) && p.at(key).is_array(), where << ": longrope needs \"" << key << "\", a list of numbers");
  std::vector<double> out;
  for (const json& v : p.at(key)) {
    FT_CHECK_ARG(v.is_number(), where << ": \"" << key << "\"[" << out.size() << "] must be a number, got " << json_excerpt(v));
    out.push_back(v.get<double>());
  }
  return out;
}

// LongRoPE (Transformers' _compute_longrope_parameters; Phi-3 128k, Phi-3.5): the short and long
// per-frequency factors, the pre-training context, the factor (else the ratio of
// max_position_embeddings to the context) and the attention factor (unless given,
// sqrt(1 + ln factor / ln context), 1 for a factor <= 1).
void read_longrope(const json& j, const json& p, const std::string& origin, const std::string& where, ModelSpec* m) {
  m->rope_short_factor = get_numbers(p, "short_factor", where);
  m->rope_long_factor = get_numbers(p, "long_factor", where);
  m->rope_original_max_position = original_max_position(j, p, origin, where, *m);
  const double context = double(m->rope_original_max_position);
  FT_CHECK_ARG(p.contains("factor") || m->max_position > 0,
               where << ": longrope needs a \"factor\" or max_position_embeddings (their ratio to the pre-training context)");
  m->rope_factor = get_number_or(p, "factor", double(m->max_position) / context, where);
  const double f = m->rope_factor;
  m->rope_attention_factor = get_number_or(p, "attention_factor", f <= 1 ? 1.0 : std::sqrt(1 + std::log(f) / std::log(context)), where);
}

// RoPE from the top-level "rope_theta" and the object j[key] ({rope_theta, rope_type|type, factor,
// ...}; none: default RoPE).
void read_rope_from(const json& j, const char* key, const std::string& origin, ModelSpec* m) {
  m->rope_theta = get_number_or(j, "rope_theta", m->rope_theta, origin);
  if (!key) return;
  const json* p = &j.at(key);
  const std::string where = origin + " \"" + key + "\"";
  m->rope_theta = get_number_or(*p, "rope_theta", m->rope_theta, where);
  std::string type = "default";  // (rope_type wins over the legacy "type")
  for (const char* name : {"type", "rope_type"})
    if (p->contains(name) && p->at(name).is_string()) type = p->at(name).get<std::string>();
  if (m->model_type == "phi3") {
    // Phi3Config reads "yarn" as longrope (and Transformers 4 read the legacy "su" so), and no other scaling.
    if (type == "su" || type == "yarn") type = "longrope";
    FT_CHECK_ARG(type == "default" || type == "longrope",
                 where << ": rope_type \"" << type << "\" is not one a phi3 model has (Transformers' Phi3Config reads default and longrope)");
  }
  FT_CHECK_ARG(type == "default" || type == "llama3" || type == "linear" || type == "dynamic" || type == "yarn" || type == "longrope",
               where << ": rope_type \"" << type << "\" is not supported (ftdist supports default, llama3, linear, dynamic, yarn and longrope)");
  m->rope_type = type;
  if (type == "llama3") {
    need_rope_keys(*p, where, type, {"factor", "low_freq_factor", "high_freq_factor"});
    m->rope_factor = p->at("factor").get<double>();
    m->rope_low_freq_factor = p->at("low_freq_factor").get<double>();
    m->rope_high_freq_factor = p->at("high_freq_factor").get<double>();
    m->rope_original_max_position = original_max_position(j, *p, origin, where, *m);
  } else if (type == "linear" || type == "dynamic") {
    need_rope_keys(*p, where, type, {"factor"});
    m->rope_factor = p->at("factor").get<double>();
  } else if (type == "yarn") {
    read_yarn(j, *p, origin, where, m);
  } else if (type == "longrope") {
    read_longrope(j, *p, origin, where, m);
  }
}

// The RoPE settings two readings of a config must agree on.
std::string rope_summary(const ModelSpec& m) {
  std::ostringstream o;
  o << "rope_type " << m.rope_type << ", rope_theta " << m.rope_theta;
  if (m.rope_type != "default") o << ", factor " << m.rope_factor;
  if (m.rope_type == "llama3" || m.rope_type == "yarn" || m.rope_type == "longrope")
    o << ", original_max_position_embeddings " << m.rope_original_max_position;
  return o.str();
}

bool same_rope(const ModelSpec& a, const ModelSpec& b) {
  return a.rope_theta == b.rope_theta && a.rope_type == b.rope_type && a.rope_factor == b.rope_factor &&
         a.rope_low_freq_factor == b.rope_low_freq_factor && a.rope_high_freq_factor == b.rope_high_freq_factor &&
         a.rope_original_max_position == b.rope_original_max_position && a.rope_attention_factor == b.rope_attention_factor &&
         a.rope_short_factor == b.rope_short_factor && a.rope_long_factor == b.rope_long_factor &&
         a.rope_beta_fast == b.rope_beta_fast && a.rope_beta_slow == b.rope_beta_slow && a.rope_truncate == b.rope_truncate;
}

// RoPE: Transformers 5 writes "rope_parameters" {rope_theta, rope_type, ...}; older configs have a
// top-level "rope_theta" and an optional "rope_scaling" {rope_type|type, factor, ...}. Given both,
// Transformers reads "rope_scaling" alone (rope_parameters dropped, rope_theta from the top level):
// ftdist does too where that agrees with "rope_parameters", and refuses where they disagree, as
// which one was meant is a guess (typically a scaling added by hand to a Transformers 5 config).
void read_rope(const json& j, const std::string& origin, ModelSpec* m) {
  auto present = [&](const char* key) {
    if (!j.contains(key) || j.at(key).is_null()) return false;
    FT_CHECK_ARG(j.at(key).is_object(), origin << ": \"" << key << "\" must be an object");
    return !j.at(key).empty();  // ({} is none, as Transformers' `rope_scaling or rope_parameters` reads it)
  };
  const bool parameters = present("rope_parameters"), scaling = present("rope_scaling");
  if (!(parameters && scaling)) {
    read_rope_from(j, scaling ? "rope_scaling" : parameters ? "rope_parameters" : nullptr, origin, m);
    return;
  }
  ModelSpec as_parameters = *m;
  read_rope_from(j, "rope_parameters", origin, &as_parameters);
  read_rope_from(j, "rope_scaling", origin, m);
  FT_CHECK_ARG(same_rope(*m, as_parameters),
               origin << ": \"rope_scaling\" (" << rope_summary(*m) << ") disagrees with \"rope_parameters\" ("
                      << rope_summary(as_parameters) << "). Transformers reads \"rope_scaling\" alone, with rope_theta "
                      << "from the top level (10000 when absent); keep only the one meant (a Transformers 5 config: "
                      << "put the scaling's keys into \"rope_parameters\")");
}

}  // namespace

namespace {
// Mistral and Ministral (Transformers' Mistral with "layer_types"): the same model for ftdist.
bool mistral_like(const std::string& model_type) { return model_type == "mistral" || model_type == "ministral"; }

// Biases: Qwen2 always has q/k/v biases (not o_proj); Llama's and Qwen3's attention_bias puts them on
// q, k, v and o; only Llama has mlp_bias. Mistral and Phi-3 have none (Transformers ignores the keys).
void read_biases(const json& j, const std::string& origin, ModelSpec* m) {
  const bool llama_like = m->model_type == "llama" || m->model_type == "qwen3";
  const bool attention_bias = llama_like && get_bool_or(j, "attention_bias", false, origin);
  m->qkv_bias = m->model_type == "qwen2" || attention_bias;
  m->o_bias = attention_bias;
  m->mlp_bias = m->model_type == "llama" && get_bool_or(j, "mlp_bias", false, origin);
}

// "layer_types" (Transformers 5 writes it for Qwen2/Qwen3; Transformers reads a Mistral config
// that has it as Ministral): which layers attend through the window, over max_window_layers.
void read_layer_types(const json& j, const std::string& origin, ModelSpec* m) {
  if (!j.contains("layer_types") || j.at("layer_types").is_null()) return;
  const json& types = j.at("layer_types");
  FT_CHECK_ARG(types.is_array() && int64_t(types.size()) == m->layers,
               origin << ": \"layer_types\" must be a list of num_hidden_layers (" << m->layers << ") strings");
  std::vector<bool> window(size_t(m->layers), false);
  for (int64_t i = 0; i < m->layers; ++i) {
    const json& t = types.at(size_t(i));
    window[size_t(i)] = t.is_string() && t.get<std::string>() == "sliding_attention";
    FT_CHECK_ARG(window[size_t(i)] || (t.is_string() && t.get<std::string>() == "full_attention"),
                 origin << ": \"layer_types\"[" << i << "] must be \"full_attention\" or \"sliding_attention\", got "
                        << json_excerpt(t));
  }
  FT_CHECK_ARG(std::find(window.begin(), window.end(), true) == window.end() || m->sliding_window > 0,
               origin << ": \"layer_types\" has sliding_attention layers but no sliding window "
                         "(sliding_window null" << (mistral_like(m->model_type) ? "" : ", or use_sliding_window false") << ")");
  m->window_layers = std::move(window);
}

// The sliding window: Mistral's, Ministral's and Phi-3's on every layer; Qwen2's and Qwen3's with
// use_sliding_window, from max_window_layers on; "layer_types" (Qwen, Mistral, Ministral) names the layers.
void read_window(const json& j, const std::string& origin, ModelSpec* m) {
  const bool qwen = m->model_type == "qwen2" || m->model_type == "qwen3";
  const bool window_used = mistral_like(m->model_type) || m->model_type == "phi3" ||
                           (qwen && get_bool_or(j, "use_sliding_window", false, origin));
  // (MistralConfig's, MinistralConfig's, Qwen2Config's and Qwen3Config's default window is 4096: a missing key is
  // that, null is no window; Phi3Config's default is none)
  const int64_t default_window = m->model_type != "phi3" && !j.contains("sliding_window") ? 4096 : 0;
  m->sliding_window = window_used ? get_int_or(j, "sliding_window", default_window, origin) : 0;
  FT_CHECK_ARG(!window_used || !j.contains("sliding_window") || j["sliding_window"].is_null() || m->sliding_window > 0,
               origin << ": \"sliding_window\" must be a positive number of tokens, or null for no window; got "
                      << m->sliding_window);
  if (qwen && m->sliding_window > 0) {
    // Transformers' default max_window_layers is 28.
    const int64_t from = get_int_or(j, "max_window_layers", 28, origin);
    FT_CHECK_ARG(from >= 0, origin << ": max_window_layers must be >= 0, got " << from);
    m->window_layers.assign(size_t(m->layers), false);
    for (int64_t i = std::min(from, m->layers); i < m->layers; ++i) m->window_layers[size_t(i)] = true;
  }
  if (qwen || mistral_like(m->model_type)) read_layer_types(j, origin, m);
  const int64_t used = m->window_layer_count();
  if (used == 0) m->sliding_window = 0;  // no layer uses it
  if (used == 0 || used == m->layers) m->window_layers.clear();
}

// What ftdist does not compute: refused, never approximated. Dropout is recorded for training to
// refuse (evaluation and export have none).
void refuse_unsupported(const json& j, const std::string& origin, ModelSpec* m) {
  if (j.contains("hidden_act") && !j.at("hidden_act").is_null())
    FT_CHECK_ARG(j.at("hidden_act") == "silu" || j.at("hidden_act") == "swish",
                 origin << ": \"hidden_act\" is " << json_excerpt(j.at("hidden_act")) << "; ftdist computes SwiGLU with silu only");
  for (const char* key : {"attention_dropout", "resid_pdrop"})
    if (get_number_or(j, key, 0.0, origin) != 0.0 && m->dropout.empty())
      m->dropout = origin + ": \"" + key + "\" is " + json_excerpt(j.at(key));
}

// Phi-3's partial_rotary_factor: top level, or in rope_parameters / rope_scaling (which win).
void read_partial_rotary(const json& j, const std::string& origin, ModelSpec* m) {
  m->rope_partial = get_number_or(j, "partial_rotary_factor", 1.0, origin);
  for (const char* key : {"rope_parameters", "rope_scaling"})
    if (j.contains(key) && j.at(key).is_object())
      m->rope_partial = get_number_or(j.at(key), "partial_rotary_factor", m->rope_partial, origin + " \"" + key + "\"");
  const int64_t dim = m->rotary_dim();
  FT_CHECK_ARG(m->rope_partial > 0 && m->rope_partial <= 1 && dim >= 2 && dim % 2 == 0,
               origin << ": \"partial_rotary_factor\" (" << m->rope_partial << ") must give an even number of rotated "
                      << "dimensions in 2.." << m->head_dim << " (head_dim x factor = " << dim << ")");
}

// Outside Phi-3 a partial_rotary_factor is not the model's: Transformers' default RoPE of these
// models ignores it (as ftdist does), its scaled RoPE rotates that fraction and then fails on the
// shapes. A scaled config with a factor other than 1 is refused rather than computed either way.
void refuse_partial_rotary(const json& j, const std::string& origin, const ModelSpec& m) {
  if (m.rope_type == "default") return;
  double factor = get_number_or(j, "partial_rotary_factor", 1.0, origin);
  for (const char* key : {"rope_parameters", "rope_scaling"})
    if (j.contains(key) && j.at(key).is_object()) factor = get_number_or(j.at(key), "partial_rotary_factor", factor, origin);
  FT_CHECK_ARG(factor == 1.0, origin << ": \"partial_rotary_factor\" " << factor << " with " << m.rope_type << " RoPE scaling on a "
                                     << m.model_type << " model: only phi3 rotates part of each head (Transformers fails on this "
                                     << "config); remove the key or set it to 1");
}

// pad_token_id: Transformers' embedding padding_idx, whose row no lookup trains (Phi3Config's default
// 32000 where the vocabulary holds it; a negative id counts from the end, as in torch).
void read_pad_token(const json& j, const std::string& origin, ModelSpec* m) {
  const bool missing = !j.contains("pad_token_id");
  if ((missing && !(m->model_type == "phi3" && m->vocab > 32000)) || (!missing && j.at("pad_token_id").is_null())) return;
  const int64_t pad = missing ? 32000 : get_int(j, "pad_token_id", origin);
  FT_CHECK_ARG(pad >= -m->vocab && pad < m->vocab,
               origin << ": \"pad_token_id\" (" << pad << ") is not a row of the embedding (vocab_size " << m->vocab << ")");
  m->pad_token_id = pad < 0 ? pad + m->vocab : pad;
}

void read_shape(const json& j, const std::string& origin, ModelSpec* m) {
  m->hidden = get_int(j, "hidden_size", origin);
  m->intermediate = get_int(j, "intermediate_size", origin);
  m->layers = get_int(j, "num_hidden_layers", origin);
  m->heads = get_int(j, "num_attention_heads", origin);
  // Transformers' defaults when the key is missing: Qwen2/Qwen3 32, Mistral/Ministral 8, the others the heads;
  // null is the heads for every family (each config class's __post_init__).
  const bool qwen = m->model_type == "qwen2" || m->model_type == "qwen3";
  const bool missing = !j.contains("num_key_value_heads");
  m->kv_heads = get_int_or(j, "num_key_value_heads", missing && qwen ? 32 : missing && mistral_like(m->model_type) ? 8 : m->heads, origin);
  m->vocab = get_int(j, "vocab_size", origin);
  FT_CHECK_ARG(m->heads > 0, origin << ": num_attention_heads must be positive");
  // Qwen3Config's head_dim defaults to 128; the others' to hidden / heads.
  m->head_dim = get_int_or(j, "head_dim", m->model_type == "qwen3" ? 128 : 0, origin);
  if (m->head_dim == 0) {
    FT_CHECK_ARG(m->hidden % m->heads == 0, origin << ": hidden_size (" << m->hidden
                 << ") is not a multiple of num_attention_heads (" << m->heads << ") and there is no \"head_dim\"");
    m->head_dim = m->hidden / m->heads;
  }
}
}  // namespace

ModelSpec model_from_hf_config_text(const std::string& text, const std::string& origin) {
  const json j = parse_json(text, origin);
  FT_CHECK_ARG(j.is_object(), origin << ": expected a JSON object");
  FT_CHECK_ARG(j.contains("model_type") && j.at("model_type").is_string(),
               origin << ": missing key \"model_type\" (expected llama, mistral, ministral, qwen2, qwen3 or phi3)");
  ModelSpec m;
  m.model_type = j.at("model_type").get<std::string>();
  FT_CHECK_ARG(m.model_type == "llama" || mistral_like(m.model_type) || m.model_type == "qwen2" ||
                   m.model_type == "qwen3" || m.model_type == "phi3",
               origin << ": \"model_type\" is \"" << m.model_type
                      << "\"; ftdist supports the Llama family: llama, mistral, ministral, qwen2, qwen3, phi3");
  m.name = j.contains("_name_or_path") && j.at("_name_or_path").is_string() ? j.at("_name_or_path").get<std::string>() : origin;
  read_shape(j, origin, &m);
  m.tie_embeddings = get_bool_or(j, "tie_word_embeddings", false, origin);
  read_biases(j, origin, &m);
  m.qk_norm = m.model_type == "qwen3";
  // (missing: the Transformers config class's default)
  static const std::map<std::string, int64_t> kDefaultMaxPosition = {
      {"llama", 2048}, {"mistral", 131072}, {"ministral", 131072}, {"qwen2", 32768}, {"qwen3", 32768}, {"phi3", 4096}};
  m.max_position = get_int_or(j, "max_position_embeddings", kDefaultMaxPosition.at(m.model_type), origin);
  FT_CHECK_ARG(!j.contains("max_position_embeddings") || j["max_position_embeddings"].is_null() || m.max_position > 0,
               origin << ": \"max_position_embeddings\" must be a positive number of positions, got " << m.max_position);
  read_window(j, origin, &m);
  read_pad_token(j, origin, &m);
  m.initializer_range = get_number_or(j, "initializer_range", m.initializer_range, origin);
  FT_CHECK_ARG(std::isfinite(m.initializer_range) && m.initializer_range >= 0 && m.initializer_range <= 10,
               origin << ": \"initializer_range\" must be 0..10, got " << m.initializer_range);
  m.rms_norm_eps = get_number_or(j, "rms_norm_eps", m.model_type == "phi3" ? 1e-5 : m.rms_norm_eps, origin);  // (Phi3Config's)
  read_rope(j, origin, &m);
  if (m.model_type == "phi3") read_partial_rotary(j, origin, &m);
  else refuse_partial_rotary(j, origin, m);
  refuse_unsupported(j, origin, &m);
  m.validate(origin);
  return m;
}

ModelSpec model_from_hf_config(const std::string& path) {
  // A model directory is accepted for its config.json.
  std::string file = is_directory(path) ? path + "/config.json" : path;
  return model_from_hf_config_text(read_text_file(file, "--model-config"), file);
}

std::string hf_config_text(const ModelSpec& m) {
  static const std::map<std::string, std::string> kArchitecture = {
      {"llama", "LlamaForCausalLM"}, {"mistral", "MistralForCausalLM"}, {"ministral", "MinistralForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"},
      {"qwen3", "Qwen3ForCausalLM"}, {"phi3", "Phi3ForCausalLM"}};
  json j;
  j["architectures"] = {kArchitecture.count(m.model_type) ? kArchitecture.at(m.model_type) : "LlamaForCausalLM"};
  j["model_type"] = m.model_type;
  j["_name_or_path"] = m.name;
  j["hidden_size"] = m.hidden;
  j["intermediate_size"] = m.intermediate;
  j["num_hidden_layers"] = m.layers;
  j["num_attention_heads"] = m.heads;
  j["num_key_value_heads"] = m.kv_heads;
  j["head_dim"] = m.head_dim;
  j["vocab_size"] = m.vocab;
  j["tie_word_embeddings"] = m.tie_embeddings;
  if (m.model_type == "llama" || m.model_type == "qwen3") j["attention_bias"] = m.qkv_bias;
  if (m.model_type == "llama") j["mlp_bias"] = m.mlp_bias;
  if (m.max_position > 0) j["max_position_embeddings"] = m.max_position;
  const bool qwen = m.model_type == "qwen2" || m.model_type == "qwen3";
  if (qwen) {
    j["use_sliding_window"] = m.sliding_window > 0;
    if (m.sliding_window > 0) {
      int64_t first = 0;  // (the first windowed layer; "layer_types" below says which exactly)
      while (first < m.layers && !m.layer_uses_window(first)) ++first;
      j["max_window_layers"] = first;
    }
  }
  if (m.sliding_window > 0 || mistral_like(m.model_type) || m.model_type == "phi3")
    j["sliding_window"] = m.sliding_window > 0 ? json(m.sliding_window) : json(nullptr);
  if ((qwen && m.sliding_window > 0) || !m.window_layers.empty()) {
    json types = json::array();
    for (int64_t i = 0; i < m.layers; ++i) types.push_back(m.layer_uses_window(i) ? "sliding_attention" : "full_attention");
    j["layer_types"] = types;
  }
  j["rms_norm_eps"] = m.rms_norm_eps;
  j["rope_theta"] = m.rope_theta;
  if (m.rope_type == "llama3")
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", m.rope_factor},
                         {"low_freq_factor", m.rope_low_freq_factor},
                         {"high_freq_factor", m.rope_high_freq_factor},
                         {"original_max_position_embeddings", m.rope_original_max_position}};
  else if (m.rope_type == "linear" || m.rope_type == "dynamic")
    j["rope_scaling"] = {{"rope_type", m.rope_type}, {"factor", m.rope_factor}};
  else if (m.rope_type == "yarn")
    j["rope_scaling"] = {{"rope_type", "yarn"},
                         {"factor", m.rope_factor},
                         {"original_max_position_embeddings", m.rope_original_max_position},
                         {"attention_factor", m.rope_attention_factor},
                         {"beta_fast", m.rope_beta_fast},
                         {"beta_slow", m.rope_beta_slow},
                         {"truncate", m.rope_truncate}};
  else if (m.rope_type == "longrope") {
    // (top level as well: there Transformers' Phi3Config reads it, over the scaling's own key)
    j["original_max_position_embeddings"] = m.rope_original_max_position;
    j["rope_scaling"] = {{"rope_type", "longrope"},
                         {"factor", m.rope_factor},
                         {"original_max_position_embeddings", m.rope_original_max_position},
                         {"attention_factor", m.rope_attention_factor},
                         {"short_factor", m.rope_short_factor},
                         {"long_factor", m.rope_long_factor}};
  }
  if (m.model_type == "phi3") {
    j["partial_rotary_factor"] = m.rope_partial;
    j["pad_token_id"] = nullptr;  // Phi3Config's default (32000) would be an embedding row of a smaller vocabulary
  }
  j["hidden_act"] = "silu";
  j["torch_dtype"] = "float32";
  return j.dump(2) + "\n";
}

}  // namespace ftdist::plan
