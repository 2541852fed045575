#include "ftdist/optim/clip.h"

#include <algorithm>
#include <cmath>

#include "ftdist/core/check.h"

namespace ftdist::optim {

double global_grad_norm(const std::vector<at::Tensor>& shards, comm::Communicator* comm) {
  const at::Device device = !shards.empty() ? shards.front().device() : at::Device(at::kCPU);
  at::Tensor sum = at::zeros({1}, at::TensorOptions().dtype(at::kDouble).device(comm ? comm->device() : device));
  // Squares summed in fp64, a bounded chunk at a time: no fp64 copy of a whole shard (8 more bytes
  // per element than any buffer the plan holds), and fp64 accuracy however large the shard.
  constexpr int64_t kChunk = int64_t(1) << 20;  // elements: 16 MiB of fp64 temporaries at the most
  for (const at::Tensor& g : shards) {
    const at::Tensor flat = g.reshape({-1});
    for (int64_t k = 0; k < flat.numel(); k += kChunk)
      sum += flat.narrow(0, k, std::min(kChunk, flat.numel() - k)).to(at::kDouble).square().sum().to(sum.device());
  }
  if (comm) {
    comm->all_reduce(sum, comm::ReduceOp::Sum);
    comm->synchronize();  // finished (or timed out) before the host waits for the value
  }
  return std::sqrt(sum.item<double>());
}

ClipResult clip_grad_norm(const std::vector<at::Tensor>& shards, double max_norm, comm::Communicator* comm,
                          NonFinite policy, comm::Communicator* replicas) {
  ClipResult r;
  r.norm = global_grad_norm(shards, comm);
  if (replicas != nullptr && replicas->size() > 1) {
    at::Tensor norm = at::full({1}, r.norm, at::TensorOptions().dtype(at::kDouble).device(replicas->device()));
    replicas->broadcast(norm, 0);
    replicas->synchronize();
    r.norm = norm.item<double>();
  }
  r.finite = std::isfinite(r.norm);
  if (!r.finite) {
    FT_CHECK(policy == NonFinite::Skip, ErrorKind::Internal,
             "the global gradient norm is " << r.norm << " (non-finite); stopping as configured (non_finite = abort)");
    return r;
  }
  if (max_norm > 0 && r.norm > max_norm) {
    const double scale = max_norm / (r.norm + 1e-6);
    for (const at::Tensor& g : shards) g.mul_(scale);
  }
  return r;
}

}  // namespace ftdist::optim
