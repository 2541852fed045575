// OptimizerOffload — the optimizer step of units whose master and optimizer states live in host
// memory (docs/runtime.md#optimizer-offload). Private to fsdp/.
//
// A unit's step is submitted here with its reduced gradient (on the runtime's device): the gradient
// is copied into a free staging slot — on a GPU on a transfer stream, after the compute stream's work
// so far, and the compute stream then waits for the copy, so nothing enqueued later overwrites the
// gradient under it — and a host worker thread steps the unit's optimizer over the slot (the CPU loop,
// at::parallel_for) and copies the new parameters to the unit's device shard: the master itself when
// its dtype is the parameters' (fp32, bf16-pure), else converted into the slot's parameter buffer
// first (bf16-mixed). plan::kOffloadSlots slots, each of the largest unit's state length: while the
// host updates one unit the next unit's gradient comes down. On the CPU the copies are plain copies
// and the worker the same thread, so the same path runs and is tested there.
//
//   OptimizerOffload offload(device, slot_numel, grad_dtype, param_dtype, master_dtype);
//   offload.submit(u, grad, *opt, master, params, lr);  // returns once the gradient's copy is enqueued
//   offload.wait(u);  // the unit's parameters are on the device: gather or read them now
//
// A failure on the worker (a CUDA error, an allocation) is rethrown by the next submit or wait.
#pragma once

#include <ATen/ATen.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "ftdist/optim/optimizer.h"

namespace ftdist::fsdp {

class OptimizerOffload {
 public:
  // slot_numel: the largest unit's state length; grad_dtype: what the units' steps read;
  // param_dtype / master_dtype: the device parameters' and the host master's (a slot gets a
  // parameter buffer only where they differ).
  OptimizerOffload(at::Device device, int64_t slot_numel, at::ScalarType grad_dtype, at::ScalarType param_dtype,
                   at::ScalarType master_dtype);
  ~OptimizerOffload();  // finishes what was submitted
  OptimizerOffload(const OptimizerOffload&) = delete;
  OptimizerOffload& operator=(const OptimizerOffload&) = delete;

  // grad: (n) grad_dtype on the device; master: (n) host, the optimizer's; params: (n) param_dtype
  // on the device, written once the step is done. Blocks while every slot is in use.
  void submit(size_t unit, const at::Tensor& grad, optim::Optimizer& opt, const at::Tensor& master,
              const at::Tensor& params, double lr);
  void wait(size_t unit);  // unit's last submitted step is done and its parameters are on the device
  void wait_all();
  // Host bytes of the staging slots (plan::OffloadHostBytes::staging).
  uint64_t staging_bytes() const;

 private:
  struct Slot;
  struct Task {
    size_t unit;
    int slot;
    uint64_t seq;
    optim::Optimizer* opt;
    at::Tensor grad, master, params;  // grad kept alive until its copy is done
    double lr;
  };
  int acquire_slot(std::unique_lock<std::mutex>& lock);
  void run();  // the worker
  void step(const Task& t);
  void rethrow_failure();  // with mu_ held

  at::Device device_;
  bool gpu_;
  int64_t slot_numel_;
  at::ScalarType grad_dtype_;
  std::vector<std::unique_ptr<Slot>> slots_;
  struct Streams;
  std::unique_ptr<Streams> streams_;  // GPU: the transfer stream

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  uint64_t submitted_ = 0, completed_ = 0;  // steps, in submission order (the worker keeps it)
  std::map<size_t, uint64_t> last_seq_;     // per unit: its last submitted step
  std::exception_ptr failure_;
  bool stop_ = false;
  // Destroyed while an error unwinds: the worker drops what is queued and stops waiting for the
  // device (whose work may wait on a collective a dead peer never joins), so the job can abort.
  std::atomic<bool> abandoned_{false};
  std::thread worker_;  // last: started once everything above exists
};

}  // namespace ftdist::fsdp
