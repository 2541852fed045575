// CudaEvent — an owned CUDA event (timing disabled: it only marks a point in a stream), for the
// code that orders streams against each other or polls for completion (nccl backend, fsdp streams).
// Only for builds with CUDA (FTDIST_WITH_CUDA).
#pragma once

#include <cuda_runtime_api.h>

#include "ftdist/core/cuda_check.h"

namespace ftdist {

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
  bool done() const {
    cudaError_t q = cudaEventQuery(event_);
    if (q == cudaErrorNotReady) return false;
    FT_CUDA_CHECK(q);
    return true;
  }

 private:
  cudaEvent_t event_ = nullptr;
};

}  // namespace ftdist
