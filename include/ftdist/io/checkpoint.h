// Training checkpoints on disk (docs/checkpoints.md#checkpoint-directory-layout): what one step's directory holds, how it is made
// visible atomically, and how any number of ranks read it back.
//
//   ckpt/step-00000100/meta.json                        format version, step, world size, stage,
//                                                       unit layouts, optimizer, trainer state
//   ckpt/step-00000100/config.json                      the model's Hugging Face config
//   ckpt/step-00000100/rank-00000-of-00004.safetensors  file shard k: for every unit u, tensors
//                                                       "<unit>/master" and "<unit>/<state>" for each
//                                                       of the optimizer's states (checkpoint_states():
//                                                       fp32, or bf16 from a bf16-pure run, read back
//                                                       converting; 8-bit codes as U8) holding the
//                                                       elements [k*S_u, min(numel_u, (k+1)*S_u))
//                                                       of the unit's flat buffer (a per-block state:
//                                                       the blocks of those elements), with
//                                                       S_u = plan::shard_size(numel_u, K, alignment)
//   ckpt/latest                                          the name of the newest complete step directory
//
// A checkpoint is written into ckpt/.tmp-step-00000100/ and renamed into place only after every
// file in it (and the directory) is fsynced; `latest` is replaced last. A directory that never got
// its name (a killed save) is never read, and the next save removes it. Because the layout is a
// plain cut of each unit's flat buffer, any world size and any stage can read any checkpoint (and
// quantization blocks, counted from each unit's start, never straddle a file shard).
//
//   CheckpointReader ckpt(find_latest_checkpoint("ckpt"));   // validates every file up front
//   ckpt.read_state_range(u, "exp_avg", my_begin, my_exp_avg);
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ftdist/io/safetensors.h"
#include "ftdist/io/weight_source.h"
#include "ftdist/plan/optimizer_state.h"

namespace ftdist::io {

constexpr int kCheckpointFormatVersion = 1;

// What a checkpoint keeps of every unit: the master weights ("master"), then the states of the
// optimizer (plan::optimizer_states), in this order.
std::vector<plan::OptimizerState> checkpoint_states(plan::OptimizerKind optimizer);

struct CheckpointMeta {
  int format_version = kCheckpointFormatVersion;
  int64_t step = 0;      // optimizer steps done (the next step to run is step + 1)
  int world_size = 0;    // ranks of the run that saved it
  int file_shards = 0;   // K: rank files (the shard-group size; world size in `none`)
  int64_t shard_alignment = 1;  // file shards are multiples of this many elements (plan::shard_alignment)
  std::string stage, precision;
  std::string model_name;
  struct Unit {
    std::string name;
    int64_t numel = 0;
    std::vector<plan::ModelSpec::Tensor> tensors;  // in flat-buffer order
  };
  std::vector<Unit> units;
  nlohmann::json optimizer;  // {"name": "adamw", its hyperparameters (OptimizerConfig::to_json), "step"}
  nlohmann::json trainer;    // the trainer's own state: sampler position, run config and hash, ...
  double saved_at = 0;       // when it was committed, in seconds since the epoch (0: not recorded)

  nlohmann::json to_json() const;
  static CheckpointMeta from_json(const std::string& text, const std::string& origin);  // validated
  // Error(BadInput) naming `origin` when `spec`'s units (names, tensors, shapes) differ from these.
  void check_model(const plan::ModelSpec& spec, const std::string& origin) const;
  // optimizer.name as a kind (adamw when absent); Error(BadInput) naming meta.json when unknown.
  plan::OptimizerKind optimizer_kind() const;
};

// Elements of unit `numel` per file shard: plan::shard_size(numel, file_shards, alignment).
int64_t file_shard_size(int64_t numel, int file_shards, int64_t alignment = 1);
// [begin, end) of unit elements that file shard k holds (empty for trailing shards of tiny units).
std::pair<int64_t, int64_t> file_shard_range(int64_t numel, int k, int file_shards, int64_t alignment = 1);
std::string rank_file_name(int k, int file_shards);  // rank-00003-of-00004.safetensors
std::string state_tensor_name(const std::string& unit, const std::string& state);
std::string checkpoint_dir_name(int64_t step);  // step-00000100
// Where a save of `step` writes before it is complete (a hidden sibling of the final directory).
std::string checkpoint_tmp_dir(const std::string& root, int64_t step);

// The last part of a save, on one rank once every rank file is in `tmp`: writes meta.json (with the
// time of the commit) and config.json, fsyncs, renames `tmp` to root/step-N, updates root/latest,
// then removes all but the `keep` most recently saved checkpoints (0: keep all) and any leftover
// temporary directories. Returns the final directory.
std::string commit_checkpoint(const std::string& root, const std::string& tmp, const CheckpointMeta& meta,
                              const std::string& config_text, int keep);

// root/<name in root/latest>, or "" when there is no checkpoint yet. Without `latest` (a first save
// killed before writing it), the most recently saved complete checkpoint, with a warning. Error(BadInput)
// naming `latest` when it names a directory that is missing, or is not a file.
std::string find_latest_checkpoint(const std::string& root);
// Whether `dir` looks like an ftdist checkpoint (has meta.json).
bool is_checkpoint_dir(const std::string& dir);
// The names of root's complete checkpoints (step-N with meta.json), in the order they were saved
// (meta.json's saved_at; those saved without one first, by step), the newest last. That is the
// order of steps, except after a run resumed from an earlier checkpoint (a rollback): its saves
// come after the later steps of the run it abandoned, which pruning then removes first.
std::vector<std::string> checkpoints_in_save_order(const std::string& root);

// `path` itself when it is a checkpoint directory; the checkpoint its `latest` names when it is a
// checkpoint root; else `path` unchanged (for the caller to report or read otherwise).
std::string checkpoint_dir_of(const std::string& path);

class CheckpointReader : public WeightSource {
 public:
  // Reads and validates meta.json, config.json and every rank file (present, a valid safetensors
  // file, every tensor with the expected dtype and length). Errors name the file.
  explicit CheckpointReader(const std::string& dir);
  ~CheckpointReader() override;

  const CheckpointMeta& meta() const { return meta_; }
  const std::string& dir() const override { return dir_; }
  const plan::ModelSpec& spec() const override { return spec_; }
  const std::string& config_text() const override { return config_text_; }
  at::ScalarType stored_dtype() const override { return at::kFloat; }
  // The master weights.
  void read_unit_range(size_t unit, int64_t begin, const at::Tensor& out) const override;
  // Elements [begin, begin + out.numel()) of unit u's per-element state `state` (see
  // checkpoint_states()), stitched from the file shards that hold them; zero past the unit's end.
  // A per-block state: its entries for elements from `begin` (a block boundary), out.numel() of them.
  void read_state_range(size_t unit, const std::string& state, int64_t begin, const at::Tensor& out) const;
  // Drops the pages read so far from this process's resident memory (they stay in the page
  // cache), so that streaming a large checkpoint keeps the process small.
  void release_pages() const override;

 private:
  void check_file_states(int k, const CheckpointMeta::Unit& u) const;  // every state of u in file shard k
  void check_file_origin(int k) const;  // file shard k's metadata: saved at meta.json's step, under its own name

  std::string dir_, config_text_;
  CheckpointMeta meta_;
  std::vector<plan::OptimizerState> states_;  // checkpoint_states() of meta_'s optimizer
  plan::ModelSpec spec_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
};

}  // namespace ftdist::io
