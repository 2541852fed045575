// GatherBuffers — the preallocated buffers that gathered (unsharded) flat parameters live in
// (docs/runtime.md#gather-buffers-and-prefetch). `count` gather buffers of `bytes` each, allocated once on the
// runtime's device, so the memory of gathered parameters is fixed from the start and equals the
// planner's unsharded_params. A unit takes a gather buffer when it is gathered and gives it back when it
// reshards. Asking when every gather buffer is taken is a runtime bug against the planner's count: the
// unit then gets memory of its own from the allocator and the pool counts an overflow (reported in
// StepResult and tested to stay 0). Private to fsdp/.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace ftdist::fsdp {

class GatherBuffers {
 public:
  GatherBuffers(std::string name, int count, int64_t bytes, at::Device device);

  // A free gather buffer's index, or -1 when none is free or the request is larger than a gather buffer (overflow).
  int acquire(int64_t bytes);
  void release(int buffer);
  void* data(int buffer) const { return buffers_.at(size_t(buffer)).data_ptr(); }

  int count() const { return int(buffers_.size()); }
  int64_t buffer_bytes() const { return bytes_; }
  int64_t overflows() const { return overflows_; }

 private:
  std::string name_;
  int64_t bytes_;
  std::vector<at::Tensor> buffers_;
  std::vector<bool> taken_;
  int64_t overflows_ = 0;
};

}  // namespace ftdist::fsdp
