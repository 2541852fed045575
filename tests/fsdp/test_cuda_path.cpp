// The runtime's GPU path, under mpirun with the nccl backend (one GPU per rank; np1 and np2 — the
// np2 form, the only one that gathers, needs two GPUs). Every test skips itself, visibly, without a
// GPU for each rank (ctest then reports the run as skipped, never passed).
//  - The caching allocator's statistics answer before any CUDA tensor exists; a CudaEvent that was
//    "not ready" leaves no error for the next kernel's launch check.
//  - DeviceStreams: a collective on the gather stream starts after the compute enqueued before it,
//    and compute enqueued after compute_waits() sees its result.
//  - The CUDA runtime trains like the CPU runtime: per-step losses and final master parameters of
//    every stage and activation checkpointing mode agree with the same run on the CPU (mpi backend, same
//    world size) to 1e-4 relative (fp32; cuBLAS and the CPU sum in different orders), with no gather buffer
//    overflow and the caching allocator's peak at least the persistent buffers.
//  - bf16-mixed on the GPU stays within 2% of the fp32 CPU trajectory (as on the CPU).
//  - Flash attention's saved activations equal the planner's through every kernel path (grouped
//    heads in bf16, expanded in fp32, a shared sliding-window mask).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#ifdef FTDIST_WITH_CUDA
#include <ATen/cuda/Sleep.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include "ftdist/core/cuda_event.h"
#endif
#include "../../src/fsdp/device_streams.h"
#include "../comm/mpi_world.h"
#include "ftdist/comm/device_binding.h"
#include "../model/tiny_model.h"
#include "ftdist/fsdp/device_memory.h"
#include "ftdist/fsdp/fsdp_model.h"
#include "ftdist/fsdp/memory_report.h"
#include "ftdist/plan/memory_model.h"

using namespace ftdist;

namespace {

// A GPU for every rank on this node (NCCL cannot put two ranks on one GPU): on one GPU the test
// runs as np1 only, and its np2 form (the all-gathers, gather buffers and gather fences) needs two.
bool gpu_per_rank() {
#ifdef FTDIST_WITH_CUDA
  return comm::cuda_device_present() && int(c10::cuda::device_count()) >= comm::local_size();
#else
  return false;
#endif
}
bool have_gpu() { return comm::nccl_available() && gpu_per_rank(); }
// This rank's GPU (the one the nccl backend binds).
at::Device my_gpu() { return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(comm::local_rank())); }

std::unique_ptr<comm::Communicator> gpu_world() {
  comm::CommOptions o;
  o.backend = comm::Backend::Nccl;
  o.timeout_s = 120;
  return comm::make_communicator(at::kCUDA, o);
}

struct Trajectory {
  std::vector<double> losses;
  std::vector<at::Tensor> master;  // per unit, on the CPU
  fsdp::StepResult last;
  uint64_t persistent = 0;
  plan::MemoryBreakdown breakdown;  // persistent_bytes(), with the offloaded host bytes
  int64_t device_peak = 0;
};

Trajectory train(comm::Communicator& world, fsdp::FsdpConfig cfg, const plan::ModelSpec& spec) {
  model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat), plan::Attention::Eager);
  randomize(m, 7);
  cfg.device = world.device();
  fsdp::FsdpModel f(m, world, cfg);
  Trajectory r;
  r.breakdown = f.persistent_bytes();
  r.persistent = r.breakdown.total();
  if (cfg.device.is_cuda()) fsdp::reset_device_memory_peak(cfg.device);
  for (int step = 0; step < 3; ++step) {
    std::vector<fsdp::MicroBatch> micro;
    for (int j = 0; j < 2; ++j) {
      at::manual_seed(uint64_t(100 * step + 10 * world.rank() + j));
      at::Tensor ids = at::randint(0, spec.vocab, {2, 16}, at::kLong);
      micro.push_back({ids, ids});
    }
    r.last = f.train_step(micro, 1e-2);
    r.losses.push_back(r.last.loss);
  }
  for (size_t u = 0; u < f.num_units(); ++u) r.master.push_back(f.gather_master(u).cpu());
  if (cfg.device.is_cuda()) r.device_peak = fsdp::device_memory_peak(cfg.device);
  return r;
}

}  // namespace

TEST(DeviceMemory, StatisticsBeforeAnyCudaTensor) {
  // First in this file (gtest runs tests in file order): no CUDA tensor exists yet in the process,
  // and the statistics must still answer (the caching allocator is initialized on demand).
  if (!gpu_per_rank()) GTEST_SKIP() << "no CUDA device for each rank";
  const at::Device dev = my_gpu();
  EXPECT_NO_THROW(fsdp::reset_device_memory_peak(dev));
  EXPECT_GE(fsdp::device_memory_current(dev), 0);
  EXPECT_GT(fsdp::device_memory_capacity(dev), 0);
}

// A phase's peak sees the temporaries freed within it (the step timeline's per-phase peaks; the
// value at the phase's end would not), and taking it keeps the peak since the last reset.
TEST(DeviceMemory, PhasePeakSeesTemporariesAndKeepsTheOverallPeak) {
  if (!gpu_per_rank()) GTEST_SKIP() << "no CUDA device for each rank";
  const at::Device dev = my_gpu();
  fsdp::reset_device_memory_peak(dev);
  fsdp::take_device_memory_phase_peak(dev);
  const int64_t base = fsdp::device_memory_current(dev), temp = int64_t(64) << 20;
  { at::Tensor t = at::empty({temp}, at::TensorOptions().dtype(at::kByte).device(dev)); }
  EXPECT_GE(fsdp::take_device_memory_phase_peak(dev) - base, temp) << "the phase saw its temporary";
  EXPECT_LT(fsdp::take_device_memory_phase_peak(dev) - base, temp) << "the next phase did not";
  EXPECT_GE(fsdp::device_memory_peak(dev) - base, temp) << "the peak since the reset kept it";
  EXPECT_GE(fsdp::device_memory_reserved_peak(dev), temp);
}

#ifdef FTDIST_WITH_CUDA
TEST(CudaEvent, NotReadyIsNoErrorForTheNextKernel) {
  if (!gpu_per_rank()) GTEST_SKIP() << "no CUDA device for each rank";
  const at::Device dev = my_gpu();
  at::Tensor x = at::ones({16}, at::TensorOptions().dtype(at::kFloat).device(dev));
  CudaEvent ev;
  at::cuda::sleep(int64_t(1) << 30);  // a spinning kernel: the event behind it is not done for a while
  ev.record(c10::cuda::getCurrentCUDAStream(dev.index()).stream());
  EXPECT_FALSE(ev.done());
  // A query that answered "not ready" must not leave an error behind for PyTorch's launch check.
  at::Tensor y;
  EXPECT_NO_THROW(y = x + 1);
  EXPECT_EQ(y.sum().item<float>(), 32.0f);  // waits for the stream
  EXPECT_TRUE(ev.done());
}
#endif

TEST(DeviceStreams, GatherStreamIsOrderedAfterComputeAndBeforeItsUse) {
  if (!gpu_per_rank()) GTEST_SKIP() << "no CUDA device for each rank";
  const at::Device dev = my_gpu();
  fsdp::DeviceStreams streams(dev);
  streams.capture_compute();
  at::Tensor x = at::zeros({1 << 24}, at::TensorOptions().dtype(at::kFloat).device(dev));
  for (int i = 0; i < 50; ++i) x.add_(1);  // long enough to still be running when the copy is enqueued
  at::Tensor y = at::empty_like(x);
  fsdp::DeviceStreams::Fence f = streams.on_gather_stream([&] { y.copy_(x); });
  streams.compute_waits(f);
  at::Tensor z = y + 0;  // compute stream, after the fence
  EXPECT_EQ(z.min().item<float>(), 50.0f);
  EXPECT_EQ(z.max().item<float>(), 50.0f);
}

// Packed examples on the GPU path (fused attention reading the document mask, fp32): each example's
// loss and gradients as alone, to 1e-5 relative (cuBLAS sums in other orders than the CPU's 1e-6).
TEST(FsdpCuda, PackedExamplesTrainLikeEachExampleAlone) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device for each rank (or built without NCCL)";
  for (const std::string type : {"llama", "mistral", "qwen2"}) {
    SCOPED_TRACE(type);
    const PackedVsAlone r = packed_vs_alone(tiny_spec(type, type == "qwen2"), plan::Attention::Flash,
                                            at::TensorOptions().dtype(at::kFloat).device(at::kCUDA));
    EXPECT_LE(r.loss, 1e-5);
    for (size_t u = 0; u < r.grads.size(); ++u) EXPECT_LE(r.grads[u], 1e-5) << "unit " << u;
  }
}

TEST(FsdpCuda, EveryStageTrainsLikeTheCpuRuntime) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device for each rank (or built without NCCL)";
  auto cpu = mpi_world();
  auto gpu = gpu_world();
  const plan::ModelSpec spec = tiny_spec("llama");
  for (plan::Stage stage : {plan::Stage::Full, plan::Stage::GradOp, plan::Stage::Optimizer, plan::Stage::None}) {
    for (plan::ActivationCheckpointing ck : {plan::ActivationCheckpointing::None, plan::ActivationCheckpointing::first(1),
                                             plan::ActivationCheckpointing::Full}) {
      SCOPED_TRACE(std::string(plan::stage_name(stage)) + " ckpt " + plan::activation_checkpointing_name(ck));
      fsdp::FsdpConfig cfg;
      cfg.stage = stage;
      cfg.activation_checkpointing = ck;
      cfg.max_grad_norm = 1.0;
      // AdamW's first steps move each element by about lr x sign(g): an element whose gradient is
      // within cuBLAS-vs-CPU rounding of 0 could move the other way. A large eps makes the update
      // continuous in g there, so the comparison measures the runtimes, not that discontinuity.
      cfg.optimizer.adamw.eps = 1e-3;
      const Trajectory want = train(*cpu, cfg, spec);
      const Trajectory got = train(*gpu, cfg, spec);
      for (size_t s = 0; s < want.losses.size(); ++s)
        EXPECT_NEAR(got.losses[s], want.losses[s], 1e-4 * std::abs(want.losses[s])) << "step " << s;
      for (size_t u = 0; u < want.master.size(); ++u)
        EXPECT_TRUE(at::allclose(got.master[u], want.master[u], 1e-4, 1e-5))
            << "unit " << u << " max diff " << (got.master[u] - want.master[u]).abs().max().item<double>();
      EXPECT_EQ(got.last.gather_buffer_overflows, 0);
      EXPECT_GE(uint64_t(got.device_peak), got.persistent) << "the caching allocator saw the persistent buffers";
    }
  }
}

// 8-bit AdamW (kernels/adamw_8bit.cu) and SGD (ATen ops) on the GPU follow their CPU loops through
// the sharded runtime: SGD to the same tolerance as AdamW; 8-bit within 1 % of the loss (a moment on
// a code boundary may round to the neighbouring code where FMA contraction differs).
TEST(FsdpCuda, EightBitAdamWAndSgdTrainLikeTheCpuRuntime) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device for each rank (or built without NCCL)";
  auto cpu = mpi_world();
  auto gpu = gpu_world();
  const plan::ModelSpec spec = tiny_spec("llama");
  for (plan::OptimizerKind opt : {plan::OptimizerKind::AdamW8bit, plan::OptimizerKind::SgdMomentum}) {
    for (plan::Stage stage : {plan::Stage::Full, plan::Stage::Optimizer}) {
      SCOPED_TRACE(std::string(plan::optimizer_name(opt)) + " " + plan::stage_name(stage));
      fsdp::FsdpConfig cfg;
      cfg.stage = stage;
      cfg.optimizer.kind = opt;
      cfg.optimizer.adamw.eps = 1e-3;  // as above: an update continuous in g near 0
      const Trajectory want = train(*cpu, cfg, spec);
      const Trajectory got = train(*gpu, cfg, spec);
      const double tol = opt == plan::OptimizerKind::AdamW8bit ? 1e-2 : 1e-4;
      for (size_t s = 0; s < want.losses.size(); ++s)
        EXPECT_NEAR(got.losses[s], want.losses[s], tol * std::abs(want.losses[s])) << "step " << s;
      EXPECT_EQ(got.persistent, want.persistent) << "the same buffers on both devices";
    }
  }
}

// Optimizer offload on the GPU: master and states in pinned host memory, gradients down and
// parameters up on the transfer stream while the host worker updates the previous unit. fp32 follows
// the CPU runtime as closely as the device step does; bf16-mixed follows the GPU's own device step;
// the device holds no master or optimizer bytes and less at its peak, the host exactly the planner's.
TEST(FsdpCuda, OffloadedStepTrainsLikeTheDeviceStep) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device for each rank (or built without NCCL)";
  auto cpu = mpi_world();
  auto gpu = gpu_world();
  const plan::ModelSpec spec = tiny_spec("llama");
  for (plan::Stage stage : {plan::Stage::Full, plan::Stage::GradOp, plan::Stage::Optimizer, plan::Stage::None}) {
    for (plan::Precision precision : {plan::Precision::Fp32, plan::Precision::Bf16Mixed}) {
      SCOPED_TRACE(std::string(plan::stage_name(stage)) + " " + plan::precision_name(precision));
      fsdp::FsdpConfig cfg;
      cfg.stage = stage;
      cfg.precision = precision;
      cfg.max_grad_norm = 1.0;
      cfg.optimizer.adamw.eps = 1e-3;  // as above
      const Trajectory device_step = train(*gpu, cfg, spec);
      const Trajectory want = precision == plan::Precision::Fp32 ? train(*cpu, cfg, spec) : device_step;
      cfg.offload_optimizer = true;
      const Trajectory got = train(*gpu, cfg, spec);
      const double tol = precision == plan::Precision::Fp32 ? 1e-4 : 1e-3;
      for (size_t s = 0; s < want.losses.size(); ++s)
        EXPECT_NEAR(got.losses[s], want.losses[s], tol * std::abs(want.losses[s])) << "step " << s;
      for (size_t u = 0; u < want.master.size(); ++u)
        EXPECT_TRUE(at::allclose(got.master[u], want.master[u], 10 * tol, 1e-5))
            << "unit " << u << " max diff " << (got.master[u] - want.master[u]).abs().max().item<double>();
      EXPECT_EQ(got.breakdown[plan::MemCategory::master] + got.breakdown[plan::MemCategory::optimizer], 0u);
      EXPECT_LT(got.device_peak, device_step.device_peak) << "offloading must lower the device's peak";
      plan::RunSetup s = fsdp::planned_setup(cfg, gpu->size(), 2, 16, plan::Attention::Eager);
      const plan::MemoryBreakdown planned = plan::estimate_memory(spec, s);
      EXPECT_EQ(got.breakdown.host.master, planned.host.master);
      EXPECT_EQ(got.breakdown.host.optimizer, planned.host.optimizer);
      EXPECT_EQ(got.breakdown.host.staging, planned.host.staging);
    }
  }
}

// Without clipping and with non-finite steps aborting, each unit's offloaded step runs during the
// backward (submitted from the autograd thread, its parameters uploaded while backward goes on):
// the same trajectory as the device's step.
TEST(FsdpCuda, OffloadedStepInBackwardTrainsLikeTheDeviceStep) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device for each rank (or built without NCCL)";
  auto gpu = gpu_world();
  const plan::ModelSpec spec = tiny_spec("llama");
  for (plan::Stage stage : {plan::Stage::Full, plan::Stage::None}) {
    SCOPED_TRACE(plan::stage_name(stage));
    fsdp::FsdpConfig cfg;
    cfg.stage = stage;
    cfg.precision = plan::Precision::Fp32;
    cfg.max_grad_norm = 0;         // no global norm to wait for:
    cfg.skip_nonfinite = false;    // the step goes in backward
    cfg.optimizer.adamw.eps = 1e-3;
    const Trajectory want = train(*gpu, cfg, spec);
    cfg.offload_optimizer = true;
    const Trajectory got = train(*gpu, cfg, spec);
    for (size_t s = 0; s < want.losses.size(); ++s) EXPECT_NEAR(got.losses[s], want.losses[s], 1e-4 * std::abs(want.losses[s])) << "step " << s;
    for (size_t u = 0; u < want.master.size(); ++u)
      EXPECT_TRUE(at::allclose(got.master[u], want.master[u], 1e-3, 1e-5))
          << "unit " << u << " max diff " << (got.master[u] - want.master[u]).abs().max().item<double>();
  }
}

TEST(FsdpCuda, Bf16MixedStaysCloseToFp32) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device for each rank (or built without NCCL)";
  auto cpu = mpi_world();
  auto gpu = gpu_world();
  const plan::ModelSpec spec = tiny_spec("llama");
  fsdp::FsdpConfig cfg;
  const Trajectory want = train(*cpu, cfg, spec);
  cfg.precision = plan::Precision::Bf16Mixed;
  const Trajectory got = train(*gpu, cfg, spec);
  for (size_t s = 0; s < want.losses.size(); ++s)
    EXPECT_NEAR(got.losses[s], want.losses[s], 0.02 * std::abs(want.losses[s])) << "step " << s;
}

// What forward leaves for backward on the GPU, through each attention kernel path, is what the
// planner counts (to 2%): grouped k/v heads read in place by the flash kernel (bf16), expanded for
// fp32 (the memory-efficient kernel; grouped heads in fp32 would fall back to SDPA's math kernel,
// which keeps the probabilities: +13% here), and a sliding window shorter than the sequence (one
// additive mask shared by the layers; one per layer would be +6% here). bench/RESULTS-gpu.md.
TEST(FsdpCuda, FlashActivationsMatchThePlannerOnEveryKernelPath) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device for each rank (or built without NCCL)";
  auto gpu = gpu_world();
  for (int64_t window : {0, 64}) {
    const plan::ModelSpec spec = grouped_attention_spec(window, 256, 512, 512);
    for (plan::Precision precision : {plan::Precision::Fp32, plan::Precision::Bf16Mixed}) {
      SCOPED_TRACE(spec.model_type + " " + plan::precision_name(precision));
      model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat), plan::Attention::Flash);
      randomize(m, 3, 0.05);
      fsdp::FsdpConfig cfg;
      cfg.device = gpu->device();
      cfg.precision = precision;
      fsdp::FsdpModel f(m, *gpu, cfg);
      at::Tensor ids = at::randint(0, spec.vocab, {1, 256}, at::kLong);
      const fsdp::StepResult r = f.train_step({{ids, ids}}, 1e-3);
      plan::RunSetup s;
      s.shard_group = gpu->size();
      s.precision = precision;
      s.attention = plan::Attention::Flash;
      s.micro_batch = 1;
      s.seq_len = 256;
      const double want = plan::saved_activation_bytes(spec, s);
      EXPECT_NEAR(double(r.activation_bytes), want, 0.02 * want) << "measured " << r.activation_bytes;
      if (gpu->rank() == 0)
        std::printf("activations on %s: measured %lld B, planned %.0f B (%+.2f%%)\n", plan::precision_name(precision),
                    static_cast<long long>(r.activation_bytes), want, 100.0 * (double(r.activation_bytes) / want - 1));
    }
  }
}
