// Global-norm gradient clipping across shards: the sum of squares of every local shard, one
// all-reduce, a square root. Returns the norm before clipping; clipping scales by
// max_norm / (norm + 1e-6) when the norm exceeds max_norm (torch.nn.utils.clip_grad_norm_).
// A non-finite norm leaves the gradients alone: the caller skips the step (and counts it) or, with
// NonFinite::Abort, an Error is thrown on every rank.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "ftdist/comm/communicator.h"

namespace ftdist::optim {

enum class NonFinite { Skip, Abort };

struct ClipResult {
  double norm = 0;     // before clipping
  bool finite = true;  // false: do not step
};

// Sum of squares over the shards (in fp64, a bounded chunk at a time) and,
// with `comm`, over its ranks (one all-reduce); then sqrt. `comm` null: the shards are the whole
// gradient already (replicated, as in the `none` stage). The FSDP runtime's norm is this function.
double global_grad_norm(const std::vector<at::Tensor>& shards, comm::Communicator* comm);

// Counts the steps skipped for a non-finite gradient norm (the trainer reports the count).
class SkipCounter {
 public:
  bool should_step(const ClipResult& r) {
    if (r.finite) return true;
    ++skipped_;
    return false;
  }
  int64_t skipped() const { return skipped_; }

 private:
  int64_t skipped_ = 0;
};

// max_norm <= 0 disables the scaling (the norm is still computed and checked). `replicas` (hybrid:
// the ranks that hold the same shard in other shard groups) take the norm of their rank 0, so that
// replicas whose reductions ran in another order cannot scale apart and drift over steps.
ClipResult clip_grad_norm(const std::vector<at::Tensor>& shards, double max_norm, comm::Communicator* comm,
                          NonFinite policy = NonFinite::Skip, comm::Communicator* replicas = nullptr);

}  // namespace ftdist::optim
