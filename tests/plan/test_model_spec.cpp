// Parameter counts: presets and real config.json files must give the sum of the HF checkpoint's
// tensor sizes exactly (the expected numbers are the published counts, which Transformers
// reproduces on the same configs: tests/plan/check_param_counts.py runs that oracle).
#include <gtest/gtest.h>

#include <cmath>

#include "expect_error.h"

#include <string>

#include "ftdist/core/error.h"
#include "ftdist/plan/model_spec.h"
#include "ftdist/plan/presets.h"

using namespace ftdist::plan;

namespace {

const std::string kConfigs = std::string(FTDIST_TEST_DATA) + "/hf_configs/";


TEST(Presets, ExactParameterCounts) {
  const std::pair<const char*, int64_t> expected[] = {
      {"llama-2-7b", 6738415616},      {"llama-2-13b", 13015864320},   {"llama-2-70b", 68976648192},
      {"llama-3-8b", 8030261248},      {"llama-3.1-8b", 8030261248},   {"llama-3-70b", 70553706496},
      {"llama-3.1-70b", 70553706496},  {"llama-3.1-405b", 405853388800}, {"mistral-7b", 7241732096},
      {"qwen2.5-0.5b", 494032768},     {"qwen2.5-1.5b", 1543714304},   {"qwen2.5-7b", 7615616512},
      {"qwen2.5-14b", 14770033664},    {"qwen2.5-32b", 32763876352},   {"qwen2.5-72b", 72706203648},
      {"tinyllama-1.1b", 1100048384},  {"phi-3-mini", 3821079552},
      // Qwen3: Transformers' count (tied lm_head once); the 0.6B and 1.7B files also store a copy of
      // the tied lm_head (752M and 2.03B on the Hub), which the loader does not read.
      {"qwen3-0.6b", 596049920},       {"qwen3-1.7b", 1720574976},     {"qwen3-4b", 4022468096},
      {"qwen3-8b", 8190735360},        {"qwen3-14b", 14768307200},     {"qwen3-32b", 32762123264},
  };
  for (const auto& [name, count] : expected) EXPECT_EQ(preset_model(name).param_count(), count) << name;
  EXPECT_EQ(model_presets().size(), std::size(expected));
}

TEST(Presets, UnknownNameSuggestsTheClosest) {
  expect_bad_input([] { preset_model("mistral7b"); }, "did you mean mistral-7b");
  expect_bad_input([] { preset_model("llama-3-8"); }, "llama-3-8b");
  EXPECT_EQ(preset_model("Mistral-7B").name, "mistral-7b");
}

TEST(HfConfig, RealConfigsCountExactly) {
  const std::pair<const char*, int64_t> expected[] = {
      {"llama-2-7b", 6738415616}, {"llama-3-8b", 8030261248},  {"llama-3.1-8b", 8030261248}, {"mistral-7b", 7241732096},
      {"qwen2.5-0.5b", 494032768}, {"qwen2.5-7b", 7615616512}, {"phi-3-mini", 3821079552},
      {"tinyllama-1.1b", 1100048384}, {"qwen3-0.6b", 596049920}, {"qwen3-8b", 8190735360},
  };
  for (const auto& [name, count] : expected) {
    ModelSpec m = model_from_hf_config(kConfigs + name + ".json");
    EXPECT_EQ(m.param_count(), count) << name;
    EXPECT_EQ(m.param_count(), preset_model(name).param_count()) << name;
    // A preset is the published architecture, not only its shape: RoPE, norms, positions, window.
    const ModelSpec p = preset_model(name);
    EXPECT_EQ(p.rope_theta, m.rope_theta) << name;
    EXPECT_EQ(p.rms_norm_eps, m.rms_norm_eps) << name;
    EXPECT_EQ(p.rope_type, m.rope_type) << name;
    EXPECT_EQ(p.rope_factor, m.rope_factor) << name;
    EXPECT_EQ(p.rope_low_freq_factor, m.rope_low_freq_factor) << name;
    EXPECT_EQ(p.rope_high_freq_factor, m.rope_high_freq_factor) << name;
    EXPECT_EQ(p.rope_original_max_position, m.rope_original_max_position) << name;
    EXPECT_EQ(p.max_position, m.max_position) << name;
    EXPECT_EQ(p.sliding_window, m.sliding_window) << name;
    EXPECT_EQ(p.tie_embeddings, m.tie_embeddings) << name;
  }
}

TEST(HfConfig, ReadsGqaTiedBiasWindowAndHeadDim) {
  ModelSpec q = model_from_hf_config(kConfigs + "qwen2.5-0.5b.json");
  EXPECT_TRUE(q.tie_embeddings);
  EXPECT_TRUE(q.qkv_bias);
  EXPECT_EQ(q.kv_heads, 2);
  EXPECT_EQ(q.head_dim, 64);
  EXPECT_EQ(q.sliding_window, 0);  // use_sliding_window is false
  ModelSpec m = model_from_hf_config(kConfigs + "mistral-7b.json");
  EXPECT_EQ(m.sliding_window, 4096);
  // An explicit head_dim that is not hidden / heads (as in Mistral-Nemo or Gemma-style configs).
  ModelSpec e = model_from_hf_config_text(
      R"({"model_type":"mistral","hidden_size":5120,"intermediate_size":14336,"num_hidden_layers":40,
          "num_attention_heads":32,"num_key_value_heads":8,"head_dim":128,"vocab_size":131072})",
      "nemo.json");
  EXPECT_EQ(e.head_dim, 128);
  EXPECT_EQ(e.layer_params(), 4096 * 5120 + 2 * 1024 * 5120 + 5120 * 4096 + 3 * 5120 * 14336 + 2 * 5120);
  // Mistral with "layer_types" (Transformers reads it as Ministral): the window on those layers only;
  // and the config written back keeps them.
  ModelSpec alt = model_from_hf_config_text(
      R"({"model_type":"mistral","hidden_size":64,"intermediate_size":96,"num_hidden_layers":3,"num_attention_heads":4,
          "num_key_value_heads":2,"vocab_size":50,"sliding_window":5,"layer_types":["full_attention","sliding_attention","full_attention"]})", "alt.json");
  EXPECT_EQ(alt.sliding_window, 5);
  EXPECT_FALSE(alt.layer_uses_window(0) || alt.layer_uses_window(2));
  EXPECT_TRUE(alt.layer_uses_window(1));
  EXPECT_EQ(alt.window_layer_count(), 1);
  const ModelSpec alt_back = model_from_hf_config_text(hf_config_text(alt), "back.json");
  EXPECT_EQ(alt_back.window_layers, alt.window_layers);
  EXPECT_TRUE(model_from_hf_config(kConfigs + "mistral-7b.json").window_layers.empty());  // every layer
  // Ministral (model_type "ministral"): Mistral's model, written back as itself.
  ModelSpec mini = model_from_hf_config_text(
      R"({"model_type":"ministral","hidden_size":64,"intermediate_size":96,"num_hidden_layers":3,"num_attention_heads":16,
          "vocab_size":50,"sliding_window":5,"layer_types":["sliding_attention","full_attention","sliding_attention"]})", "mini.json");
  EXPECT_EQ(mini.kv_heads, 8);  // (MinistralConfig's default)
  EXPECT_FALSE(mini.qkv_bias);
  EXPECT_TRUE(mini.layer_uses_window(0) && mini.layer_uses_window(2) && !mini.layer_uses_window(1));
  const std::string mini_text = hf_config_text(mini);
  EXPECT_NE(mini_text.find("\"MinistralForCausalLM\""), std::string::npos) << mini_text;
  const ModelSpec mini_back = model_from_hf_config_text(mini_text, "mini-back.json");
  EXPECT_EQ(mini_back.model_type, "ministral");
  EXPECT_EQ(mini_back.window_layers, mini.window_layers);
  // without layer_types every layer takes the window; a null window none
  const std::string mini_plain = R"({"model_type":"ministral","hidden_size":64,"intermediate_size":96,"num_hidden_layers":3,)"
                                 R"("num_attention_heads":16,"vocab_size":50)";
  EXPECT_EQ(model_from_hf_config_text(mini_plain + "}", "m.json").sliding_window, 4096);
  EXPECT_EQ(model_from_hf_config_text(mini_plain + R"(,"sliding_window":null})", "m.json").sliding_window, 0);
  // A directory is read for its config.json.
  EXPECT_EQ(model_from_hf_config(FTDIST_TEST_DATA "/hf_model_dir").param_count(), 6738415616);
}

TEST(HfConfig, Qwen3PerHeadNormsHeadDimAndWindowedLayers) {
  ModelSpec q = model_from_hf_config(kConfigs + "qwen3-0.6b.json");
  EXPECT_EQ(q.model_type, "qwen3");
  EXPECT_TRUE(q.qk_norm && q.tie_embeddings);
  EXPECT_FALSE(q.qkv_bias || q.o_bias);
  EXPECT_EQ(q.head_dim, 128);  // not hidden / heads (64)
  EXPECT_EQ(q.q_dim(), 2048);
  EXPECT_EQ(q.sliding_window, 0);
  const std::vector<ModelSpec::Tensor> t = q.layer_tensors();
  auto has = [&](const std::string& name, std::vector<int64_t> shape) {
    for (const auto& x : t)
      if (x.name == name) return x.shape == shape;
    return false;
  };
  EXPECT_TRUE(has("self_attn.q_norm.weight", {128}));
  EXPECT_TRUE(has("self_attn.k_norm.weight", {128}));
  EXPECT_TRUE(has("self_attn.q_proj.weight", {2048, 1024}));
  // Without "head_dim" Qwen3Config's default, 128, applies; attention_bias puts biases on q, k, v and o.
  const std::string base = R"({"model_type":"qwen3","hidden_size":64,"intermediate_size":96,"num_hidden_layers":4,
      "num_attention_heads":4,"num_key_value_heads":2,"vocab_size":50)";
  ModelSpec d = model_from_hf_config_text(base + R"(,"attention_bias":true})", "d.json");
  EXPECT_EQ(d.head_dim, 128);
  EXPECT_TRUE(d.qkv_bias && d.o_bias && !d.mlp_bias);
  // The window: from max_window_layers (Transformers' default 28), or from "layer_types".
  ModelSpec w = model_from_hf_config_text(base + R"(,"use_sliding_window":true,"sliding_window":8,"max_window_layers":1})", "w.json");
  EXPECT_EQ(w.sliding_window, 8);
  EXPECT_FALSE(w.layer_uses_window(0));
  EXPECT_TRUE(w.layer_uses_window(1));
  ModelSpec none = model_from_hf_config_text(base + R"(,"use_sliding_window":true,"sliding_window":8})", "n.json");
  EXPECT_EQ(none.sliding_window, 0);  // max_window_layers 28 >= 4 layers: no layer uses the window
  ModelSpec lt = model_from_hf_config_text(base + R"(,"use_sliding_window":true,"sliding_window":8,"max_window_layers":1,
      "layer_types":["full_attention","full_attention","sliding_attention","sliding_attention"]})", "lt.json");
  const std::vector<bool> lt_layers = {false, false, true, true};
  EXPECT_EQ(lt.window_layers, lt_layers);
  EXPECT_EQ(lt.window_layer_count(), 2);
  // Any pattern, as Transformers' Qwen2/Qwen3 attention reads "layer_types" layer by layer.
  ModelSpec first = model_from_hf_config_text(base + R"(,"use_sliding_window":true,"sliding_window":8,
      "layer_types":["sliding_attention","full_attention","sliding_attention","full_attention"]})", "x.json");
  EXPECT_TRUE(first.layer_uses_window(0) && first.layer_uses_window(2));
  EXPECT_FALSE(first.layer_uses_window(1) || first.layer_uses_window(3));
  // use_sliding_window without "sliding_window": Qwen3Config's default window, 4096.
  EXPECT_EQ(model_from_hf_config_text(base + R"(,"use_sliding_window":true,"max_window_layers":2})", "d.json").sliding_window, 4096);
  EXPECT_EQ(model_from_hf_config_text(base + R"(,"use_sliding_window":true,"sliding_window":null,"max_window_layers":2})", "n.json")
                .sliding_window, 0);
  expect_bad_input([&] { model_from_hf_config_text(base + R"(,"layer_types":["full_attention","full_attention",
      "full_attention","sliding_attention"]})", "y.json"); }, "y.json: \"layer_types\" has sliding_attention layers but no sliding window");
  // The round trip through hf_config_text keeps all of it.
  for (const ModelSpec& m : {q, d, w, lt, first}) {
    ModelSpec back = model_from_hf_config_text(hf_config_text(m), "back.json");
    EXPECT_EQ(back.layer_tensors().size(), m.layer_tensors().size());
    EXPECT_EQ(back.param_count(), m.param_count());
    EXPECT_EQ(back.head_dim, m.head_dim);
    EXPECT_EQ(back.sliding_window, m.sliding_window);
    for (int64_t i = 0; i < m.layers; ++i) EXPECT_EQ(back.layer_uses_window(i), m.layer_uses_window(i)) << "layer " << i;
    EXPECT_EQ(back.rope_theta, m.rope_theta);
  }
}

TEST(HfConfig, Phi3FusedTensorsPartialRotaryAndRefusedKeys) {
  ModelSpec m = model_from_hf_config(kConfigs + "phi-3-medium.json");
  EXPECT_EQ(m.param_count(), 13960238080);  // Transformers' count (check_param_counts.py)
  EXPECT_EQ(m.sliding_window, 2047);
  EXPECT_EQ(m.rotary_dim(), 128);
  const std::vector<ModelSpec::Tensor> hf = m.hf_tensors(m.units()[1]);
  ASSERT_EQ(hf.size(), 6u);  // qkv_proj, o_proj, gate_up_proj, down_proj, two norms
  EXPECT_EQ(hf[0].name, "model.layers.0.self_attn.qkv_proj.weight");
  EXPECT_EQ(hf[0].shape, (std::vector<int64_t>{5120 + 2 * 1280, 5120}));
  EXPECT_EQ(hf[2].name, "model.layers.0.mlp.gate_up_proj.weight");
  EXPECT_EQ(hf[2].shape, (std::vector<int64_t>{2 * 17920, 5120}));
  EXPECT_EQ(hf[1].name, "model.layers.0.self_attn.o_proj.weight");
  EXPECT_EQ(m.hf_tensors(m.units()[0]).size(), 1u);  // the embedding as it is
  ModelSpec llama = model_from_hf_config(kConfigs + "llama-3-8b.json");
  EXPECT_EQ(llama.hf_tensors(llama.units()[1]).size(), llama.layer_tensors().size());

  const std::string base = R"({"model_type":"phi3","hidden_size":64,"intermediate_size":96,"num_hidden_layers":2,
      "num_attention_heads":4,"vocab_size":50)";
  ModelSpec p = model_from_hf_config_text(base + R"(,"rope_parameters":{"rope_theta":500.0,"partial_rotary_factor":0.5,
      "rope_type":"default"},"attention_bias":true})", "p.json");
  EXPECT_EQ(p.rotary_dim(), 8);
  EXPECT_EQ(p.rope_theta, 500.0);
  EXPECT_FALSE(p.qkv_bias || p.o_bias);  // Phi3 has no biases; Transformers ignores the key
  EXPECT_EQ(model_from_hf_config_text(hf_config_text(p), "back.json").rotary_dim(), 8);
  EXPECT_EQ(model_from_hf_config_text(base + R"(,"partial_rotary_factor":0.75})", "t.json").rotary_dim(), 12);
  expect_bad_input([&] { model_from_hf_config_text(base + R"(,"partial_rotary_factor":0.3125})", "odd.json"); },
                   "odd.json: \"partial_rotary_factor\" (0.3125) must give an even number");
  // A scaling Transformers' Phi3Config does not read is refused, naming the file and the key.
  expect_bad_input([&] { model_from_hf_config_text(base + R"(,"rope_scaling":{"type":"linear","factor":2}})", "/m/config.json"); },
                   "/m/config.json \"rope_scaling\": rope_type \"linear\" is not one a phi3 model has");
  // Dropout: read (evaluation and export have none), kept for training to refuse (train::resolve_run).
  EXPECT_EQ(model_from_hf_config_text(base + R"(,"resid_pdrop":0.1})", "r.json").dropout, "r.json: \"resid_pdrop\" is 0.1");
  EXPECT_EQ(model_from_hf_config_text(base + R"(,"attention_dropout":0.0})", "r.json").dropout, "");
  expect_bad_input([&] { model_from_hf_config_text(base + R"(,"hidden_act":"gelu_new"})", "g.json"); },
                   "g.json: \"hidden_act\" is \"gelu_new\"");
}

TEST(HfConfig, MalformedConfigsNameTheKey) {
  expect_bad_input([] { model_from_hf_config_text("{ not json", "bad.json"); }, "bad.json: not valid JSON");
  expect_bad_input([] { model_from_hf_config_text(R"({"hidden_size": 8})", "a.json"); }, "missing key \"model_type\"");
  expect_bad_input([] { model_from_hf_config_text(R"({"model_type":"gpt2"})", "a.json"); }, "\"model_type\" is \"gpt2\"");
  expect_bad_input([] { model_from_hf_config_text(R"({"model_type":"llama","hidden_size":64})", "a.json"); },
                   "a.json: missing key \"intermediate_size\"");
}

TEST(HfConfig, ValidSmallConfigAndEachBrokenKey) {
  const std::string ok = R"({"model_type":"llama","hidden_size":64,"intermediate_size":128,
      "num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100})";
  ModelSpec m = model_from_hf_config_text(ok, "tiny.json");
  EXPECT_EQ(m.param_count(), 2 * (4 * 64 * 64 + 3 * 64 * 128 + 2 * 64) + 2 * 100 * 64 + 64);
  expect_bad_input([] { model_from_hf_config_text(R"({"model_type":"llama","hidden_size":"64"})", "b.json"); },
                   "\"hidden_size\" must be an integer");
  expect_bad_input(
      [] {
        model_from_hf_config_text(R"({"model_type":"llama","hidden_size":64,"intermediate_size":128,
            "num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100,"num_key_value_heads":3})", "c.json");
      },
      "must be a multiple of num_key_value_heads");
  expect_bad_input(
      [] {
        model_from_hf_config_text(R"({"model_type":"llama","hidden_size":64,"intermediate_size":128,
            "num_hidden_layers":0,"num_attention_heads":4,"vocab_size":100})", "d.json");
      },
      "num_hidden_layers must be a positive integer");
  expect_bad_input([] { model_from_hf_config("/nonexistent/config.json"); }, "cannot read '/nonexistent/config.json'");
}

// A key the config leaves out takes the default of that model's Transformers config class.
TEST(HfConfig, MissingKeysTakeTransformersDefaults) {
  auto read = [](const std::string& type, const std::string& extra) {
    return model_from_hf_config_text(R"({"model_type":")" + type + R"(","hidden_size":2048,"intermediate_size":128,)"
                                     R"("num_hidden_layers":2,"num_attention_heads":32,"vocab_size":100)" + extra + "}", type + ".json");
  };
  EXPECT_EQ(read("qwen2", "").kv_heads, 32);
  EXPECT_EQ(read("qwen3", "").kv_heads, 32);
  EXPECT_EQ(read("mistral", "").kv_heads, 8);
  EXPECT_EQ(read("llama", "").kv_heads, 32);
  EXPECT_EQ(read("phi3", "").kv_heads, 32);
  EXPECT_EQ(read("mistral", "").sliding_window, 4096);
  EXPECT_EQ(read("mistral", R"(,"sliding_window":null)").sliding_window, 0);
  // A null num_key_value_heads is the heads, for every family (each config class's __post_init__).
  for (const char* type : {"qwen2", "qwen3", "mistral", "llama", "phi3"})
    EXPECT_EQ(read(type, R"(,"num_key_value_heads":null)").kv_heads, 32) << type;
  EXPECT_EQ(read("phi3", "").rms_norm_eps, 1e-5);
  EXPECT_EQ(read("llama", "").rms_norm_eps, 1e-6);
  EXPECT_EQ(read("qwen2", "").rms_norm_eps, 1e-6);
  EXPECT_EQ(read("llama", "").max_position, 2048);
  EXPECT_EQ(read("mistral", "").max_position, 131072);
  EXPECT_EQ(read("qwen2", "").max_position, 32768);
  EXPECT_EQ(read("qwen3", "").max_position, 32768);
  EXPECT_EQ(read("phi3", "").max_position, 4096);
  // llama3 scaling without its own original_max_position_embeddings: max_position_embeddings (Transformers 5)
  EXPECT_EQ(read("llama", R"(,"max_position_embeddings":16384,"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4})").rope_original_max_position, 16384);
  EXPECT_EQ(read("llama", R"(,"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4})").rope_original_max_position, 2048);
  // a top-level original_max_position_embeddings wins over the scaling's own, for every model type
  EXPECT_EQ(read("llama", R"(,"original_max_position_embeddings":4096,"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,)"
                          R"("original_max_position_embeddings":8192})").rope_original_max_position, 4096);
  EXPECT_EQ(read("qwen3", R"(,"original_max_position_embeddings":1024,"rope_scaling":{"rope_type":"yarn","factor":4,)"
                          R"("original_max_position_embeddings":8192})").rope_original_max_position, 1024);
  // phi3 longrope with neither factor nor max_position_embeddings: Phi3Config's 4096 over 4096, factor 1
  const ModelSpec p = read("phi3", R"(,"num_key_value_heads":32,"rope_scaling":{"type":"longrope",)"
                                   R"("short_factor":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],)"
                                   R"("long_factor":[2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2]})");
  EXPECT_EQ(p.rope_factor, 1.0);
  EXPECT_EQ(p.rope_attention_factor, 1.0);
}

// RoPE scaling survives hf_config_text (the config a checkpoint or an export of a config-made model
// carries): the same frequencies after the round trip; YaRN's default attention factor is 0.1 ln f + 1.
TEST(HfConfig, RopeScalingRoundTrips) {
  const std::string base = R"({"model_type":"qwen3","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,)"
                           R"("num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,"vocab_size":100,"max_position_embeddings":128,)";
  for (const char* scaling : {R"("rope_scaling":{"rope_type":"yarn","factor":4,"original_max_position_embeddings":32,"beta_fast":16})",
                              R"("rope_scaling":{"rope_type":"linear","factor":2.5})", R"("rope_scaling":{"rope_type":"dynamic","factor":2})"}) {
    SCOPED_TRACE(scaling);
    const ModelSpec m = model_from_hf_config_text(base + scaling + "}", "r.json");
    const ModelSpec back = model_from_hf_config_text(hf_config_text(m), "back.json");
    EXPECT_EQ(back.rope_type, m.rope_type);
    EXPECT_EQ(back.rope_factor, m.rope_factor);
    EXPECT_EQ(back.rope_attention_factor, m.rope_attention_factor);
    EXPECT_EQ(back.rope_original_max_position, m.rope_original_max_position);
    EXPECT_EQ(back.rope_beta_fast, m.rope_beta_fast);
    EXPECT_EQ(back.rope_beta_slow, m.rope_beta_slow);
  }
  const ModelSpec y = model_from_hf_config_text(base + R"("rope_scaling":{"rope_type":"yarn","factor":4,"original_max_position_embeddings":32}})", "y.json");
  EXPECT_DOUBLE_EQ(y.rope_attention_factor, 0.1 * std::log(4.0) + 1.0);
  EXPECT_EQ(y.rope_beta_fast, 32);
}

// Both "rope_parameters" (Transformers 5) and "rope_scaling" (added by hand): Transformers reads
// rope_scaling alone with the top-level rope_theta. ftdist reads it so where both say the same, and
// refuses, naming both, where they disagree; an empty rope_scaling is none.
TEST(HfConfig, RopeParametersBesideRopeScaling) {
  const std::string base = R"({"model_type":"qwen3","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,)"
                           R"("num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,"vocab_size":100,"max_position_embeddings":128,)";
  const ModelSpec same = model_from_hf_config_text(
      base + R"("rope_theta":500000,"rope_parameters":{"rope_type":"linear","factor":2,"rope_theta":500000},)"
             R"("rope_scaling":{"type":"linear","factor":2}})", "same.json");
  EXPECT_EQ(same.rope_type, "linear");
  EXPECT_EQ(same.rope_theta, 500000);
  const ModelSpec empty = model_from_hf_config_text(
      base + R"("rope_parameters":{"rope_type":"default","rope_theta":1000000},"rope_scaling":{}})", "empty.json");
  EXPECT_EQ(empty.rope_theta, 1000000);
  // A yarn scaling added beside rope_parameters: Transformers would drop rope_parameters' theta too.
  expect_bad_input([&] { model_from_hf_config_text(base + R"("rope_parameters":{"rope_type":"default","rope_theta":1000000},)"
                                                          R"("rope_scaling":{"rope_type":"yarn","factor":4,"original_max_position_embeddings":32}})", "q.json"); },
                   "q.json: \"rope_scaling\" (rope_type yarn, rope_theta 10000, factor 4, original_max_position_embeddings 32) "
                   "disagrees with \"rope_parameters\" (rope_type default, rope_theta 1e+06)");
  expect_bad_input([&] { model_from_hf_config_text(base + R"("rope_parameters":{"rope_type":"default","rope_theta":10000},)"
                                                          R"("rope_scaling":{"rope_type":"linear","factor":4}})", "l.json"); },
                   "l.json: \"rope_scaling\" (rope_type linear");
}

// LongRoPE as Phi-3-mini-128k writes it: the legacy "su" type (as Transformers 4 reads it; 5.24
// fails on it) and "yarn" (in a phi3 config, as Transformers reads it) read as longrope, the pre-training context from the top level (4096 when Phi3Config's default stands),
// factor = max_position / context, attention factor sqrt(1 + ln factor / ln context); every factor
// list one number per rotated pair; the config round-trips through hf_config_text.
TEST(HfConfig, LongRopeReadsAsTransformersPhi3ConfigDoes) {
  const std::string base = R"({"model_type":"phi3","hidden_size":64,"intermediate_size":96,"num_hidden_layers":2,)"
                           R"("num_attention_heads":4,"vocab_size":50,"max_position_embeddings":131072,)";
  const std::string factors = R"("short_factor":[1,1.5,2,2.5,3,3.5,4,4.5],"long_factor":[2,3,4,5,6,7,8,9])";
  for (const char* type : {"longrope", "su", "yarn"}) {
    SCOPED_TRACE(type);
    const ModelSpec m = model_from_hf_config_text(
        base + R"("original_max_position_embeddings":4096,"rope_scaling":{"type":")" + type + "\"," + factors + "}}", "p.json");
    EXPECT_EQ(m.rope_type, "longrope");
    EXPECT_EQ(m.rope_original_max_position, 4096);
    EXPECT_DOUBLE_EQ(m.rope_factor, 32.0);
    EXPECT_DOUBLE_EQ(m.rope_attention_factor, std::sqrt(1 + std::log(32.0) / std::log(4096.0)));
    EXPECT_EQ(m.rope_short_factor, (std::vector<double>{1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5}));
    EXPECT_EQ(m.rope_long_factor, (std::vector<double>{2, 3, 4, 5, 6, 7, 8, 9}));
    const ModelSpec back = model_from_hf_config_text(hf_config_text(m), "back.json");
    EXPECT_EQ(back.rope_type, "longrope");
    EXPECT_EQ(back.rope_original_max_position, m.rope_original_max_position);
    EXPECT_EQ(back.rope_factor, m.rope_factor);
    EXPECT_EQ(back.rope_attention_factor, m.rope_attention_factor);
    EXPECT_EQ(back.rope_short_factor, m.rope_short_factor);
    EXPECT_EQ(back.rope_long_factor, m.rope_long_factor);
  }
  // Phi3Config's top-level default (4096) wins over the scaling's own key; given values are kept.
  const ModelSpec own = model_from_hf_config_text(
      base + R"("rope_scaling":{"rope_type":"longrope","original_max_position_embeddings":1024,"factor":8,"attention_factor":1.25,)" +
          factors + "}}", "o.json");
  EXPECT_EQ(own.rope_original_max_position, 4096);
  EXPECT_EQ(own.rope_factor, 8);
  EXPECT_EQ(own.rope_attention_factor, 1.25);
  // Other model types: the scaling's own key, else max_position_embeddings.
  const std::string llama = R"({"model_type":"llama","hidden_size":64,"intermediate_size":96,"num_hidden_layers":2,)"
                            R"("num_attention_heads":4,"vocab_size":50,"max_position_embeddings":8192,)";
  const ModelSpec l = model_from_hf_config_text(
      llama + R"("rope_scaling":{"rope_type":"longrope","original_max_position_embeddings":2048,)" + factors + "}}", "l.json");
  EXPECT_EQ(l.rope_original_max_position, 2048);
  EXPECT_DOUBLE_EQ(l.rope_factor, 4.0);
  EXPECT_EQ(model_from_hf_config_text(llama + R"("rope_scaling":{"rope_type":"longrope",)" + factors + "}}", "l.json").rope_factor, 1.0);
  EXPECT_EQ(model_from_hf_config_text(llama + R"("rope_scaling":{"rope_type":"longrope",)" + factors + "}}", "l.json").rope_attention_factor, 1.0);

  const std::pair<std::string, std::string> bad[] = {
      {R"("short_factor":[1,1,1],"long_factor":[2,3,4,5,6,7,8,9])", "b.json: longrope's short_factor has 3 numbers; it needs one per pair"},
      {R"("short_factor":[1,1,1,1,1,1,1,1])", "b.json \"rope_scaling\": longrope needs \"long_factor\", a list of numbers"},
      {R"("short_factor":[1,1,1,1,1,1,1,"x"],"long_factor":[2,3,4,5,6,7,8,9])", "\"short_factor\"[7] must be a number, got \"x\""},
      {R"("short_factor":[1,1,1,1,1,1,1,1],"long_factor":[2,3,4,5,0,7,8,9])", "longrope's long_factor[4] must be a positive number, got 0"},
      {R"("short_factor":[1,1,1,1,1,1,1,1],"long_factor":[2,3,4,5,6,7,8,9],"attention_factor":-1)", "attention_factor must be a positive number"}};
  for (const auto& [scaling, needle] : bad) {
    SCOPED_TRACE(scaling);
    expect_bad_input([&] { model_from_hf_config_text(base + R"("rope_scaling":{"type":"longrope",)" + scaling + "}}", "b.json"); }, needle);
  }
  // partial_rotary_factor 0.5: 4 pairs rotate, so 4 factors each.
  EXPECT_EQ(model_from_hf_config_text(base + R"("partial_rotary_factor":0.5,"rope_scaling":{"type":"longrope",)"
                                             R"("short_factor":[1,1,1,1],"long_factor":[2,2,2,2]}})", "half.json").rotary_dim(), 8);
}

// Values no model can have are errors naming the key, not a NaN loss or a crash in RoPE.
TEST(HfConfig, ImpossibleValuesNameTheKey) {
  const std::string base = R"({"model_type":"llama","intermediate_size":128,"num_hidden_layers":2,"vocab_size":100)";
  auto bad = [&](const std::string& rest, const std::string& needle) {
    SCOPED_TRACE(rest);
    expect_bad_input([&] { model_from_hf_config_text(base + "," + rest + "}", "v.json"); }, needle);
  };
  bad(R"("hidden_size":60,"num_attention_heads":4)", "v.json: head_dim (15) must be even");
  bad(R"("hidden_size":64,"num_attention_heads":4,"head_dim":7)", "head_dim (7) must be even");
  bad(R"("hidden_size":64,"num_attention_heads":4,"rms_norm_eps":-1)", "rms_norm_eps must be a positive number");
  bad(R"("hidden_size":64,"num_attention_heads":4,"rms_norm_eps":0)", "rms_norm_eps must be a positive number");
  bad(R"("hidden_size":64,"num_attention_heads":4,"rope_theta":0)", "rope_theta must be a positive number");
  bad(R"("hidden_size":64,"num_attention_heads":4,"rope_theta":-5)", "rope_theta must be a positive number");
  bad(R"("hidden_size":64,"num_attention_heads":4,"max_position_embeddings":0)", "v.json: \"max_position_embeddings\" must be a positive");
  for (const char* window : {"0", "-4"})
    expect_bad_input([&] {
      model_from_hf_config_text(std::string(R"({"model_type":"mistral","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
          "vocab_size":100,"num_attention_heads":4,"num_key_value_heads":4,"sliding_window":)") + window + "}", "w.json");
    }, "w.json: \"sliding_window\" must be a positive number of tokens, or null for no window");
  for (const char* scaling : {R"({"rope_type":"llama3","factor":8,"low_freq_factor":0,"high_freq_factor":4})",
                              R"({"rope_type":"llama3","factor":8,"low_freq_factor":-1,"high_freq_factor":4})",
                              R"({"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":0})",
                              R"({"rope_type":"llama3","factor":0,"low_freq_factor":1,"high_freq_factor":4})",
                              R"({"rope_type":"llama3","factor":8,"low_freq_factor":4,"high_freq_factor":1})"})
    bad(std::string(R"("hidden_size":64,"num_attention_heads":4,"rope_scaling":)") + scaling, "rope scaling");
  expect_bad_input([&] {
    model_from_hf_config_text(R"({"model_type":"qwen2","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
        "vocab_size":100,"num_attention_heads":4,"num_key_value_heads":4,"use_sliding_window":true,"sliding_window":16,"max_window_layers":-1})", "q.json");
  }, "q.json: max_window_layers must be >= 0");
  const std::pair<const char*, const char*> scalings[] = {
      {R"({"rope_type":"linear"})", "rope_type \"linear\" needs \"factor\", a number"},
      // (Transformers' KeyError: no default that would change the frequencies)
      {R"({"rope_type":"llama3","factor":8})", "rope_type \"llama3\" needs \"low_freq_factor\", a number"},
      {R"({"rope_type":"llama3","low_freq_factor":1,"high_freq_factor":4})", "rope_type \"llama3\" needs \"factor\", a number"},
      {R"({"rope_type":"yarn","original_max_position_embeddings":16})", "rope_type \"yarn\" needs \"factor\", a number"},
      {R"({"rope_type":"linear","factor":2,"partial_rotary_factor":0.5})", "\"partial_rotary_factor\" 0.5 with linear RoPE scaling on a llama model"},
      {R"({"rope_type":"dynamic","factor":-2})", "rope scaling (dynamic) needs factor > 0"},
      {R"({"rope_type":"yarn","factor":0})", "rope scaling (yarn) needs factor > 0"},
      {R"({"rope_type":"yarn","factor":4,"attention_factor":-1})", "attention_factor must be a positive number"}};
  for (const auto& [scaling, needle] : scalings)
    bad(std::string(R"("hidden_size":64,"num_attention_heads":4,"max_position_embeddings":64,"rope_scaling":)") + scaling, needle);
  bad(R"("hidden_size":64,"num_attention_heads":4,"max_position_embeddings":0,"rope_scaling":{"rope_type":"dynamic","factor":2})", "\"max_position_embeddings\" must be a positive");  // (before dynamic scaling would need it)
  EXPECT_NO_THROW(model_from_hf_config_text(base + R"(,"hidden_size":64,"num_attention_heads":4,"rope_theta":500000})", "ok.json"));
}

}  // namespace
