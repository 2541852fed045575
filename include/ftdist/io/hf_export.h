// HfExporter — streams a model into a Hugging Face directory in pieces of a unit, in order, so that
// memory stays bounded by the piece the caller hands over (docs/checkpoints.md#ftdist-export):
//   OUT/model-00001-of-0000n.safetensors ...   tensors in unit order, files cut at max_shard_bytes
//                                              (named and shaped as Transformers stores them: Phi-3's
//                                              q/k/v and gate/up fused, plan::ModelSpec::hf_tensors())
//   OUT/model.safetensors.index.json           {"metadata": {"total_size"}, "weight_map"}
//   OUT/config.json                            the model's config (its dtype set to the export's)
//   OUT/tokenizer.json, tokenizer.model, ...   copied when known
//   OUT/ftdist-export.json                     {"format": "ftdist-export", "files": [...]}: what ftdist wrote
// Everything is written into OUT.tmp and renamed to OUT by finish(); an export that fails or is
// killed leaves no OUT behind. ftdist deletes only what it wrote: an OUT.tmp, or an OUT it is asked
// to replace, must carry the manifest and hold nothing it does not list.
//
//   HfExporter ex("out/hf", spec, config_text, {at::kBFloat16, 5'000'000'000});
//   for (size_t u = 0; u < n; ++u) ex.add_unit(whole_flat_of_unit(u));   // or, in pieces:
//   for (const at::Tensor& piece : pieces_of_every_unit_in_order) ex.add_piece(piece);
//   ex.copy_carried_files(tokenizer_dir, model_dir);
//   ex.finish();
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ftdist/core/dir_lock.h"
#include "ftdist/io/safetensors.h"
#include "ftdist/plan/model_spec.h"

namespace ftdist::io {

class CheckpointReader;

// The pieces exports read, gather and convert at a time (fp32: 64 MiB).
constexpr int64_t kExportPieceElements = int64_t(1) << 22;

struct ExportOptions {
  at::ScalarType dtype = at::kBFloat16;
  uint64_t max_shard_bytes = 5'000'000'000ull;  // a tensor larger than this gets a file of its own
  // false: OUT must not exist. true: an ftdist export already in OUT (check_replaceable_export) is
  // replaced by finish(), in one step once the new one is complete; an export that fails keeps it.
  bool replace = false;
};

// The files exports and checkpoints carry beside the weights: the tokenizer's, which a Hugging Face
// directory may hold (the tokenizer in its fast, SentencePiece or BPE vocab/merges form, its
// configuration and added tokens, the chat template as Transformers saves it since it left
// tokenizer_config.json), and the model's generation_config.json (its EOS ids and sampling
// defaults), each from its own directory: data.tokenizer's and model.path's differ when both are set.
const std::vector<std::string>& tokenizer_file_names();
// ...and the directory of named chat templates beside them (data::kAdditionalChatTemplates), copied whole.
constexpr const char* kChatTemplatesDir = "additional_chat_templates";
const std::vector<std::string>& model_side_file_names();  // generation_config.json
// Copies those of tokenizer_file_names() that exist in `tokenizer_dir` and those of
// model_side_file_names() in `model_dir` into `to` (a "" directory: none); returns how many.
int copy_carried_files(const std::string& tokenizer_dir, const std::string& model_dir, const std::string& to);

// Where an export is about to be replaced (ftdist train's <output.dir>/hf): Error(BadInput) naming
// `what` unless `dir` does not exist or is an ftdist export holding only the files its manifest
// lists. remove_export() then removes those files and the directory.
void check_replaceable_export(const std::string& dir, const std::string& what);
void remove_export(const std::string& dir, const std::string& what);

// Writes OUT.tmp, then finish() renames it to OUT (ExportOptions::replace: swaps it with the
// export already there, then removes that one), so OUT never holds a partial export.

class HfExporter {
 public:
  HfExporter(std::string out_dir, const plan::ModelSpec& spec, const std::string& config_text, ExportOptions options);
  ~HfExporter();  // without finish(): removes OUT.tmp
  HfExporter(const HfExporter&) = delete;
  HfExporter& operator=(const HfExporter&) = delete;

  int num_files() const { return int(file_first_.size()); }
  // The next unit's whole flat buffer (its tensors concatenated; padding beyond them is ignored).
  void add_unit(const at::Tensor& flat);
  // The next elements of the units' flat buffers, concatenated in unit order without padding; a
  // piece may end anywhere but not run past its unit. Converted and written at once (each piece is
  // checked finite first: a NaN or Inf weight fails the export).
  void add_piece(const at::Tensor& piece);
  void copy_carried_files(const std::string& tokenizer_dir, const std::string& model_dir);  // (io::copy_carried_files)
  void finish();

 private:
  void open_file(size_t f);
  void replace_previous();
  std::unique_ptr<OutputLock> lock_;  // one export into OUT at a time (they would share OUT.tmp)
  std::string out_, tmp_;
  ExportOptions options_;
  std::vector<plan::ModelSpec::Unit> units_;
  std::vector<SafetensorsWriter::Entry> entries_;  // every tensor, in order
  std::vector<size_t> file_first_;                 // first entry of each file
  uint64_t total_bytes_ = 0;                       // of every tensor (the index's total_size)
  size_t next_unit_ = 0, next_entry_ = 0;
  int64_t in_unit_ = 0, in_entry_ = 0;  // elements of units_[next_unit_] and of entries_[next_entry_] written
  int open_ = -1;
  std::unique_ptr<SafetensorsWriter> writer_;
  bool finished_ = false;
};

// `ftdist export`: a checkpoint's master weights, one unit at a time, with the tokenizer files
// found in the checkpoint directory. Returns the number of safetensors files written.
int export_checkpoint(const CheckpointReader& ckpt, const std::string& out_dir, ExportOptions options);

// HF file name of shard f (0-based) of n: model-00001-of-00003.safetensors
std::string hf_shard_file_name(int f, int n);

}  // namespace ftdist::io
