// SGD with momentum on flat shards: the fp32 CPU loop, and ATen ops for a bf16 master or a GPU.
#include "ftdist/optim/sgd.h"

#include <ATen/Parallel.h>

#include <cmath>

#include "ftdist/core/check.h"

namespace ftdist::optim {
namespace {

constexpr int64_t kGrain = 1 << 14;

// fp32 master on the CPU: one pass per segment.
void sgd_cpu(float* p, float* b, const float* g, c10::BFloat16* out, const Segment& seg, float wd, float mom, float lr,
             bool first) {
  at::parallel_for(seg.begin, seg.end, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float gi = g[i] + wd * p[i];
      b[i] = first ? gi : b[i] * mom + gi;
      p[i] = p[i] + (-lr) * b[i];
      if (out) out[i] = c10::BFloat16(p[i]);
    }
  });
}

// The same arithmetic with ATen ops in fp32 temporaries, rounded once on store (bf16 master, GPU).
void sgd_aten(const at::Tensor& master, const at::Tensor& buf, const at::Tensor& grad, const at::Tensor& out,
              const Segment& seg, float wd, float mom, float lr, bool first) {
  const int64_t n = seg.end - seg.begin;
  at::Tensor p = master.narrow(0, seg.begin, n).to(at::kFloat);
  at::Tensor g = grad.narrow(0, seg.begin, n).to(at::kFloat, /*non_blocking=*/false, /*copy=*/true);
  if (wd != 0.f) g.add_(p * wd);
  at::Tensor b = first ? g : buf.narrow(0, seg.begin, n).to(at::kFloat).mul_(mom).add_(g);
  p.add_(b * (-lr));
  master.narrow(0, seg.begin, n).copy_(p);
  buf.narrow(0, seg.begin, n).copy_(b);
  if (out.defined()) out.narrow(0, seg.begin, n).copy_(p);
}

}  // namespace

SgdMomentum::SgdMomentum(SgdConfig config, at::Tensor master, std::vector<Range> decay, at::Tensor param_out)
    : cfg_(config), master_(std::move(master)), param_out_(std::move(param_out)), decay_(std::move(decay)) {
  check_master_and_output(master_, param_out_, decay_, "SgdMomentum");
  FT_CHECK_ARG(cfg_.momentum >= 0 && cfg_.momentum < 1 && cfg_.weight_decay >= 0,
               "SGD: momentum must be in [0, 1) and weight_decay >= 0");
  states_ = {at::zeros_like(master_)};  // momentum
}

void SgdMomentum::step(const at::Tensor& grad, double lr) {
  check_grad(grad, master_);
  FT_CHECK_ARG(std::isfinite(lr) && lr >= 0, "SGD: learning rate must be finite and >= 0, got " << lr);
  ++step_;
  const bool first = step_ == 1;  // torch.optim.SGD starts the buffer at the first gradient
  const float mom = float(cfg_.momentum), lrf = float(lr);
  const bool loop = master_.is_cpu() && master_.scalar_type() == at::kFloat;
  at::Tensor g = loop ? grad.to(at::kFloat).contiguous() : grad;
  for (const Segment& seg : segments(master_.numel(), decay_)) {
    const float wd = seg.decay ? float(cfg_.weight_decay) : 0.f;
    if (!loop) {
      sgd_aten(master_, states_[0], g, param_out_, seg, wd, mom, lrf, first);
      continue;
    }
    c10::BFloat16* out = param_out_.defined() ? param_out_.data_ptr<c10::BFloat16>() : nullptr;
    sgd_cpu(master_.data_ptr<float>(), states_[0].data_ptr<float>(), g.data_ptr<float>(), out, seg, wd, mom, lrf, first);
  }
}

}  // namespace ftdist::optim
