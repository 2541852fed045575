// The run config (TOML, torchtitan-style sections), validated up front: unknown sections or keys
// and bad values are errors naming the key. `--set section.key=value` overrides any key.
//
//   [model]    path (HF directory) | preset | config (config.json; random init)
//   [data]     train, eval, tokenizer, seq_len
//   [train]    steps, micro_batch, global_batch, lr, min_lr, warmup_steps, schedule,
//              weight_decay, grad_clip, seed, eval_every, log_every, nonfinite, peak_tflops
//   [parallel] device, shard, shard_group, precision, reduce_dtype, checkpointing, prefetch, no_sync, auto,
//              memory_limit, gpu
//   [checkpoint] dir, every, keep, resume
//   [output]   dir, metrics, export, export_dtype
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ftdist/fsdp/fsdp_model.h"
#include "ftdist/optim/lr_schedule.h"
#include "ftdist/plan/run_setup.h"

namespace ftdist::train {

struct RunConfig {
  std::string origin;  // the file, for messages
  // [model]
  std::string model_path, model_preset, model_config;
  // [data]
  std::string train_data, eval_data;
  std::string tokenizer;  // SentencePiece tokenizer.model for text data ("" = byte-level)
  int64_t seq_len = 128;
  // [train]
  int64_t steps = 100, micro_batch = 1, global_batch = 0;  // 0: micro_batch x ranks
  double lr = 1e-3, min_lr = 0.0, weight_decay = 0.01;
  double grad_clip = 1.0;  // global gradient norm limit; 0 disables
  int64_t warmup_steps = 0;
  optim::LrSchedule::Kind schedule = optim::LrSchedule::Kind::Cosine;
  uint64_t seed = 0;
  int64_t eval_every = 0, log_every = 1;
  bool abort_on_nonfinite = false;  // train.nonfinite = "skip" (default) | "abort"
  double peak_tflops = 0;           // per rank, for the mfu metric (0: unknown, mfu is null)
  // [parallel]
  // "auto" (a GPU per rank when this machine has one, else the CPU), "cpu" or "cuda". On CUDA the
  // runtime's collectives use NCCL (the local backend for a plain single process).
  std::string device = "auto";
  plan::Stage shard = plan::Stage::Full;
  // hybrid: ranks per shard group (full sharding inside a group, gradient shards all-reduced across
  // the groups); 0: the ranks of one node. Must divide the world size.
  int64_t shard_group = 0;
  plan::Precision precision = plan::Precision::Fp32;
  plan::FloatType reduce_dtype = plan::FloatType::Fp32;
  plan::Checkpointing checkpointing = plan::Checkpointing::None;
  int64_t prefetch = 2;  // units gathered at once (the one computing + those gathered ahead)
  // Gradient accumulation: false reduce-scatters every micro-batch into the gradient shard; true
  // keeps each unit's unsharded gradient until the step's last micro-batch (fewer collectives, the
  // memory of a whole unsharded gradient per unit).
  bool no_sync = false;
  // true: the planner chooses shard, micro_batch and checkpointing for the launched world size and
  // the memory budget (see train/memory_fit.h)
  bool auto_parallel = false;
  // Bytes each rank must fit into (0: the device's memory; on CPU what the node has available,
  // MemAvailable / ranks on the node). The fail-fast probe and `auto` plan against it; on CPU the
  // counting allocator enforces it.
  uint64_t memory_limit = 0;
  std::string gpu;  // a catalog GPU (cluster/gpus.toml): train.peak_tflops defaults to its bf16 peak
  // [checkpoint]: saved every `every` steps, at the end and on a stop signal when every > 0.
  std::string checkpoint_dir;  // "" = <output.dir>/checkpoints
  int64_t checkpoint_every = 0;
  int64_t checkpoint_keep = 2;  // 0 keeps all
  bool resume = false;          // continue from <checkpoint.dir>/latest when there is one
  // [output]
  std::string output_dir = "runs/ftdist", metrics = "metrics.jsonl";
  bool export_hf = false;  // a Hugging Face directory <output.dir>/hf at the end
  std::string export_dtype = "bf16";

  bool checkpointing_on() const { return checkpoint_every > 0; }
  std::string checkpoint_root() const { return checkpoint_dir.empty() ? output_dir + "/checkpoints" : checkpoint_dir; }
};

// The resolved config as JSON (stored in checkpoints), and a hash of the keys that shape the
// training trajectory (model, data, optimizer, schedule, seed), to notice a changed resume.
nlohmann::ordered_json run_config_json(const RunConfig& config);
std::string trajectory_hash(const RunConfig& config);
// The [section] keys whose values differ between two run_config_json()s ("train.lr", ...).
std::vector<std::string> changed_keys(const nlohmann::ordered_json& before, const nlohmann::ordered_json& now);

// The runtime's configuration for a run: stage, precision, reduction, checkpointing, prefetch,
// weight decay, clipping and the non-finite policy.
fsdp::FsdpConfig fsdp_config(const RunConfig& config);
// "cpu" or "cuda": parallel.device with "auto" decided by whether a CUDA device is present.
std::string resolved_device(const RunConfig& config);
// The model's attention: eager on the CPU (what the memory model's CPU numbers describe; SDPA's CPU
// math backend keeps the probabilities too), flash (SDPA) on a GPU.
plan::Attention runtime_attention(const RunConfig& config);

// Reads `path`, applies `overrides` ("section.key=value"), validates. Error(BadInput) names the key.
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace ftdist::train
