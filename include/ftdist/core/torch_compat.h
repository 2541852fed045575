// Every difference between LibTorch versions lives here, and only here (docs/architecture.md#code-conventions).
// ftdist is built and tested against the LibTorch of PyTorch 2.11 (scripts/setup.sh pins it).
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Flags.h>
#include <torch/version.h>  // TORCH_VERSION_MAJOR / TORCH_VERSION_MINOR

#define FTDIST_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

static_assert(FTDIST_TORCH_AT_LEAST(2, 1), "ftdist needs LibTorch 2.1 or newer");

C10_DECLARE_bool(caffe2_use_fatal_for_enforce);

namespace ftdist::compat {

// Fused scaled-dot-product attention (flash / memory-efficient kernels on GPU, math on CPU) where
// this LibTorch has it; `available_sdpa` says whether it does. q (b, hq, s, d), k/v (b, hkv, s_k, d);
// `mask` (s, s_k) bool (true = attend) or undefined with `causal`. hkv < hq (grouped-query
// attention: query head i reads kv head i / (hq / hkv)) needs `sdpa_gqa`: the kernels then read the
// shared k/v heads in place, and autograd keeps them unexpanded.
constexpr bool available_sdpa = FTDIST_TORCH_AT_LEAST(2, 0);
constexpr bool sdpa_gqa = FTDIST_TORCH_AT_LEAST(2, 5);
inline at::Tensor sdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                       bool causal, double scale) {
#if FTDIST_TORCH_AT_LEAST(2, 5)
  return at::scaled_dot_product_attention(q, k, v, mask.defined() ? c10::optional<at::Tensor>(mask) : c10::nullopt, 0.0,
                                          causal && !mask.defined(), scale, /*enable_gqa=*/k.size(1) != q.size(1));
#elif FTDIST_TORCH_AT_LEAST(2, 1)
  return at::scaled_dot_product_attention(q, k, v, mask.defined() ? c10::optional<at::Tensor>(mask) : c10::nullopt, 0.0,
                                          causal && !mask.defined(), scale);
#else
  static_assert(FTDIST_TORCH_AT_LEAST(2, 1), "the scale argument of scaled_dot_product_attention needs LibTorch 2.1");
  return at::Tensor();
#endif
}

// LibTorch builds differ in whether a failed enforce (e.g. the CPU allocator's "can't allocate")
// aborts the process (FLAGS_caffe2_use_fatal_for_enforce) or throws c10::Error. ftdist wants the
// exception everywhere, so that an allocation failure becomes an error naming what did not fit.
inline void throw_on_enforce_failures() { FLAGS_caffe2_use_fatal_for_enforce = false; }
// The CPU allocator's failure is a plain c10::Error (not OutOfMemoryError) in LibTorch 2.x; its
// message is how to tell it from other errors.
inline bool is_host_allocation_failure(const c10::Error& e) {
  return std::string(e.what_without_backtrace()).find("can't allocate memory") != std::string::npos;
}

// Tensor::is_contiguous() plus "dense and in row-major order", which is what the communication
// layer hands to MPI/NCCL as a raw pointer.
inline bool is_dense_contiguous(const at::Tensor& t) {
  return t.is_contiguous() && !t.is_sparse() && t.layout() == at::kStrided;
}

// Releases the memory behind `t`'s storage while keeping the StorageImpl (and so every view and
// every tensor autograd saved that points at it) alive; refill_storage() gives it fresh memory of
// the same size. This is how an unsharded flat parameter is freed after forward and gathered again
// before backward (docs/runtime.md#units-and-flat-parameters).
inline void release_storage(const at::Tensor& t) {
  c10::StorageImpl* s = t.storage().unsafeGetStorageImpl();
  s->set_data_ptr_noswap(at::DataPtr(nullptr, s->device()));
  s->set_nbytes(0);
}
inline bool storage_released(const at::Tensor& t) { return t.storage().nbytes() == 0; }
inline void refill_storage(const at::Tensor& t, size_t nbytes) {
  c10::StorageImpl* s = t.storage().unsafeGetStorageImpl();
  s->set_data_ptr_noswap(s->allocator()->allocate(nbytes));
  s->set_nbytes(nbytes);
}

// A 1-D tensor of `numel` elements whose storage is sized for them but holds no memory: views of
// it can be taken (bind the model's parameters to it), nothing can be read or written. Then
// release_storage() marks it released, and refill_storage() gives it memory. The unsharded flat
// parameter of a sharded unit is made this way, so no whole unit is allocated before its gather.
inline at::Tensor unallocated_tensor(int64_t numel, const at::TensorOptions& options) {
  at::Tensor t = at::empty({0}, options);  // a storage of 0 bytes, with the device's allocator
  t.storage().unsafeGetStorageImpl()->set_nbytes(size_t(numel) * t.element_size());
  t.set_(t.storage(), 0, {numel}, {1});
  return t;
}

// Points the released storage of `t` at `nbytes` of memory owned elsewhere (a preallocated gather buffer):
// the storage does not free it, and release_storage() just lets go of it.
inline void refill_storage_with(const at::Tensor& t, void* data, size_t nbytes) {
  c10::StorageImpl* s = t.storage().unsafeGetStorageImpl();
  s->set_data_ptr_noswap(at::DataPtr(data, s->device()));
  s->set_nbytes(nbytes);
}

}  // namespace ftdist::compat
