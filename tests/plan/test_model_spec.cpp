// Parameter counts: presets and real config.json files must give the sum of the HF checkpoint's
// tensor sizes exactly (the expected numbers are the published counts, which Transformers
// reproduces on the same configs: tests/plan/check_param_counts.py runs that oracle).
#include <gtest/gtest.h>

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
      {"llama-2-7b", 6738415616}, {"llama-3-8b", 8030261248},  {"mistral-7b", 7241732096},
      {"qwen2.5-0.5b", 494032768}, {"qwen2.5-7b", 7615616512}, {"phi-3-mini", 3821079552},
      {"tinyllama-1.1b", 1100048384},
  };
  for (const auto& [name, count] : expected) {
    ModelSpec m = model_from_hf_config(kConfigs + name + ".json");
    EXPECT_EQ(m.param_count(), count) << name;
    EXPECT_EQ(m.param_count(), preset_model(name).param_count()) << name;
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
  // A directory is read for its config.json.
  EXPECT_EQ(model_from_hf_config(FTDIST_TEST_DATA "/hf_model_dir").param_count(), 6738415616);
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

}  // namespace
