#include "optimizer_offload.h"

#include <chrono>

#include "ftdist/core/check.h"
#include "ftdist/comm/communicator.h"
#include "ftdist/core/dtype.h"
#include "ftdist/fsdp/device_memory.h"
#include "ftdist/plan/memory_model.h"
#ifdef FTDIST_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "ftdist/core/cuda_event.h"
#endif

namespace ftdist::fsdp {

struct OptimizerOffload::Slot {
  at::Tensor grad;   // (slot_numel) grad dtype, host (pinned on a GPU run)
  at::Tensor param;  // (slot_numel) the parameters' dtype, host: bf16-mixed only (else undefined)
  bool busy = false;
#ifdef FTDIST_WITH_CUDA
  std::unique_ptr<CudaEvent> grad_copied, params_copied;  // GPU: the slot's copies on the transfer stream
#endif
};

#ifdef FTDIST_WITH_CUDA
struct OptimizerOffload::Streams {
  explicit Streams(at::Device d) : transfer(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, d.index())) {}
  c10::cuda::CUDAStream transfer;
};

namespace {
// The event's point, polled rather than cudaEventSynchronize'd: a failing run (`abandoned`) stops
// waiting, and so does a wait past the communicators' timeout (the copy follows the unit's
// reduction, which a dead or hung peer never finishes): the step fails, and the trainer with it.
void wait_unless_abandoned(const CudaEvent& event, const std::atomic<bool>& abandoned) {
  static const double timeout_s = comm::comm_options_from_env().timeout_s;
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    const cudaError_t r = cudaEventQuery(event.get());
    if (r == cudaSuccess) return;
    if (r != cudaErrorNotReady) FT_CUDA_CHECK(r);
    FT_CHECK(!abandoned, ErrorKind::Internal, "optimizer offload: the wait was abandoned (the run is failing)");
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    FT_CHECK(timeout_s <= 0 || waited <= timeout_s, ErrorKind::Comm,
             "optimizer offload: a unit's gradient did not reach the host within " << timeout_s << " s (FTDIST_COMM_TIMEOUT_S): "
             "the reduction before it never finished; a peer rank has probably died or hung");
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}
}  // namespace
#else
struct OptimizerOffload::Streams {};
#endif

OptimizerOffload::OptimizerOffload(at::Device device, int64_t slot_numel, at::ScalarType grad_dtype,
                                   at::ScalarType param_dtype, at::ScalarType master_dtype)
    : device_(device), gpu_(device.is_cuda()), slot_numel_(slot_numel), grad_dtype_(grad_dtype) {
  FT_CHECK(slot_numel >= 0, ErrorKind::Internal, "OptimizerOffload: slot length " << slot_numel);
  FT_CHECK(device.is_cpu() || device.has_index(), ErrorKind::Internal, "OptimizerOffload needs an indexed CUDA device, got " << device);
#ifndef FTDIST_WITH_CUDA
  FT_CHECK(!gpu_, ErrorKind::Internal, "this ftdist was built without CUDA (FTDIST_CUDA=OFF); device " << device);
#else
  if (gpu_) streams_ = std::make_unique<Streams>(device);
#endif
  for (int k = 0; k < plan::kOffloadSlots; ++k) {
    auto s = std::make_unique<Slot>();
    s->grad = host_tensor(slot_numel, grad_dtype, gpu_);
    if (param_dtype != master_dtype) s->param = host_tensor(slot_numel, param_dtype, gpu_);
#ifdef FTDIST_WITH_CUDA
    if (gpu_) {
      s->grad_copied = std::make_unique<CudaEvent>();
      s->params_copied = std::make_unique<CudaEvent>();
    }
#endif
    slots_.push_back(std::move(s));
  }
  worker_ = std::thread([this] { run(); });
}

OptimizerOffload::~OptimizerOffload() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    if (std::uncaught_exceptions() > 0) {  // the run is failing: nothing more is stepped
      abandoned_ = true;
      queue_.clear();
    }
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

uint64_t OptimizerOffload::staging_bytes() const {
  uint64_t b = 0;
  for (const auto& s : slots_) b += uint64_t(s->grad.nbytes()) + (s->param.defined() ? uint64_t(s->param.nbytes()) : 0);
  return b;
}

void OptimizerOffload::rethrow_failure() {
  if (failure_) std::rethrow_exception(failure_);
}

int OptimizerOffload::acquire_slot(std::unique_lock<std::mutex>& lock) {
  for (;;) {
    rethrow_failure();
    for (size_t k = 0; k < slots_.size(); ++k)
      if (!slots_[k]->busy) {
        slots_[k]->busy = true;
        return int(k);
      }
    cv_.wait(lock);
  }
}

void OptimizerOffload::submit(size_t unit, const at::Tensor& grad, optim::Optimizer& opt, const at::Tensor& master,
                              const at::Tensor& params, double lr) {
  const int64_t n = master.numel();
  FT_CHECK(grad.numel() == n && params.numel() == n && n <= slot_numel_ && grad.is_contiguous() && params.is_contiguous(),
           ErrorKind::Internal, "offloaded step of unit " << unit << ": gradient " << grad.numel() << ", master " << n
                                                        << ", parameters " << params.numel() << " elements, slots of " << slot_numel_);
  FT_CHECK(grad.scalar_type() == grad_dtype_ && master.device().is_cpu() && params.device() == device_, ErrorKind::Internal,
           "offloaded step of unit " << unit << ": a " << dtype_name(grad.scalar_type()) << " gradient (slots hold "
                                     << dtype_name(grad_dtype_) << "), master on " << master.device() << ", parameters on "
                                     << params.device() << " (runtime on " << device_ << ")");
  int k;
  {
    std::unique_lock<std::mutex> lock(mu_);
    k = acquire_slot(lock);
  }
  Slot& s = *slots_[size_t(k)];
  at::Tensor host_grad = s.grad.narrow(0, 0, n);
  try {
#ifdef FTDIST_WITH_CUDA
  if (gpu_) {
    // After what the compute stream has enqueued (the reduction that produced the gradient), and
    // before anything it enqueues from now on (the next step's zeroing of the gradient shard).
    c10::cuda::CUDAGuard guard(device_);
    c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream(device_.index());
    CudaEvent before;
    before.record(compute.stream());
    before.block(streams_->transfer.stream());
    {
      c10::cuda::CUDAStreamGuard on_transfer(streams_->transfer);
      host_grad.copy_(grad, /*non_blocking=*/true);
    }
    s.grad_copied->record(streams_->transfer.stream());
    s.grad_copied->block(compute.stream());
  } else
#endif
  {
    host_grad.copy_(grad);
  }
  } catch (...) {  // the slot was never handed to the worker
    {
      std::lock_guard<std::mutex> lock(mu_);
      s.busy = false;
    }
    cv_.notify_all();
    throw;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t seq = ++submitted_;
    last_seq_[unit] = seq;
    queue_.push_back(Task{unit, k, seq, &opt, gpu_ ? grad : at::Tensor(), master, params, lr});
  }
  cv_.notify_all();
}

void OptimizerOffload::step(const Task& t) {
  Slot& s = *slots_[size_t(t.slot)];
  const int64_t n = t.master.numel();
#ifdef FTDIST_WITH_CUDA
  if (gpu_) wait_unless_abandoned(*s.grad_copied, abandoned_);  // the gradient is in the slot
#endif
  t.opt->step(s.grad.narrow(0, 0, n), t.lr);
  at::Tensor up = t.master;
  if (s.param.defined()) up = s.param.narrow(0, 0, n).copy_(t.master);  // fp32 master -> bf16 parameters
#ifdef FTDIST_WITH_CUDA
  if (gpu_) {
    c10::cuda::CUDAStreamGuard on_transfer(streams_->transfer);
    t.params.copy_(up, /*non_blocking=*/true);
    s.params_copied->record(streams_->transfer.stream());
    wait_unless_abandoned(*s.params_copied, abandoned_);  // the slot (or the master) is read: free again
    return;
  }
#endif
  t.params.copy_(up);
}

void OptimizerOffload::run() {
#ifdef FTDIST_WITH_CUDA
  std::unique_ptr<c10::cuda::CUDAGuard> device;
  if (gpu_) device = std::make_unique<c10::cuda::CUDAGuard>(device_);
#endif
  for (;;) {
    Task t;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left
      t = std::move(queue_.front());
      queue_.pop_front();
    }
    std::exception_ptr failed;
    bool skip;
    {
      std::lock_guard<std::mutex> lock(mu_);
      skip = failure_ != nullptr;  // after a failure the rest is not stepped: the run is ending
    }
    if (!skip) {
      try {
        step(t);
      } catch (...) {
        failed = std::current_exception();
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (failed && !failure_) failure_ = failed;
      slots_[size_t(t.slot)]->busy = false;
      completed_ = t.seq;
    }
    cv_.notify_all();
  }
}

void OptimizerOffload::wait(size_t unit) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = last_seq_.find(unit);
  const uint64_t seq = it == last_seq_.end() ? 0 : it->second;
  cv_.wait(lock, [&] { return completed_ >= seq; });
  rethrow_failure();
}

void OptimizerOffload::wait_all() {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t seq = submitted_;
  cv_.wait(lock, [&] { return completed_ >= seq; });
  rethrow_failure();
}

}  // namespace ftdist::fsdp
