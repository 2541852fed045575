// Packing documents into fixed-length samples, and the sampler that deals them out.
//
// pack(): documents are concatenated in order and cut into seq_len tokens; a document's first
// token is never a prediction target from the previous document (its label is -100 at every join),
// so no loss crosses documents. The last partial sample is dropped.
//
// GlobalSampler: the samples of global step k are a pure function of (seed, k, global batch) —
// the same on 1 rank and on 8 — drawn from a per-epoch shuffle; a rank takes its contiguous share.
#pragma once

#include <cstdint>
#include <vector>

#include "ftdist/data/documents.h"

namespace ftdist::data {

struct Sample {
  std::vector<int64_t> ids, labels;  // seq_len each
};

std::vector<Sample> pack(const std::vector<Document>& docs, int64_t seq_len);

class GlobalSampler {
 public:
  GlobalSampler(int64_t num_samples, uint64_t seed);
  // Sample indices of global step `step` (from 0), `global_batch` of them; the share of `rank` out of
  // `world` is the contiguous block [rank * global_batch / world, (rank + 1) * global_batch / world).
  std::vector<int64_t> step_samples(int64_t step, int64_t global_batch, int rank, int world) const;
  int64_t epoch_of(int64_t step, int64_t global_batch) const;

 private:
  std::vector<int64_t> order(int64_t epoch) const;
  int64_t n_;
  uint64_t seed_;
};

}  // namespace ftdist::data
