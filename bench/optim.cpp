// bench/optim — optimizer step throughput on flat shards.
//   CPU: elements/s of ftdist's AdamW loop (fp32 and bf16 gradients) next to the same update written
//        as ATen tensor ops (what an unfused implementation costs), and of the 8-bit AdamW loop.
//   GPU (when present): the fused kernel's time and achieved bandwidth — bytes read + written per
//        element (master, exp_avg, exp_avg_sq read and written, gradient read, bf16 parameter
//        written) over time — next to the device's copy bandwidth; the same for the 8-bit kernel
//        (master read and written, two byte codes read and written, gradient, bf16 parameter). bench/optim_torch_fused.py
//        times torch.optim.AdamW(fused=True) on the same sizes for the side-by-side.
//
//   build/bench/ftdist_bench_optim [elements ...]        (default: 1M 16M 64M)
#include <ATen/ATen.h>

#include <chrono>
#include <functional>
#include <cstdio>
#include <string>
#include <vector>

#include "ftdist/comm/communicator.h"
#include "ftdist/optim/adamw.h"
#include "ftdist/optim/adamw_8bit.h"
#include "ftdist/plan/time_model.h"
#ifdef FTDIST_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

using namespace ftdist;

namespace {

double seconds(const std::function<void()>& f, int reps, [[maybe_unused]] bool cuda) {
  f();  // warm-up
#ifdef FTDIST_WITH_CUDA
  if (cuda) cudaDeviceSynchronize();
#endif
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) f();
#ifdef FTDIST_WITH_CUDA
  if (cuda) cudaDeviceSynchronize();
#endif
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
}

// The same update as unfused ATen ops (torch::optim::AdamW's formulation).
void aten_adamw(at::Tensor& p, at::Tensor& m, at::Tensor& v, const at::Tensor& g, double lr, int64_t step) {
  p.mul_(1 - lr * 0.01);
  m.mul_(0.9).add_(g, 0.1);
  v.mul_(0.999).addcmul_(g, g, 0.001);
  at::Tensor denom = (v.sqrt() / std::sqrt(1 - std::pow(0.999, step))).add_(1e-8);
  p.addcdiv_(m, denom, -lr / (1 - std::pow(0.9, step)));
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(std::stoll(argv[i]));
  if (sizes.empty()) sizes = {1 << 20, 16 << 20, 64 << 20};
  std::printf("%-6s %-26s %12s %10s %14s %12s\n", "device", "implementation", "elements", "ms/step", "elements/s", "GB/s");
  double cpu_rate = 0;  // the fp32-gradient loop at the largest size: what optimizer offload would get per rank
  for (int64_t n : sizes) {
    for (at::ScalarType gt : {at::kFloat, at::kBFloat16}) {
      at::Tensor master = at::randn({n}), out = at::empty({n}, at::kBFloat16), g = at::randn({n}).to(gt);
      optim::AdamW opt(optim::AdamWConfig{}, master, {{0, n}}, out);
      const int reps = n > (8 << 20) ? 3 : 10;
      double t = seconds([&] { opt.step(g, 1e-4); }, reps, false);
      double bytes = double(n) * (24 + (gt == at::kFloat ? 4 : 2) + 2);
      if (gt == at::kFloat) cpu_rate = n / t;
      std::printf("%-6s %-26s %12lld %10.2f %14.3e %12.1f\n", "cpu", gt == at::kFloat ? "ftdist loop, fp32 grad" : "ftdist loop, bf16 grad",
                  static_cast<long long>(n), t * 1e3, n / t, bytes / t / 1e9);
    }
    at::Tensor p = at::randn({n}), m = at::zeros({n}), v = at::zeros({n}), g = at::randn({n});
    int64_t step = 0;
    double t = seconds([&] { aten_adamw(p, m, v, g, 1e-4, ++step); }, n > (8 << 20) ? 3 : 10, false);
    std::printf("%-6s %-26s %12lld %10.2f %14.3e %12s\n", "cpu", "ATen ops (unfused)", static_cast<long long>(n), t * 1e3, n / t, "-");
    {
      at::Tensor master = at::randn({n}), out = at::empty({n}, at::kBFloat16), g8 = at::randn({n});
      optim::AdamW8bit opt(optim::AdamWConfig{}, master, {{0, n}}, out);
      const double t8 = seconds([&] { opt.step(g8, 1e-4); }, n > (8 << 20) ? 3 : 10, false);
      std::printf("%-6s %-26s %12lld %10.2f %14.3e %12.1f\n", "cpu", "8-bit loop, fp32 grad", static_cast<long long>(n), t8 * 1e3,
                  n / t8, double(n) * 18 / t8 / 1e9);
    }
#ifdef FTDIST_WITH_CUDA
    if (comm::cuda_device_present()) {
      at::TensorOptions cuda = at::TensorOptions().device(at::kCUDA);
      for (at::ScalarType gt : {at::kFloat, at::kBFloat16}) {
        at::Tensor master_d = at::randn({n}, cuda), out_d = at::empty({n}, cuda.dtype(at::kBFloat16));
        at::Tensor g_d = at::randn({n}, cuda).to(gt);
        optim::AdamW opt(optim::AdamWConfig{}, master_d, {{0, n}}, out_d);
        double td = seconds([&] { opt.step(g_d, 1e-4); }, 20, true);
        double bytes = double(n) * (24 + (gt == at::kFloat ? 4 : 2) + 2);
        std::printf("%-6s %-26s %12lld %10.3f %14.3e %12.1f\n", "cuda",
                    gt == at::kFloat ? "fused kernel, fp32 grad" : "fused kernel, bf16 grad", static_cast<long long>(n), td * 1e3,
                    n / td, bytes / td / 1e9);
      }
      {
        at::Tensor master_d = at::randn({n}, cuda), out_d = at::empty({n}, cuda.dtype(at::kBFloat16)), g_d = at::randn({n}, cuda);
        optim::AdamW8bit opt(optim::AdamWConfig{}, master_d, {{0, n}}, out_d);
        const double td = seconds([&] { opt.step(g_d, 1e-4); }, 20, true);
        std::printf("%-6s %-26s %12lld %10.3f %14.3e %12.1f\n", "cuda", "8-bit kernel, fp32 grad", static_cast<long long>(n),
                    td * 1e3, n / td, double(n) * 18 / td / 1e9);
      }
      at::Tensor a = at::empty({n * 4}, cuda), b = at::empty({n * 4}, cuda);
      double tc = seconds([&] { b.copy_(a); }, 20, true);
      std::printf("%-6s %-26s %12lld %10.3f %14s %12.1f\n", "cuda", "device copy (read+write)", static_cast<long long>(n * 4),
                  tc * 1e3, "-", 2.0 * double(n) * 16 / tc / 1e9);
    }
#endif
  }
  // The planner's time model prices optimizer offload with a host AdamW rate per rank
  // (plan::Hardware::cpu_adam_params_per_s); this machine's measured rate (LibTorch's default
  // intra-op threads) next to it.
  std::printf("# cpu AdamW, one rank: measured %.3e elements/s (fp32 gradients, %lld elements); the time model assumes %.3e\n",
              cpu_rate, static_cast<long long>(sizes.back()), plan::Hardware{}.cpu_adam_params_per_s);
  return 0;
}
