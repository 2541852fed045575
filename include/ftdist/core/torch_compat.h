// Every difference between LibTorch versions lives here, and only here (DESIGN.md §9).
// ftdist is built and tested against the LibTorch of PyTorch 2.11 (scripts/setup.sh pins it).
#pragma once

#include <ATen/ATen.h>
#include <torch/version.h>  // TORCH_VERSION_MAJOR / TORCH_VERSION_MINOR

#define FTDIST_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

static_assert(FTDIST_TORCH_AT_LEAST(2, 0), "ftdist needs LibTorch 2.0 or newer");

namespace ftdist::compat {

// Tensor::is_contiguous() plus "dense and in row-major order", which is what the communication
// layer hands to MPI/NCCL as a raw pointer.
inline bool is_dense_contiguous(const at::Tensor& t) {
  return t.is_contiguous() && !t.is_sparse() && t.layout() == at::kStrided;
}

}  // namespace ftdist::compat
