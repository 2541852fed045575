// Training checkpoints on disk (docs/checkpoints.md#checkpoint-directory-layout): what one step's directory holds, how it is made
// visible atomically, and how any number of ranks read it back.
//
//   ckpt/step-00000100/meta.json                        format version, step, world size, stage,
//                                                       unit layouts, optimizer, trainer state
//   ckpt/step-00000100/config.json                      the model's Hugging Face config
//   ckpt/step-00000100/rank-00000-of-00004.safetensors  file shard k: for every unit u, tensors
//                                                       "<unit>/master", "<unit>/exp_avg",
//                                                       "<unit>/exp_avg_sq" (fp32; bf16 from a
//                                                       bf16-pure run; read back converting) holding the
//                                                       elements [k*S_u, min(numel_u, (k+1)*S_u))
//                                                       of the unit's flat buffer, S_u = ceil(numel_u / K)
//   ckpt/latest                                          the name of the newest complete step directory
//
// A checkpoint is written into ckpt/.tmp-step-00000100/ and renamed into place only after every
// file in it (and the directory) is fsynced; `latest` is replaced last. A directory that never got
// its name (a killed save) is never read, and the next save removes it. Because the layout is a
// plain cut of each unit's flat buffer, any world size and any stage can read any checkpoint.
//
//   CheckpointReader ckpt(find_latest_checkpoint("ckpt"));   // validates every file up front
//   ckpt.read_state_range(u, StateKind::ExpAvg, my_begin, my_exp_avg);
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ftdist/io/safetensors.h"
#include "ftdist/io/weight_source.h"

namespace ftdist::io {

constexpr int kCheckpointFormatVersion = 1;

// The per-element state a checkpoint keeps of every unit.
enum class StateKind { Master, ExpAvg, ExpAvgSq };
constexpr StateKind kStateKinds[] = {StateKind::Master, StateKind::ExpAvg, StateKind::ExpAvgSq};
const char* state_kind_name(StateKind kind);  // master | exp_avg | exp_avg_sq

struct CheckpointMeta {
  int format_version = kCheckpointFormatVersion;
  int64_t step = 0;      // optimizer steps done (the next step to run is step + 1)
  int world_size = 0;    // ranks of the run that saved it
  int file_shards = 0;   // K: rank files (the shard-group size; world size in `none`)
  std::string stage, precision;
  std::string model_name;
  struct Unit {
    std::string name;
    int64_t numel = 0;
    std::vector<plan::ModelSpec::Tensor> tensors;  // in flat-buffer order
  };
  std::vector<Unit> units;
  nlohmann::json optimizer;  // {"name": "adamw", "beta1", "beta2", "eps", "weight_decay", "step"}
  nlohmann::json trainer;    // the trainer's own state: sampler position, run config and hash, ...

  nlohmann::json to_json() const;
  static CheckpointMeta from_json(const std::string& text, const std::string& origin);  // validated
  // Error(BadInput) naming `origin` when `spec`'s units (names, tensors, shapes) differ from these.
  void check_model(const plan::ModelSpec& spec, const std::string& origin) const;
};

// Elements of unit `numel` per file shard: ceil(numel / file_shards).
int64_t file_shard_size(int64_t numel, int file_shards);
// [begin, end) of unit elements that file shard k holds (empty for trailing shards of tiny units).
std::pair<int64_t, int64_t> file_shard_range(int64_t numel, int k, int file_shards);
std::string rank_file_name(int k, int file_shards);  // rank-00003-of-00004.safetensors
std::string state_tensor_name(const std::string& unit, StateKind kind);
std::string checkpoint_dir_name(int64_t step);  // step-00000100
// Where a save of `step` writes before it is complete (a hidden sibling of the final directory).
std::string checkpoint_tmp_dir(const std::string& root, int64_t step);

// The last part of a save, on one rank once every rank file is in `tmp`: writes meta.json and
// config.json, fsyncs, renames `tmp` to root/step-N, updates root/latest, then removes all but the
// newest `keep` checkpoints (0: keep all) and any leftover temporary directories. Returns the
// final directory.
std::string commit_checkpoint(const std::string& root, const std::string& tmp, const CheckpointMeta& meta,
                              const std::string& config_text, int keep);

// root/<name in root/latest>, or "" when there is no checkpoint yet. Error(BadInput) naming
// `latest` when it names a directory that is missing.
std::string find_latest_checkpoint(const std::string& root);
// Whether `dir` looks like an ftdist checkpoint (has meta.json).
bool is_checkpoint_dir(const std::string& dir);

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
  // Elements [begin, begin + out.numel()) of unit u's state `kind`, stitched from the file shards
  // that hold them; zero past the unit's end.
  void read_state_range(size_t unit, StateKind kind, int64_t begin, const at::Tensor& out) const;
  // Drops the pages read so far from this process's resident memory (they stay in the page
  // cache), so that streaming a large checkpoint keeps the process small.
  void release_pages() const override;

 private:
  std::string dir_, config_text_;
  CheckpointMeta meta_;
  plan::ModelSpec spec_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
};

}  // namespace ftdist::io
