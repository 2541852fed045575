#include "ftdist/fsdp/device_memory.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "ftdist/core/check.h"
#include "ftdist/core/log.h"
#include "ftdist/fsdp/memory_category.h"
#include "ftdist/fsdp/memory_counter.h"
#ifdef FTDIST_WITH_CUDA
#include <ATen/Context.h>
#include <ATen/core/CachingHostAllocator.h>
#include <c10/cuda/CUDACachingAllocator.h>

#include "ftdist/core/cuda_check.h"
#endif

namespace ftdist::fsdp {
namespace {
#ifdef FTDIST_WITH_CUDA
c10::CachingDeviceAllocator::DeviceStats cuda_stats(at::Device d) {
  return c10::cuda::CUDACachingAllocator::getDeviceStats(d.has_index() ? d.index() : 0);
}
constexpr size_t kAggregate = size_t(c10::CachingAllocator::StatType::AGGREGATE);
// The caching allocator keeps one peak per device; a phase's peak (take_device_memory_phase_peak)
// resets it, so the peaks since the last reset_device_memory_peak() carry here: the allocated and
// the reserved bytes' maxima over the phases taken since. (Indexed by device; the runtime's thread.)
struct Carried {
  int64_t allocated = 0, reserved = 0;
};
Carried& carried(at::Device d) {
  static Carried per_device[64];
  return per_device[std::min<int>(d.has_index() ? d.index() : 0, 63)];
}
#endif
void check_supported(at::Device d) {
  FT_CHECK(d.is_cpu() || d.is_cuda(), ErrorKind::Internal, "no memory statistics for device " << d);
#ifndef FTDIST_WITH_CUDA
  FT_CHECK(!d.is_cuda(), ErrorKind::Internal, "this ftdist was built without CUDA (FTDIST_CUDA=OFF)");
#else
  // The caching allocator's per-device state exists only once CUDA is initialized (lazily, by the
  // first CUDA tensor): before that its statistics calls reject the device and an OOM observer
  // attached would be dropped. Initializing here makes both independent of what ran first.
  if (d.is_cuda()) at::globalContext().lazyInitDevice(c10::DeviceType::CUDA);
#endif
}
}  // namespace

bool device_memory_measured(at::Device d) {
  check_supported(d);
  return d.is_cuda() || CpuMemoryCounter::installed();
}

int64_t device_memory_current(at::Device d) {
  check_supported(d);
#ifdef FTDIST_WITH_CUDA
  if (d.is_cuda()) return cuda_stats(d).allocated_bytes[kAggregate].current;
#endif
  return CpuMemoryCounter::installed() ? CpuMemoryCounter::install().current() : 0;
}

int64_t device_memory_peak(at::Device d) {
  check_supported(d);
#ifdef FTDIST_WITH_CUDA
  if (d.is_cuda()) return std::max(carried(d).allocated, cuda_stats(d).allocated_bytes[kAggregate].peak);
#endif
  return CpuMemoryCounter::installed() ? CpuMemoryCounter::install().peak() : 0;
}

int64_t take_device_memory_phase_peak(at::Device d) {
  check_supported(d);
#ifdef FTDIST_WITH_CUDA
  if (d.is_cuda()) {
    const auto stats = cuda_stats(d);
    const int64_t peak = stats.allocated_bytes[kAggregate].peak;
    Carried& c = carried(d);
    c.allocated = std::max(c.allocated, peak);
    c.reserved = std::max(c.reserved, stats.reserved_bytes[kAggregate].peak);
    c10::cuda::CUDACachingAllocator::resetPeakStats(d.has_index() ? d.index() : 0);
    return peak;
  }
#endif
  if (!CpuMemoryCounter::installed()) return 0;
  CpuMemoryCounter& counter = CpuMemoryCounter::install();
  const int64_t peak = counter.phase_peak();
  counter.reset_phase_peak();
  return peak;
}

void reset_device_memory_peak(at::Device d) {
  check_supported(d);
#ifdef FTDIST_WITH_CUDA
  if (d.is_cuda()) {
    c10::cuda::CUDACachingAllocator::resetPeakStats(d.has_index() ? d.index() : 0);
    carried(d) = {};
    return;
  }
#endif
  if (CpuMemoryCounter::installed()) CpuMemoryCounter::install().reset_peak();
}

int64_t device_memory_reserved_peak(at::Device d) {
  check_supported(d);
#ifdef FTDIST_WITH_CUDA
  if (d.is_cuda()) return std::max(carried(d).reserved, cuda_stats(d).reserved_bytes[kAggregate].peak);
#endif
  return device_memory_current(d);
}

int64_t device_memory_used(at::Device d) {
  check_supported(d);
#ifdef FTDIST_WITH_CUDA
  if (d.is_cuda()) {
    size_t free_bytes = 0, total_bytes = 0;
    FT_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    return int64_t(total_bytes - free_bytes);
  }
#endif
  return 0;
}

int64_t device_memory_capacity(at::Device d) {
  check_supported(d);
#ifdef FTDIST_WITH_CUDA
  if (d.is_cuda()) {
    cudaDeviceProp prop{};
    FT_CUDA_CHECK(cudaGetDeviceProperties(&prop, d.has_index() ? d.index() : 0));
    return int64_t(prop.totalGlobalMem);
  }
#endif
  return 0;
}

void watch_device_out_of_memory(at::Device d) {
  check_supported(d);
#ifdef FTDIST_WITH_CUDA
  static std::once_flag once;
  if (d.is_cuda())
    std::call_once(once, [] {
      try {
        c10::cuda::CUDACachingAllocator::attachOutOfMemoryObserver(
            [](int64_t /*device*/, size_t /*allocated*/, size_t /*total*/, size_t /*free*/) { CategoryScope::note_failure(); });
      } catch (const c10::Error& e) {  // e.g. PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync has no observers
        FT_LOG_WARN("a CUDA out-of-memory error will not name the memory category: " << e.what_without_backtrace());
      }
    });
#endif
}

at::Tensor host_tensor(int64_t numel, at::ScalarType dtype, bool pinned) {
  const at::TensorOptions cpu = at::TensorOptions().dtype(dtype).device(at::kCPU);
  if (!pinned) return at::empty({numel}, cpu);
#ifdef FTDIST_WITH_CUDA
  constexpr size_t kPage = 4096;
  const size_t bytes = std::max<size_t>(kPage, (size_t(numel) * c10::elementSize(dtype) + kPage - 1) / kPage * kPage);
  void* p = nullptr;
  if (posix_memalign(&p, kPage, bytes) != 0 || !p) throw c10::OutOfMemoryError(
      {__func__, __FILE__, uint32_t(__LINE__)}, "host_tensor: cannot allocate " + std::to_string(bytes) + " bytes of host memory");
  const cudaError_t err = cudaHostRegister(p, bytes, cudaHostRegisterDefault);
  if (err != cudaSuccess) {
    std::free(p);
    FT_CUDA_CHECK(err);
  }
  return at::from_blob(p, {numel}, [](void* q) { (void)cudaHostUnregister(q); std::free(q); }, cpu);
#else
  FT_CHECK(false, ErrorKind::Internal, "pinned host memory needs ftdist built with CUDA (FTDIST_CUDA)");
  return {};
#endif
}

void empty_pinned_host_cache() {
#ifdef FTDIST_WITH_CUDA
  if (at::HostAllocator* host = at::getHostAllocator(at::kCUDA)) host->empty_cache();
#endif
}

}  // namespace ftdist::fsdp
