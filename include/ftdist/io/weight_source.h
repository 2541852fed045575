// WeightSource — where a model's starting weights come from: a Hugging Face directory
// (HfCheckpoint) or an ftdist checkpoint directory (CheckpointReader, its fp32 master weights).
// Both are read unit by unit and range by range, so a rank reads only the slice it owns.
//
//   std::unique_ptr<WeightSource> w = open_weights(path);   // decides by the directory's files
//   w->read_unit_range(u, shard_begin, my_shard);           // any dtype; zero past the unit's end
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>

#include "ftdist/plan/model_spec.h"

namespace ftdist::io {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual const std::string& dir() const = 0;
  virtual const plan::ModelSpec& spec() const = 0;
  virtual const std::string& config_text() const = 0;  // the model's config.json
  virtual at::ScalarType stored_dtype() const = 0;     // of most weights (eval's default dtype)
  // Elements [begin, begin + out.numel()) of unit u's flat buffer (its tensors concatenated in
  // spec().units() order, then zero padding) into `out` (contiguous, any dtype).
  virtual void read_unit_range(size_t unit, int64_t begin, const at::Tensor& out) const = 0;
  // Drops the pages of mapped files read so far from this process's resident memory (they stay in
  // the page cache): a loader calls it after each unit so that reading a model never makes the
  // files resident in the rank. Sources that map nothing do nothing.
  virtual void release_pages() const {}
};

// An ftdist checkpoint (a directory with meta.json, or a checkpoint root: its `latest`) or a Hugging
// Face model directory.
// Error(BadInput) naming `what` (the flag or key) and the path when it is neither.
std::unique_ptr<WeightSource> open_weights(const std::string& path, const std::string& what = "--model");

}  // namespace ftdist::io
