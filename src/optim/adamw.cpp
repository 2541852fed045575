// AdamW on flat shards: the CPU loop (vectorizable, at::parallel_for) and the dispatch to
// kernels/fused_adamw.cu for CUDA tensors.
#include "ftdist/optim/adamw.h"

#include <ATen/Parallel.h>

#include <cmath>

#include "adamw_scalars.h"
#include "ftdist/core/check.h"
#include "ftdist/core/dtype.h"
#ifdef FTDIST_WITH_KERNELS
#include <c10/cuda/CUDAStream.h>

#include "fused_adamw.cuh"
#include "ftdist/core/cuda_check.h"
#endif

namespace ftdist::optim {
namespace {

constexpr int64_t kGrain = 1 << 14;

// T: the master and state dtype (float, or BFloat16 in bf16-pure: read, computed in fp32, rounded
// back to nearest on store). G: the gradient dtype.
template <typename T, typename G>
void adamw_cpu(T* p, T* m, T* v, const G* g, c10::BFloat16* out, int64_t begin, int64_t end, const AdamWScalars& s) {
  at::parallel_for(begin, end, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float gi = static_cast<float>(g[i]);
      float pi = static_cast<float>(p[i]) * s.decay;
      const float mi = static_cast<float>(m[i]) * s.beta1 + gi * s.omb1;
      const float vi = static_cast<float>(v[i]) * s.beta2 + s.omb2 * gi * gi;
      const float denom = std::sqrt(vi) / s.bc2_sqrt + s.eps;
      pi = pi + (-s.step_size) * (mi / denom);
      p[i] = static_cast<T>(pi);
      m[i] = static_cast<T>(mi);
      v[i] = static_cast<T>(vi);
    }
    if (out)
      for (int64_t i = b; i < e; ++i) out[i] = c10::BFloat16(p[i]);
  });
}

c10::BFloat16* bf16_out(const at::Tensor& param_out) {
  return param_out.defined() ? param_out.data_ptr<c10::BFloat16>() : nullptr;
}

template <typename T>
void adamw_cpu_any_grad(const at::Tensor& master, const at::Tensor& m, const at::Tensor& v, const at::Tensor& grad,
                        const at::Tensor& param_out, const Segment& seg, const AdamWScalars& s) {
  T* p = master.data_ptr<T>();
  T* mp = m.data_ptr<T>();
  T* vp = v.data_ptr<T>();
  if (grad.scalar_type() == at::kFloat)
    adamw_cpu(p, mp, vp, grad.data_ptr<float>(), bf16_out(param_out), seg.begin, seg.end, s);
  else
    adamw_cpu(p, mp, vp, grad.data_ptr<c10::BFloat16>(), bf16_out(param_out), seg.begin, seg.end, s);
}

// bf16 master and states on a GPU (bf16-pure): the same arithmetic as the CPU loop in fp32
// temporaries, rounded once on store. The fused kernel serves the fp32 master.
void adamw_aten(const at::Tensor& master, const at::Tensor& m, const at::Tensor& v, const at::Tensor& grad,
                const Segment& seg, const AdamWScalars& s) {
  const int64_t n = seg.end - seg.begin;
  at::Tensor g = grad.narrow(0, seg.begin, n).to(at::kFloat);
  at::Tensor mf = m.narrow(0, seg.begin, n).to(at::kFloat).mul_(s.beta1).add_(g, s.omb1);
  at::Tensor vf = v.narrow(0, seg.begin, n).to(at::kFloat).mul_(s.beta2).addcmul_(g, g, s.omb2);
  at::Tensor denom = vf.sqrt().div_(s.bc2_sqrt).add_(s.eps);
  at::Tensor pf = master.narrow(0, seg.begin, n).to(at::kFloat).mul_(s.decay).addcdiv_(mf, denom, -s.step_size);
  master.narrow(0, seg.begin, n).copy_(pf);
  m.narrow(0, seg.begin, n).copy_(mf);
  v.narrow(0, seg.begin, n).copy_(vf);
}

}  // namespace

AdamW::AdamW(AdamWConfig config, at::Tensor master, std::vector<Range> decay, at::Tensor param_out)
    : cfg_(config), master_(std::move(master)), param_out_(std::move(param_out)), decay_(std::move(decay)) {
  check_master_and_output(master_, param_out_, decay_, "AdamW");
  check_adamw_config(cfg_);
  states_ = {at::zeros_like(master_), at::zeros_like(master_)};  // exp_avg, exp_avg_sq
}

void AdamW::load_state(const at::Tensor& exp_avg, const at::Tensor& exp_avg_sq, int64_t step) {
  FT_CHECK_ARG(exp_avg.numel() == master_.numel() && exp_avg_sq.numel() == master_.numel() && step >= 0,
               "AdamW: the optimizer state does not match this shard (" << exp_avg.numel() << " vs " << master_.numel()
                                                                         << " elements)");
  states_[0].view({-1}).copy_(exp_avg.view({-1}));
  states_[1].view({-1}).copy_(exp_avg_sq.view({-1}));
  set_steps(step);
}

void AdamW::step(const at::Tensor& grad, double lr) {
  check_grad(grad, master_);
  FT_CHECK_ARG(std::isfinite(lr) && lr >= 0, "AdamW: learning rate must be finite and >= 0, got " << lr);
  ++step_;
  for (const Segment& seg : segments(master_.numel(), decay_)) {
    const AdamWScalars s = adamw_scalars(cfg_, lr, step_, seg.decay);
    if (master_.is_cuda() && master_.scalar_type() == at::kBFloat16) {
      adamw_aten(master_, states_[0], states_[1], grad, seg, s);
      continue;
    }
    if (master_.is_cuda()) {
#ifdef FTDIST_WITH_KERNELS
      kernels::AdamWArgs a;
      a.master = master_.data_ptr<float>() + seg.begin;
      a.exp_avg = states_[0].data_ptr<float>() + seg.begin;
      a.exp_avg_sq = states_[1].data_ptr<float>() + seg.begin;
      a.grad_type = grad.scalar_type() == at::kFloat ? kernels::GradType::F32 : kernels::GradType::BF16;
      a.grad = static_cast<const char*>(grad.data_ptr()) + seg.begin * grad.element_size();
      a.param_bf16 = param_out_.defined() ? reinterpret_cast<uint16_t*>(param_out_.data_ptr<c10::BFloat16>()) + seg.begin : nullptr;
      a.n = seg.end - seg.begin;
      a.decay_factor = s.decay, a.beta1 = s.beta1, a.one_minus_beta1 = s.omb1, a.beta2 = s.beta2, a.one_minus_beta2 = s.omb2;
      a.bias_correction2_sqrt = s.bc2_sqrt, a.step_size = s.step_size, a.eps = s.eps;
      FT_CUDA_CHECK(kernels::launch_fused_adamw(a, c10::cuda::getCurrentCUDAStream(master_.get_device()).stream()));
#else
      FT_CHECK(false, ErrorKind::Internal, "AdamW on CUDA tensors needs ftdist built with its CUDA kernels (FTDIST_CUDA)");
#endif
      continue;
    }
    if (master_.scalar_type() == at::kFloat)
      adamw_cpu_any_grad<float>(master_, states_[0], states_[1], grad, param_out_, seg, s);
    else
      adamw_cpu_any_grad<c10::BFloat16>(master_, states_[0], states_[1], grad, param_out_, seg, s);
  }
}

}  // namespace ftdist::optim
