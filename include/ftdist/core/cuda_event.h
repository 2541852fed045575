// CudaEvent — an owned CUDA event (timing disabled: it only marks a point in a stream), for the
// code that orders streams against each other or polls for completion (nccl backend, fsdp streams).
// Only for builds with CUDA (FTDIST_WITH_CUDA).
#pragma once

#include <cuda_runtime_api.h>

#include "ftdist/core/cuda_check.h"

namespace ftdist {

// Whether the work before `event` has finished (no wait). A "not ready" answer is also recorded as
// the thread's last CUDA error, which the next kernel launch check (PyTorch's included) would then
// report as a failure: it is cleared here.
inline bool cuda_event_done(cudaEvent_t event) {
  const cudaError_t q = cudaEventQuery(event);
  if (q == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return false;
  }
  FT_CUDA_CHECK(q);
  return true;
}

class CudaEvent {
 public:
  CudaEvent() { FT_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming)); }
  ~CudaEvent() {
    if (event_) cudaEventDestroy(event_);
  }
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;

  cudaEvent_t get() const { return event_; }
  void record(cudaStream_t stream) { FT_CUDA_CHECK(cudaEventRecord(event_, stream)); }
  // Work enqueued on `stream` from now on starts after this event's point (no host wait).
  void block(cudaStream_t stream) const { FT_CUDA_CHECK(cudaStreamWaitEvent(stream, event_, 0)); }
  bool done() const { return cuda_event_done(event_); }

 private:
  cudaEvent_t event_ = nullptr;
};

}  // namespace ftdist
