// The run config (TOML, torchtitan-style sections), validated up front: unknown sections or keys
// and bad values are errors naming the file and the key. `--set section.key=value` overrides any key.
//
// Every key is declared once, in the key table of run_config.cpp (section, key, type, allowed
// values, default, doc, how it is read and written): parsing, unknown-key suggestions, the resolved
// config's JSON, `ftdist train --help-config` and docs/run-config.md's key reference all come
// from it. The members below hold the values; their meaning is the table's doc.
//
//   RunConfig c = load_run_config("run.toml", {"train.steps=10"});
//   std::puts(run_config_reference().c_str());  // the Markdown key reference
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "ftdist/fsdp/fsdp_model.h"
#include "ftdist/optim/lr_schedule.h"
#include "ftdist/plan/run_setup.h"

namespace ftdist::train {

struct RunConfig {
  std::string origin;  // the file, for messages
  // [model]: exactly one of the three
  std::string model_path, model_preset, model_config;
  // [data]
  std::string train_data, eval_data, tokenizer;
  int64_t seq_len = 128;
  std::string packing = "auto";            // auto | documents | stream (auto: documents for masked data)
  std::string eval_packing = "auto";       // (no key) data.eval's: data.packing, "auto" decided by data.eval's own data (resolve_run)
  std::string long_examples = "truncate";  // truncate | drop (packing documents)
  std::string train_on = "assistant";      // assistant | all (chat messages in JSONL)
  // [train]
  int64_t steps = 100, micro_batch = 1, global_batch = 0;  // global_batch 0: micro_batch x ranks
  double lr = 1e-3, min_lr = 0.0, weight_decay = 0.01;
  plan::OptimizerKind optimizer = plan::OptimizerKind::AdamW;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adamw, adamw-8bit
  double momentum = 0.9;                          // sgd-momentum
  double grad_clip = 1.0;  // 0 disables clipping
  int64_t warmup_steps = 0;
  optim::LrSchedule::Kind schedule = optim::LrSchedule::Kind::Cosine;
  uint64_t seed = 0;
  int64_t eval_every = 0, log_every = 1;
  int64_t loss_chunk = -1;  // tokens per loss chunk; 0: none; -1 (auto): plan::default_loss_chunk(), set by resolve_run()
  bool abort_on_nonfinite = false;  // train.nonfinite = "abort"
  int64_t nonfinite_limit = 5;     // skip: non-finite steps in a row that stop the run; 0: no limit
  double peak_tflops = 0;           // 0: unknown
  // [parallel]. `device`, `shard_group` and `auto` are decided at launch by resolve_run()
  // (train/resolve.h); the runtime receives the resolved values.
  std::string device = "auto";  // auto | cpu | cuda
  plan::Stage shard = plan::Stage::Full;
  int64_t shard_group = 0;  // hybrid: ranks per shard group; 0: the ranks of one node
  // Unset: precision "auto", bf16-mixed on a GPU (the planner's default), fp32 on the CPU, decided
  // with the device by resolve_run() (resolved_precision()).
  std::optional<plan::Precision> precision;
  plan::FloatType reduce_dtype = plan::FloatType::Fp32;
  plan::FloatType grad_accum_dtype = plan::FloatType::Fp32;
  plan::ActivationCheckpointing activation_checkpointing = plan::ActivationCheckpointing::None;  // key: checkpointing
  int64_t prefetch = 2;
  bool no_sync = false;
  bool offload_optimizer = false;  // key: offload = "optimizer" (or "none")
  bool auto_parallel = false;  // key: auto
  uint64_t memory_limit = 0;   // bytes per rank; 0: the device's (see train/memory_fit.h)
  std::string gpu;
  // [checkpoint]
  std::string checkpoint_dir;  // "" = <output.dir>/checkpoints
  int64_t checkpoint_every = 0;
  int64_t checkpoint_keep = 2;  // 0 keeps all
  bool resume = false;
  // [output]
  std::string output_dir = "runs/ftdist", metrics = "metrics.jsonl";
  bool export_hf = false;  // key: export
  bool tensorboard = false;  // TensorBoard event files under <output.dir>/tb
  std::string export_dtype = "bf16";

  bool saves_checkpoints() const { return checkpoint_every > 0; }
  std::string checkpoint_root() const { return checkpoint_dir.empty() ? output_dir + "/checkpoints" : checkpoint_dir; }
};

// The resolved config as JSON (stored in checkpoints), and a hash of the keys that shape the
// training trajectory (model, data, optimizer, schedule, seed), to notice a changed resume.
nlohmann::ordered_json run_config_json(const RunConfig& config);
std::string trajectory_hash(const RunConfig& config);
// The [model], [data] and [train] keys that shape the trajectory whose values in `now` differ from a
// checkpoint's run_config_json() (a key newer than the checkpoint counts as its default there).
std::vector<std::string> trajectory_changes(const nlohmann::ordered_json& saved, const RunConfig& now);
// The [section] keys whose values differ between two run_config_json()s ("train.lr", ...).
std::vector<std::string> changed_keys(const nlohmann::ordered_json& before, const nlohmann::ordered_json& now);

// The runtime's configuration for a run: stage, precision, reduction, activation checkpointing, prefetch,
// weight decay, clipping and the non-finite policy.
fsdp::FsdpConfig fsdp_config(const RunConfig& config);
// "cpu" or "cuda": the one place parallel.device = "auto" is decided (a CUDA device present or
// not). resolve_run() stores the answer in the config, so on a resolved config it returns it as is.
std::string resolved_device(const RunConfig& config);
// parallel.precision = "auto" decided with the device: bf16-mixed on "cuda", fp32 on "cpu".
// resolve_run() stores it too.
plan::Precision resolved_precision(const RunConfig& config);
// The model's attention: eager on the CPU (what the memory model's CPU numbers describe; SDPA's CPU
// math backend keeps the probabilities too), flash (SDPA) on a GPU.
plan::Attention runtime_attention(const RunConfig& config);

// One key of the table, for the reference and its tests.
struct ConfigKeyDoc {
  std::string section, key, type, allowed, doc;
  std::string default_value;  // as TOML/JSON text ("128", "\"auto\""), or a phrase ("required")
};
std::vector<ConfigKeyDoc> run_config_key_docs();
// The key reference as Markdown: a table per section (`ftdist train --help-config`; the block of
// docs/run-config.md between its GENERATED markers is exactly this).
std::string run_config_reference();

// Reads `path`, applies `overrides` ("section.key=value"), validates. Error(BadInput) names the key.
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace ftdist::train
