#include "device_streams.h"

#include "ftdist/core/check.h"
#ifdef FTDIST_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "ftdist/core/cuda_event.h"
#endif

namespace ftdist::fsdp {

#ifdef FTDIST_WITH_CUDA
struct DeviceStreams::FenceImpl {
  CudaEvent event;
};

struct DeviceStreams::Impl {
  explicit Impl(at::Device d)
      : device(d.index()),
        compute(c10::cuda::getCurrentCUDAStream(d.index())),
        gather(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, d.index())),
        reduce(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, d.index())) {}
  c10::DeviceIndex device;
  c10::cuda::CUDAStream compute, gather, reduce;
};
#else
struct DeviceStreams::FenceImpl {};
struct DeviceStreams::Impl {};
#endif

DeviceStreams::DeviceStreams(at::Device device) : gpu_(device.is_cuda()) {
#ifdef FTDIST_WITH_CUDA
  if (gpu_) {
    FT_CHECK(device.has_index(), ErrorKind::Internal, "DeviceStreams needs an indexed CUDA device, got " << device);
    impl_ = std::make_unique<Impl>(device);
  }
#else
  FT_CHECK(!gpu_, ErrorKind::Internal, "this ftdist was built without CUDA (FTDIST_CUDA=OFF); device " << device);
#endif
}

DeviceStreams::~DeviceStreams() = default;

void DeviceStreams::capture_compute() {
#ifdef FTDIST_WITH_CUDA
  if (gpu_) impl_->compute = c10::cuda::getCurrentCUDAStream(impl_->device);
#endif
}

DeviceStreams::Fence DeviceStreams::run_after_compute(bool gather, const std::function<void()>& collective) {
#ifdef FTDIST_WITH_CUDA
  if (gpu_) {
    c10::cuda::CUDAStream side = gather ? impl_->gather : impl_->reduce;
    CudaEvent before;
    before.record(impl_->compute.stream());
    before.block(side.stream());
    {
      c10::cuda::CUDAStreamGuard guard(side);
      collective();
    }
    auto fence = std::make_shared<FenceImpl>();
    fence->event.record(side.stream());
    return fence;
  }
#endif
  (void)gather;
  collective();
  return nullptr;
}

DeviceStreams::Fence DeviceStreams::on_gather_stream(const std::function<void()>& collective) {
  return run_after_compute(true, collective);
}

DeviceStreams::Fence DeviceStreams::on_reduce_stream(const std::function<void()>& collective) {
  return run_after_compute(false, collective);
}

void DeviceStreams::compute_waits(const Fence& fence) {
#ifdef FTDIST_WITH_CUDA
  if (gpu_ && fence) fence->event.block(impl_->compute.stream());
#else
  (void)fence;
#endif
}

}  // namespace ftdist::fsdp
