// The memory the runtime's device holds, measured the way each device can: on the CPU by the
// counting allocator (CpuMemoryCounter, when installed; else nothing is measured), on a CUDA device
// by the caching allocator's statistics (bytes allocated to tensors, not the reserved pool).
//
//   reset_device_memory_peak(dev); ...step...; int64_t peak = device_memory_peak(dev);
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace ftdist::fsdp {

bool device_memory_measured(at::Device device);    // false: current/peak are 0
int64_t device_memory_current(at::Device device);
int64_t device_memory_peak(at::Device device);     // since the last reset
void reset_device_memory_peak(at::Device device);
// The peak since the previous call (or the phase reset), and a new phase from here: the step
// timeline's per-phase peaks (CPU: the counting allocator's phase peak; CUDA: the caching
// allocator's, whose reset leaves device_memory_peak() and the reserved peak intact).
int64_t take_device_memory_phase_peak(at::Device device);
// The device's whole memory (CUDA: the GPU's global memory; CPU: 0, not known here).
int64_t device_memory_capacity(at::Device device);
// CUDA: the caching allocator's pool (reserved bytes), which is what the GPU has given up: its peak
// since the last reset_device_memory_peak. CPU: the current counted bytes.
int64_t device_memory_reserved_peak(at::Device device);
// CUDA: the bytes in use on the whole GPU (cudaMemGetInfo: total - free), which is the pool plus the
// CUDA context, NCCL's buffers and every other process on the GPU. CPU: 0, not known here.
int64_t device_memory_used(at::Device device);
// Makes an out-of-memory error on `device` record the runtime's current category first
// (CategoryScope::note_failure): the counting CPU allocator does that itself, a CUDA device gets
// the caching allocator's out-of-memory observer. Idempotent.
void watch_device_out_of_memory(at::Device device);
// Hands the pinned host memory PyTorch keeps cached for reuse back to the system (after loading,
// whose staging buffer would otherwise stay pinned for the whole run). No-op without CUDA.
void empty_pinned_host_cache();
// A flat host tensor of `numel` elements for the runtime's long-lived host buffers (optimizer
// offload). pinned (a CUDA runtime): page-locked with cudaHostRegister over exactly its pages, so
// copies to and from the GPU run asynchronously, without the power-of-two rounding of PyTorch's
// pinned allocator (whose cached blocks could double what the planner counts); unregistered and
// freed with the tensor. Not pinned: an ordinary CPU tensor. Uninitialized either way.
at::Tensor host_tensor(int64_t numel, at::ScalarType dtype, bool pinned);

}  // namespace ftdist::fsdp
