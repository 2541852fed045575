#include "ftdist/optim/clip.h"

#include <cmath>

#include "ftdist/core/check.h"

namespace ftdist::optim {

double global_grad_norm(const std::vector<at::Tensor>& shards, comm::Communicator& comm) {
  at::Tensor sum = at::zeros({1}, at::TensorOptions().dtype(at::kDouble).device(comm.device()));
  for (const at::Tensor& g : shards)
    if (g.numel() > 0) sum += g.to(at::kDouble).pow(2).sum().to(sum.device());
  comm.all_reduce(sum, comm::ReduceOp::Sum);
  return std::sqrt(sum.item<double>());
}

ClipResult clip_grad_norm(const std::vector<at::Tensor>& shards, double max_norm, comm::Communicator& comm,
                          NonFinite policy) {
  ClipResult r;
  r.norm = global_grad_norm(shards, comm);
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
