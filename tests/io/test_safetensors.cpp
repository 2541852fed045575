// safetensors: round trips, sub-range reads, and malformed files — each a clear error.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "expect_error.h"
#include "ftdist/core/text_file.h"
#include "ftdist/io/hf_checkpoint.h"
#include "ftdist/io/hf_export.h"
#include "ftdist/io/safetensors.h"
#include "../model/tiny_model.h"

using namespace ftdist;
using namespace ftdist::io;

namespace {

std::string tmp(const std::string& name) { return std::string(FTDIST_TEST_TMP) + "/" + name; }

// Writes a raw safetensors file: 8-byte length, header text, data bytes.
void write_raw(const std::string& path, const std::string& header, size_t data_bytes, uint64_t declared_len = 0) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  uint64_t n = declared_len ? declared_len : header.size();
  for (int i = 0; i < 8; ++i) f.put(char((n >> (8 * i)) & 0xff));
  f << header << std::string(data_bytes, '\0');
}

TEST(Safetensors, RoundTripDtypesAndMetadata) {
  at::manual_seed(0);
  std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"a.f32", at::randn({3, 5})},
      {"b.bf16", at::randn({7}).to(at::kBFloat16)},
      {"c.f16", at::randn({2, 2, 2}).to(at::kHalf)},
      {"d.i64", at::arange(6, at::kLong)},
      {"e.empty", at::empty({0, 4})},
  };
  save_safetensors(tmp("rt.safetensors"), tensors, {{"format", "pt"}, {"note", "hello"}});
  EXPECT_FALSE(file_exists(tmp("rt.safetensors.tmp")));
  SafetensorsFile f(tmp("rt.safetensors"));
  ASSERT_EQ(f.tensors().size(), tensors.size());
  EXPECT_EQ(f.metadata().at("note"), "hello");
  for (const auto& [name, t] : tensors) {
    at::Tensor back = f.read(name);
    EXPECT_EQ(back.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(back.sizes(), t.sizes()) << name;
    EXPECT_TRUE(at::equal(back, t)) << name;
  }
}

TEST(Safetensors, SubRangeReadsConvertAndTouchOnlyTheRange) {
  at::Tensor w = at::arange(100, at::kFloat).to(at::kBFloat16).view({10, 10});
  save_safetensors(tmp("sub.safetensors"), {{"w", w}});
  SafetensorsFile f(tmp("sub.safetensors"));
  at::Tensor out = at::zeros({17}, at::kDouble);
  f.read_range("w", 42, 17, out);
  EXPECT_TRUE(at::equal(out, at::arange(42, 59, at::kDouble)));
  expect_bad_input([&] { f.read_range("w", 95, 10, at::empty({10})); }, "outside tensor \"w\"");
  expect_bad_input([&] { f.read("nope"); }, "no tensor named \"nope\"");
}

TEST(Safetensors, WriterEnforcesOrderAndLeavesNothingHalfWritten) {
  {
    SafetensorsWriter w(tmp("w.safetensors"), {{"x", at::kFloat, {2}}, {"y", at::kFloat, {3}}});
    expect_bad_input([&] { w.write("y", at::zeros({3})); }, "declaration order");
    w.write("x", at::zeros({2}));
    expect_bad_input([&] { w.finish(); }, "1 declared tensors were not written");
  }  // destroyed without finishing
  EXPECT_FALSE(file_exists(tmp("w.safetensors")));
  EXPECT_FALSE(file_exists(tmp("w.safetensors.tmp")));
  SafetensorsWriter w(tmp("w2.safetensors"), {{"x", at::kBFloat16, {2}}});
  expect_bad_input([&] { w.write("x", at::zeros({3})); }, "has 3 elements, declared 2");
}

struct Bad {
  const char* name;
  std::string header;
  size_t data;
  uint64_t declared_len;
  const char* needle;
};

TEST(Safetensors, MalformedFilesAreClearErrors) {
  const std::string ok_entry = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const Bad cases[] = {
      {"too_short", "", 0, 0, "truncated safetensors file"},
      {"huge_header", "{}", 0, 1ull << 40, "header length"},
      {"header_past_end", "{" + ok_entry + "}", 8, 4096, "truncated: the header says 4096 bytes"},
      {"not_json", "{\"t\": nope", 0, 0, "not valid JSON"},
      {"not_object", "[1,2]", 0, 0, "must be a JSON object"},
      {"missing_fields", R"({"t":{"dtype":"F32"}})", 0, 0, "expected {\"dtype\", \"shape\", \"data_offsets\"}"},
      {"bad_dtype", R"({"t":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", 8, 0, "unsupported dtype \"Q4\""},
      {"size_mismatch", R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8, 0, "holds 12 bytes but data_offsets span 8"},
      {"past_data", "{" + ok_entry + "}", 4, 0, "is past the data"},
      {"overlap", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12, 0, "overlaps"},
      {"hole", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8, 0, "a hole in the data"},
      {"trailing", "{" + ok_entry + "}", 12, 0, "trailing bytes"},
      {"negative_shape", R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, 0, "non-negative integers"},
      // 4 x (2^62 + 2) wraps to 8 in 64 bits; 2^31 x 2^31 x 4 x 2 x 4 wraps to 0
      {"wrapping_shape", R"({"t":{"dtype":"F32","shape":[4611686018427387906],"data_offsets":[0,8]}})", 8, 0,
       "holds 2^64 bytes or more"},
      {"wrapping_4d", R"({"t":{"dtype":"F32","shape":[2147483648,2147483648,4,2],"data_offsets":[0,8]}})", 8, 0,
       "holds 2^64 bytes or more"},
      {"huge_dim", R"({"t":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,8]}})", 8, 0, "below 2^63"},
      {"empty_tensor", R"({"t":{"dtype":"F32","shape":[0,4611686018427387906],"data_offsets":[0,8]}})", 8, 0,
       "holds 0 bytes but data_offsets span 8"},
      {"bad_metadata", R"({"__metadata__":{"k":1}})", 0, 0, "__metadata__[\"k\"] must be a string"},
  };
  for (const Bad& b : cases) {
    const std::string path = tmp(std::string("bad_") + b.name + ".safetensors");
    if (std::string(b.name) == "too_short") {
      std::ofstream(path, std::ios::binary | std::ios::trunc) << "abc";
    } else {
      write_raw(path, b.header, b.data, b.declared_len);
    }
    SCOPED_TRACE(b.name);
    expect_bad_input([&] { SafetensorsFile f(path); }, b.needle);
  }
  expect_bad_input([&] { SafetensorsFile f(tmp("does-not-exist.safetensors")); }, "cannot open");
}

TEST(HfCheckpoint, ShardedDirectoryWithIndexAndUnitShards) {
  plan::ModelSpec spec = tiny_spec("qwen2", true);
  model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat));
  randomize(m, 3);
  // Two files, split by an index, as large checkpoints are.
  const std::string dir = tmp("hf_sharded");
  if (!is_directory(dir)) {
    ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  }
  std::vector<std::pair<std::string, at::Tensor>> first, second;
  nlohmann::json map;
  for (size_t u = 0; u < m.units().size(); ++u)
    for (size_t i = 0; i < m.units()[u].specs.size(); ++i) {
      const std::string& name = m.units()[u].specs[i].name;
      bool in_first = u % 2 == 0;
      (in_first ? first : second).push_back({name, m.units()[u].params[i].to(at::kBFloat16)});
      map[name] = in_first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    }
  save_safetensors(dir + "/model-00001-of-00002.safetensors", first);
  save_safetensors(dir + "/model-00002-of-00002.safetensors", second);
  write_text_file_atomic(dir + "/model.safetensors.index.json", nlohmann::json{{"weight_map", map}}.dump(), "test");
  write_text_file_atomic(dir + "/config.json",
                         R"({"model_type":"qwen2","hidden_size":16,"intermediate_size":24,"num_hidden_layers":2,
                             "num_attention_heads":4,"num_key_value_heads":2,"vocab_size":37,"tie_word_embeddings":true})",
                         "test");
  HfCheckpoint ckpt(dir);
  EXPECT_EQ(ckpt.stored_dtype(), at::kBFloat16);
  EXPECT_EQ(ckpt.spec().param_count(), spec.param_count());
  // Shards of 3 ranks reassemble to the whole unit (bf16 values, read as fp32), padding zero.
  const std::vector<plan::ModelSpec::Unit> units = ckpt.spec().units();
  for (size_t u = 0; u < m.units().size(); ++u) {
    const auto& unit = units[u];
    const int64_t n = unit.numel(), ranks = 3, shard = (n + ranks - 1) / ranks;
    at::Tensor whole = at::empty({shard * ranks});
    for (int64_t r = 0; r < ranks; ++r) load_unit_shard(ckpt, unit, r * shard, whole.narrow(0, r * shard, shard));
    EXPECT_TRUE(at::equal(whole.narrow(0, 0, n), m.units()[u].flat.to(at::kBFloat16).to(at::kFloat))) << unit.name;
    EXPECT_EQ(whole.narrow(0, n, shard * ranks - n).abs().sum().item<float>(), 0.0f);
  }
}

TEST(HfCheckpoint, ShapeMismatchAndMissingTensorNameTheTensor) {
  const std::string dir = tmp("hf_bad");
  if (!is_directory(dir)) {
    ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  }
  write_text_file_atomic(dir + "/config.json",
                         R"({"model_type":"llama","hidden_size":16,"intermediate_size":24,"num_hidden_layers":1,
                             "num_attention_heads":4,"vocab_size":37})", "test");
  save_safetensors(dir + "/model.safetensors", {{"model.embed_tokens.weight", at::zeros({36, 16})}});
  HfCheckpoint ckpt(dir);
  const auto units = ckpt.spec().units();
  expect_bad_input([&] { load_unit_shard(ckpt, units[0], 0, at::empty({units[0].numel()})); },
                   "\"model.embed_tokens.weight\" has shape [36, 16] in the checkpoint, config.json says [37, 16]");
  expect_bad_input([&] { load_unit_shard(ckpt, units[1], 0, at::empty({units[1].numel()})); },
                   "has no tensor \"model.layers.0.self_attn.q_proj.weight\"");
  expect_bad_input([&] { HfCheckpoint c(tmp("no-such-dir")); }, "is not a directory");
}

// The directories Transformers loads as well: model.safetensors beside an index (the single file
// wins), a base model's checkpoint without the "model." prefix, a tied model whose file holds only
// lm_head.weight; and config.json's dtype is eval's "auto" compute dtype, as in Transformers.
TEST(HfCheckpoint, ReadsTheDirectoriesTransformersLoads) {
  const plan::ModelSpec spec = tiny_spec("llama", true);
  model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat));
  randomize(m, 5);
  auto tensors = [&](const std::function<std::string(const std::string&)>& rename, double scale) {
    std::vector<std::pair<std::string, at::Tensor>> named;
    for (const auto& unit : m.units())
      for (size_t i = 0; i < unit.specs.size(); ++i)
        if (!rename(unit.specs[i].name).empty()) named.push_back({rename(unit.specs[i].name), unit.params[i].to(at::kBFloat16) * scale});
    return named;
  };
  auto same = [](const std::string& n) { return n; };
  auto loads = [&](const std::string& dir, double scale) {  // every unit as the model's, times scale
    HfCheckpoint ckpt(dir);
    const auto units = ckpt.spec().units();
    for (size_t u = 0; u < units.size(); ++u) {
      at::Tensor whole = at::empty({units[u].numel()});
      load_unit_shard(ckpt, units[u], 0, whole);
      EXPECT_TRUE(at::equal(whole, (m.units()[u].flat.to(at::kBFloat16) * scale).to(at::kFloat))) << dir << " " << units[u].name;
    }
  };
  // Both forms: Transformers reads model.safetensors and so does ftdist.
  const std::string both = tmp("hf_both_forms");
  save_hf_model(both, plan::hf_config_text(spec), tensors(same, 1.0));
  save_safetensors(both + "/model-00001-of-00001.safetensors", tensors(same, 2.0));
  nlohmann::json map;
  for (const auto& [name, t] : tensors(same, 2.0)) map[name] = "model-00001-of-00001.safetensors";
  write_text_file_atomic(both + "/model.safetensors.index.json", nlohmann::json{{"weight_map", map}}.dump(), "test");
  loads(both, 1.0);
  std::remove((both + "/model.safetensors").c_str());
  loads(both, 2.0);
  // A base model (LlamaModel.save_pretrained): no prefix, no head (tied).
  const std::string base = tmp("hf_base_model");
  save_hf_model(base, plan::hf_config_text(spec), tensors([](const std::string& n) { return n.substr(std::string("model.").size()); }, 1.0));
  loads(base, 1.0);
  // Tied, with the head alone in the file.
  const std::string head = tmp("hf_head_only");
  save_hf_model(head, plan::hf_config_text(spec),
                tensors([](const std::string& n) { return n == "model.embed_tokens.weight" ? std::string("lm_head.weight") : n; }, 1.0));
  loads(head, 1.0);
  // Untied without a head: the error says why there may be none.
  plan::ModelSpec untied = spec;
  untied.tie_embeddings = false;
  const std::string headless = tmp("hf_headless");
  save_hf_model(headless, plan::hf_config_text(untied), tensors(same, 1.0));
  HfCheckpoint c(headless);
  expect_bad_input([&] { c.info("lm_head.weight"); }, "has no tensor \"lm_head.weight\" (config.json does not tie the embeddings: tie_word_embeddings is false or absent");
  // dtype: config.json's (hf_config_text writes torch_dtype float32), else most weights' (bf16).
  EXPECT_EQ(c.stored_dtype(), at::kFloat);
  nlohmann::json config = nlohmann::json::parse(plan::hf_config_text(spec));
  config.erase("torch_dtype");
  write_text_file_atomic(base + "/config.json", config.dump(), "test");
  EXPECT_EQ(HfCheckpoint(base).stored_dtype(), at::kBFloat16);
  config["dtype"] = "float16";
  write_text_file_atomic(base + "/config.json", config.dump(), "test");
  EXPECT_EQ(HfCheckpoint(base).stored_dtype(), at::kHalf);
  // What the config does not use is named (and warned of); a tied head's copy and RoPE buffers are not.
  EXPECT_TRUE(HfCheckpoint(both).unused_tensors().empty());
  EXPECT_TRUE(HfCheckpoint(head).unused_tensors().empty());
  plan::ModelSpec shallower = spec;
  shallower.layers = spec.layers - 1;
  const std::string extra = tmp("hf_extra_layer");
  auto extra_tensors = tensors(same, 1.0);
  extra_tensors.push_back({"model.rotary_emb.inv_freq", at::ones({4})});
  save_hf_model(extra, plan::hf_config_text(shallower), extra_tensors);
  const std::vector<std::string> unused = HfCheckpoint(extra).unused_tensors();
  const std::string last = "model.layers." + std::to_string(spec.layers - 1) + ".";
  ASSERT_FALSE(unused.empty());
  for (const std::string& name : unused) EXPECT_EQ(name.rfind(last, 0), 0u) << name;
  EXPECT_EQ(unused.size(), m.units()[size_t(spec.layers)].specs.size());  // (unit 0 is the embeddings)

  // Quantized checkpoints: integer codes are not weights; a quantization_config is refused up front.
  const std::string coded = tmp("hf_int8_codes");
  auto codes = tensors(same, 1.0);
  for (auto& [name, t] : codes)
    if (name.find("q_proj") != std::string::npos) t = (t * 100).to(at::kChar);
  save_hf_model(coded, plan::hf_config_text(spec), codes);
  HfCheckpoint c8(coded);
  const auto units = c8.spec().units();
  expect_bad_input([&] { for (const auto& u : units) { at::Tensor w = at::empty({u.numel()}); load_unit_shard(c8, u, 0, w); } },
                   "q_proj.weight\" is stored as I8; a weight must be F32, BF16 or F16");
  nlohmann::json quantized = nlohmann::json::parse(plan::hf_config_text(spec));
  quantized["quantization_config"] = {{"quant_method", "bitsandbytes"}, {"load_in_8bit", true}};
  write_text_file_atomic(coded + "/config.json", quantized.dump(), "test");
  expect_bad_input([&] { HfCheckpoint q(coded); }, "config.json: the checkpoint is quantized (quantization_config, quant_method \"bitsandbytes\")");
}

// Phi-3 keeps q/k/v and gate/up fused in its files: written here by hand (torch.cat of the parts,
// as Transformers' Phi3 splits them), loaded in shards into ftdist's separate tensors, exported with
// the fused names and shapes again.
TEST(HfCheckpoint, Phi3FusedTensorsSplitOnLoadAndFuseOnExport) {
  const plan::ModelSpec spec = tiny_spec("phi3");
  model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat));
  randomize(m, 11);
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (int64_t l = 0; l < spec.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto w = [&](const std::string& n) { return m.param(p + n); };
    named.push_back({p + "self_attn.qkv_proj.weight",
                     at::cat({w("self_attn.q_proj.weight"), w("self_attn.k_proj.weight"), w("self_attn.v_proj.weight")})});
    named.push_back({p + "mlp.gate_up_proj.weight", at::cat({w("mlp.gate_proj.weight"), w("mlp.up_proj.weight")})});
    for (const char* n : {"self_attn.o_proj.weight", "mlp.down_proj.weight", "input_layernorm.weight",
                          "post_attention_layernorm.weight"})
      named.push_back({p + n, w(n)});
  }
  for (const char* n : {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}) named.push_back({n, m.param(n)});
  const std::string dir = tmp("hf_phi3"), out = tmp("hf_phi3_export");
  save_hf_model(dir, plan::hf_config_text(spec), named);
  HfCheckpoint ckpt(dir);
  ASSERT_EQ(ckpt.spec().model_type, "phi3");
  const std::vector<plan::ModelSpec::Unit> units = ckpt.spec().units();
  ASSERT_EQ(units.size(), m.units().size());
  for (size_t u = 0; u < units.size(); ++u) {  // 3 ranks' ranges cut through the fused tensors
    const int64_t n = units[u].numel(), ranks = 3, shard = (n + ranks - 1) / ranks;
    at::Tensor whole = at::empty({shard * ranks});
    for (int64_t r = 0; r < ranks; ++r) load_unit_shard(ckpt, units[u], r * shard, whole.narrow(0, r * shard, shard));
    EXPECT_TRUE(at::equal(whole.narrow(0, 0, n), m.units()[u].flat)) << units[u].name;
  }
  if (is_directory(out)) remove_export(out, "test");
  HfExporter ex(out, spec, plan::hf_config_text(spec), {at::kFloat, 5'000'000'000ull});
  for (const auto& unit : m.units()) ex.add_unit(unit.flat);
  ex.finish();
  SafetensorsFile exported(out + "/" + hf_shard_file_name(0, 1));
  EXPECT_EQ(exported.tensors().size(), named.size());
  for (const auto& [name, t] : named) EXPECT_TRUE(at::equal(exported.read(name), t)) << name;
  expect_bad_input([&] { exported.info("model.layers.0.self_attn.q_proj.weight"); }, "q_proj");
}

// add_piece(): a model handed over in small pieces (cutting through tensors and files) writes the
// same bytes as whole units; a piece that runs past its unit, or a partial export, is refused.
TEST(HfExport, PiecesWriteTheSameFilesAsWholeUnits) {
  const plan::ModelSpec spec = tiny_spec();
  model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat));
  randomize(m, 5);
  const ExportOptions several_files{at::kBFloat16, 4096};  // a few tensors per file
  auto export_to = [&](const std::string& out, int64_t piece) {
    if (is_directory(out)) remove_export(out, "test");
    HfExporter ex(out, spec, plan::hf_config_text(spec), several_files);
    for (size_t u = 0; u < m.units().size(); ++u) {
      const at::Tensor& flat = m.units()[u].flat;  // (padded: only the unit's own elements go in pieces)
      if (piece == 0) {
        ex.add_unit(flat);
        continue;
      }
      const int64_t numel = spec.units()[u].numel();
      for (int64_t at = 0; at < numel; at += piece) ex.add_piece(flat.narrow(0, at, std::min(piece, numel - at)));
    }
    ex.finish();
    return ex.num_files();
  };
  const std::string whole = tmp("hf_whole_units"), pieces = tmp("hf_pieces");
  const int files = export_to(whole, 0);
  ASSERT_GT(files, 2);
  ASSERT_EQ(export_to(pieces, 7), files);
  for (int f = 0; f < files; ++f)
    EXPECT_EQ(read_text_file(whole + "/" + hf_shard_file_name(f, files), "test"),
              read_text_file(pieces + "/" + hf_shard_file_name(f, files), "test"))
        << hf_shard_file_name(f, files);
  const std::string bad = tmp("hf_pieces_bad");
  if (is_directory(bad)) remove_export(bad, "test");
  {
    HfExporter ex(bad, spec, plan::hf_config_text(spec), several_files);
    const at::Tensor first = m.units()[0].flat;
    ex.add_piece(first.narrow(0, 0, spec.units()[0].numel() - 1));
    EXPECT_THROW(ex.add_piece(first.narrow(0, 0, 2)), Error) << "a piece past its unit";
    EXPECT_THROW(ex.finish(), Error) << "a partial export";
  }
  EXPECT_FALSE(is_directory(bad)) << "a failed export left its directory";
  EXPECT_FALSE(is_directory(bad + ".tmp")) << "a failed export left its scratch directory";
}

// ExportOptions::replace (ftdist train's <output.dir>/hf): an export that fails midway leaves the
// previous export whole; one that completes takes its place and leaves no scratch directory.
TEST(HfExport, AReplacingExportKeepsThePreviousOneUntilItIsComplete) {
  const plan::ModelSpec spec = tiny_spec();
  model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat));
  const std::string out = tmp("hf_replace");
  if (is_directory(out)) remove_export(out, "test");
  ExportOptions replace{at::kFloat};
  replace.replace = true;
  auto export_with = [&](uint64_t seed, bool nan_in_last_unit) {
    randomize(m, seed);
    HfExporter ex(out, spec, plan::hf_config_text(spec), replace);
    for (size_t u = 0; u < m.units().size(); ++u) {
      at::Tensor flat = m.units()[u].flat.clone();
      if (nan_in_last_unit && u + 1 == m.units().size()) flat[0] = NAN;
      ex.add_unit(flat);
    }
    ex.finish();
  };
  const std::string file = out + "/" + hf_shard_file_name(0, 1), name = "model.layers.0.mlp.up_proj.weight";
  export_with(1, false);
  const at::Tensor first = SafetensorsFile(file).read(name);
  expect_bad_input([&] { export_with(2, true); }, "holds NaN or Inf weights");
  EXPECT_TRUE(at::equal(SafetensorsFile(file).read(name), first)) << "the failed export touched the previous one";
  EXPECT_FALSE(is_directory(out + ".tmp"));
  export_with(3, false);
  const at::Tensor third = SafetensorsFile(file).read(name);
  EXPECT_FALSE(at::equal(third, first));
  EXPECT_TRUE(at::equal(third, m.param(name)));
  EXPECT_FALSE(is_directory(out + ".tmp")) << "the previous export was not removed";
  // Without replace, an existing directory is refused.
  expect_bad_input([&] { HfExporter ex(out, spec, plan::hf_config_text(spec), ExportOptions{at::kFloat}); }, "already exists");
}

}  // namespace
