#include "ftdist/train/run_config.h"

#include <cstdio>
#include <map>
#include <set>

#include "ftdist/core/check.h"
#include "ftdist/core/hash.h"
#include "ftdist/core/suggest.h"
#include "ftdist/core/text_file.h"
#include "ftdist/core/toml_util.h"
#include "ftdist/core/bytes.h"
#include "ftdist/comm/communicator.h"
#include "ftdist/plan/gpu_catalog.h"

namespace ftdist::train {
namespace {

const std::map<std::string, std::set<std::string>> kKeys = {
    {"model", {"path", "preset", "config"}},
    {"data", {"train", "eval", "tokenizer", "seq_len"}},
    {"train", {"steps", "micro_batch", "global_batch", "lr", "min_lr", "warmup_steps", "schedule", "weight_decay", "grad_clip", "seed",
               "eval_every", "log_every", "nonfinite", "peak_tflops"}},
    {"parallel", {"device", "shard", "shard_group", "precision", "reduce_dtype", "checkpointing", "prefetch", "no_sync", "auto",
                  "memory_limit", "gpu"}},
    {"checkpoint", {"dir", "every", "keep", "resume"}},
    {"output", {"dir", "metrics", "export", "export_dtype"}},
};

// "section.key=value": the value is read as TOML (numbers, booleans, quoted strings), else as a string.
void apply_override(toml::table& root, const std::string& text) {
  const auto eq = text.find('='), dot = text.find('.');
  FT_CHECK_ARG(eq != std::string::npos && dot != std::string::npos && dot < eq,
               "--set: expected section.key=value, got '" << text << "'");
  const std::string section = text.substr(0, dot), key = text.substr(dot + 1, eq - dot - 1), value = text.substr(eq + 1);
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value);
  } catch (const toml::parse_error&) {
    parsed = toml::parse("v = \"\"");
    parsed.insert_or_assign("v", value);
  }
  if (!root.contains(section)) root.insert(section, toml::table{});
  toml::table* t = root[section].as_table();
  FT_CHECK_ARG(t != nullptr, "--set " << text << ": [" << section << "] is not a table");
  t->insert_or_assign(key, *parsed.get("v"));
}

std::string get_str(const toml::table& t, const std::string& key, const std::string& fallback, const std::string& where) {
  return toml_get_or<std::string>(t, key, fallback, where);
}

int64_t get_int(const toml::table& t, const std::string& key, int64_t fallback, const std::string& where, int64_t min) {
  int64_t v = toml_get_or<int64_t>(t, key, fallback, where);
  FT_CHECK_ARG(v >= min, where << ": \"" << key << "\" must be >= " << min << ", got " << v);
  return v;
}

double get_num(const toml::table& t, const std::string& key, double fallback, const std::string& where) {
  return toml_get_or<double>(t, key, fallback, where);
}

}  // namespace

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  toml::table root = parse_toml_file(path, "--config");
  for (const auto& o : overrides) apply_override(root, o);
  // Unknown sections and keys are errors, with the closest names.
  for (const auto& [section, node] : root) {
    const std::string s(section.str());
    std::vector<std::string> names;
    for (const auto& [n, _] : kKeys) names.push_back(n);
    FT_CHECK_ARG(kKeys.count(s), path << ": unknown section [" << s << "]"
                                      << (closest_names(s, names).empty() ? "" : "; did you mean [" + closest_names(s, names)[0] + "]?"));
    const toml::table* t = node.as_table();
    FT_CHECK_ARG(t != nullptr, path << ": [" << s << "] must be a table");
    for (const auto& [key, _] : *t) {
      const std::string k(key.str());
      std::vector<std::string> keys(kKeys.at(s).begin(), kKeys.at(s).end());
      auto close = closest_names(k, keys);
      FT_CHECK_ARG(kKeys.at(s).count(k), path << ": unknown key " << s << "." << k
                                              << (close.empty() ? "" : "; did you mean " + s + "." + close[0] + "?"));
    }
  }
  auto section = [&](const char* name) -> const toml::table& {
    static const toml::table empty;
    const toml::table* t = root[name].as_table();
    return t ? *t : empty;
  };
  RunConfig c;
  c.origin = path;
  const std::string m = path + " [model]", d = path + " [data]", tr = path + " [train]", p = path + " [parallel]",
                    o = path + " [output]";
  c.model_path = get_str(section("model"), "path", "", m);
  c.model_preset = get_str(section("model"), "preset", "", m);
  c.model_config = get_str(section("model"), "config", "", m);
  FT_CHECK_ARG(int(!c.model_path.empty()) + int(!c.model_preset.empty()) + int(!c.model_config.empty()) == 1,
               m << ": give exactly one of path (a Hugging Face directory), preset or config");
  c.train_data = get_str(section("data"), "train", "", d);
  FT_CHECK_ARG(!c.train_data.empty(), d << ": \"train\" (a JSONL file) is required");
  c.eval_data = get_str(section("data"), "eval", "", d);
  c.tokenizer = get_str(section("data"), "tokenizer", "", d);
  c.seq_len = get_int(section("data"), "seq_len", c.seq_len, d, 2);
  const toml::table& t = section("train");
  c.steps = get_int(t, "steps", c.steps, tr, 1);
  c.micro_batch = get_int(t, "micro_batch", c.micro_batch, tr, 1);
  c.global_batch = get_int(t, "global_batch", c.global_batch, tr, 0);
  c.lr = get_num(t, "lr", c.lr, tr);
  c.min_lr = get_num(t, "min_lr", c.min_lr, tr);
  c.warmup_steps = get_int(t, "warmup_steps", c.warmup_steps, tr, 0);
  c.schedule = optim::schedule_kind_from_name(get_str(t, "schedule", "cosine", tr));
  c.weight_decay = get_num(t, "weight_decay", c.weight_decay, tr);
  FT_CHECK_ARG(c.weight_decay >= 0, tr << ": \"weight_decay\" must be >= 0");
  c.grad_clip = get_num(t, "grad_clip", c.grad_clip, tr);
  FT_CHECK_ARG(c.grad_clip >= 0, tr << ": \"grad_clip\" must be >= 0 (0 disables clipping)");
  c.seed = uint64_t(get_int(t, "seed", 0, tr, 0));
  c.eval_every = get_int(t, "eval_every", c.eval_every, tr, 0);
  c.log_every = get_int(t, "log_every", c.log_every, tr, 1);
  const std::string nonfinite = get_str(t, "nonfinite", "skip", tr);
  FT_CHECK_ARG(nonfinite == "skip" || nonfinite == "abort",
               tr << ": \"nonfinite\" must be skip (skip the step and report it) or abort, got \"" << nonfinite << "\"");
  c.abort_on_nonfinite = nonfinite == "abort";
  c.peak_tflops = get_num(t, "peak_tflops", c.peak_tflops, tr);
  FT_CHECK_ARG(c.peak_tflops >= 0, tr << ": \"peak_tflops\" must be >= 0 (0: unknown)");
  const toml::table& par = section("parallel");
  c.shard = plan::stage_from_name(get_str(par, "shard", "full", p));
  c.shard_group = get_int(par, "shard_group", c.shard_group, p, 0);
  FT_CHECK_ARG(c.shard_group == 0 || c.shard == plan::Stage::Hybrid,
               p << ": \"shard_group\" (" << c.shard_group << ") applies to shard = \"hybrid\" only; shard is \""
                 << plan::stage_name(c.shard) << "\"");
  c.precision = plan::precision_from_name(get_str(par, "precision", "fp32", p));
  c.reduce_dtype = plan::float_type_from_name(get_str(par, "reduce_dtype", "fp32", p), p + " reduce_dtype");
  c.checkpointing = plan::checkpointing_from_name(get_str(par, "checkpointing", "none", p));
  c.prefetch = get_int(par, "prefetch", c.prefetch, p, 1);
  FT_CHECK_ARG(c.prefetch <= 8, p << ": \"prefetch\" must be 1..8 units in flight, got " << c.prefetch);
  c.no_sync = toml_get_or<bool>(par, "no_sync", false, p);
  c.auto_parallel = toml_get_or<bool>(par, "auto", false, p);
  if (const toml::node* limit = par.get("memory_limit")) {
    if (auto bytes = limit->value<int64_t>()) {
      FT_CHECK_ARG(*bytes >= 0, p << ": \"memory_limit\" must be >= 0 bytes, got " << *bytes);
      c.memory_limit = uint64_t(*bytes);
    } else if (auto text = limit->value<std::string>()) {
      c.memory_limit = parse_bytes(*text, p + " memory_limit");
    } else {
      FT_CHECK_ARG(false, p << ": \"memory_limit\" must be bytes, as a number or a string such as \"24GiB\"");
    }
  }
  c.device = get_str(par, "device", "auto", p);
  FT_CHECK_ARG(c.device == "auto" || c.device == "cpu" || c.device == "cuda",
               p << ": \"device\" must be \"auto\", \"cpu\" or \"cuda\", got \"" << c.device << "\"");
  c.gpu = get_str(par, "gpu", "", p);
  if (!c.gpu.empty()) {
    const plan::GpuSpec& g = plan::GpuCatalog::load_default().find(c.gpu);  // unknown names: error with suggestions
    c.gpu = g.name;
    if (c.peak_tflops == 0) c.peak_tflops = g.bf16_tflops;  // the mfu metric's peak
  }
  const std::string ck = path + " [checkpoint]";
  c.checkpoint_dir = get_str(section("checkpoint"), "dir", "", ck);
  c.checkpoint_every = get_int(section("checkpoint"), "every", c.checkpoint_every, ck, 0);
  c.checkpoint_keep = get_int(section("checkpoint"), "keep", c.checkpoint_keep, ck, 0);
  c.resume = toml_get_or<bool>(section("checkpoint"), "resume", false, ck);
  c.output_dir = get_str(section("output"), "dir", c.output_dir, o);
  c.metrics = get_str(section("output"), "metrics", c.metrics, o);
  c.export_hf = toml_get_or<bool>(section("output"), "export", false, o);
  c.export_dtype = get_str(section("output"), "export_dtype", c.export_dtype, o);
  FT_CHECK_ARG(c.export_dtype == "bf16" || c.export_dtype == "fp32",
               o << ": \"export_dtype\" must be bf16 or fp32, got \"" << c.export_dtype << "\"");
  optim::LrSchedule{c.schedule, c.lr, c.warmup_steps, c.steps, c.min_lr}.validate();
  return c;
}

std::string resolved_device(const RunConfig& c) {
  if (c.device != "auto") return c.device;
  return comm::cuda_device_present() ? "cuda" : "cpu";
}

plan::Attention runtime_attention(const RunConfig& c) {
  return resolved_device(c) == "cuda" ? plan::Attention::Flash : plan::Attention::Eager;
}

fsdp::FsdpConfig fsdp_config(const RunConfig& c) {
  fsdp::FsdpConfig fc;
  fc.device = resolved_device(c) == "cuda" ? at::Device(at::kCUDA) : at::Device(at::kCPU);  // index: the communicator's
  fc.stage = c.shard;
  fc.precision = c.precision;
  fc.reduce_dtype = c.reduce_dtype;
  fc.checkpointing = c.checkpointing;
  fc.prefetch = int(c.prefetch);
  fc.shard_group = int(c.shard_group);
  fc.no_sync = c.no_sync;
  fc.adamw.weight_decay = c.weight_decay;
  fc.max_grad_norm = c.grad_clip;
  fc.skip_nonfinite = !c.abort_on_nonfinite;
  return fc;
}

nlohmann::ordered_json run_config_json(const RunConfig& c) {
  nlohmann::ordered_json j;
  j["model"] = {{"path", c.model_path}, {"preset", c.model_preset}, {"config", c.model_config}};
  j["data"] = {{"train", c.train_data}, {"eval", c.eval_data}, {"tokenizer", c.tokenizer}, {"seq_len", c.seq_len}};
  j["train"] = {{"steps", c.steps}, {"micro_batch", c.micro_batch}, {"global_batch", c.global_batch}, {"lr", c.lr},
                {"min_lr", c.min_lr}, {"warmup_steps", c.warmup_steps}, {"schedule", optim::schedule_kind_name(c.schedule)},
                {"weight_decay", c.weight_decay}, {"grad_clip", c.grad_clip}, {"seed", c.seed},
                {"eval_every", c.eval_every}, {"log_every", c.log_every},
                {"nonfinite", c.abort_on_nonfinite ? "abort" : "skip"}, {"peak_tflops", c.peak_tflops}};
  j["parallel"] = {{"device", c.device}, {"shard", plan::stage_name(c.shard)}, {"precision", plan::precision_name(c.precision)},
                   {"reduce_dtype", plan::float_type_name(c.reduce_dtype)},
                   {"checkpointing", plan::checkpointing_name(c.checkpointing)}, {"prefetch", c.prefetch},
                   {"shard_group", c.shard_group}, {"no_sync", c.no_sync}, {"auto", c.auto_parallel},
                   {"memory_limit", c.memory_limit}, {"gpu", c.gpu}};
  j["checkpoint"] = {{"dir", c.checkpoint_root()}, {"every", c.checkpoint_every}, {"keep", c.checkpoint_keep},
                     {"resume", c.resume}};
  j["output"] = {{"dir", c.output_dir}, {"metrics", c.metrics}, {"export", c.export_hf}, {"export_dtype", c.export_dtype}};
  return j;
}

std::string trajectory_hash(const RunConfig& c) {
  nlohmann::ordered_json j = run_config_json(c);
  nlohmann::ordered_json t = j["train"];
  t.erase("steps");  // a resumed run may go on for longer
  t.erase("eval_every");
  t.erase("log_every");
  t.erase("peak_tflops");
  const std::string text = nlohmann::ordered_json{{"model", j["model"]}, {"data", j["data"]}, {"train", t}}.dump();
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(fnv1a64(text)));
  return buf;
}

std::vector<std::string> changed_keys(const nlohmann::ordered_json& before, const nlohmann::ordered_json& now) {
  std::vector<std::string> out;
  for (auto s = now.begin(); s != now.end(); ++s)
    for (auto k = s->begin(); k != s->end(); ++k)
      if (!before.contains(s.key()) || !before[s.key()].contains(k.key()) || before[s.key()][k.key()] != k.value())
        out.push_back(s.key() + "." + k.key());
  return out;
}

}  // namespace ftdist::train
