// DeviceStreams — where a unit's collectives run relative to its compute
// (docs/runtime.md#streams-and-overlap-on-a-gpu). Private to fsdp/.
//
// On a CUDA device the all-gathers run on their own stream and the reduce-scatters on another.
// Each collective starts after everything enqueued on the compute stream so far (so the gather buffer it
// fills has been read for the last time, or the gradient it reduces has been computed), and the
// compute stream waits for a collective's Fence only where it uses the result — so the gather of
// the next unit runs while this unit computes. No record_stream: a tensor the reduce stream reads
// is kept by the caller until the compute stream has waited for the fence (FsdpModel retires it).
// On the CPU every collective is synchronous: the work runs at once and fences are empty.
//
//   Fence f = streams.on_gather_stream([&] { comm.all_gather_into(full, shard); });
//   ... streams.compute_waits(f);  // before the first kernel that reads `full`
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <memory>

namespace ftdist::fsdp {

class DeviceStreams {
 public:
  struct FenceImpl;
  using Fence = std::shared_ptr<const FenceImpl>;  // empty: nothing to wait for

  explicit DeviceStreams(at::Device device);
  ~DeviceStreams();
  DeviceStreams(const DeviceStreams&) = delete;
  DeviceStreams& operator=(const DeviceStreams&) = delete;

  bool gpu() const { return gpu_; }
  // Takes the stream current now as the compute stream (called at the start of each forward: the
  // autograd engine runs each backward node on the stream its forward ran on).
  void capture_compute();
  // Runs `collective` (which enqueues on the current stream) with the gather / reduce stream
  // current, after the compute stream's work so far; the fence marks its end.
  Fence on_gather_stream(const std::function<void()>& collective);
  Fence on_reduce_stream(const std::function<void()>& collective);
  // Work enqueued on the compute stream from now on waits for `fence` (no host wait).
  void compute_waits(const Fence& fence);

 private:
  struct Impl;
  Fence run_after_compute(bool gather, const std::function<void()>& collective);
  bool gpu_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ftdist::fsdp
