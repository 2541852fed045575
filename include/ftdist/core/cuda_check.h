// FT_CUDA_CHECK(call): raise an ftdist::Error (kind Cuda) with cudaGetErrorString when `call` fails.
#pragma once

#include <cuda_runtime_api.h>

#include "ftdist/core/check.h"

#define FT_CUDA_CHECK(call)                                                                      \
  do {                                                                                           \
    cudaError_t ft_cuda_rc_ = (call);                                                            \
    if (ft_cuda_rc_ != cudaSuccess) {                                                            \
      ::ftdist::detail::raise(::ftdist::ErrorKind::Cuda, "CUDA call failed", #call,              \
                              cudaGetErrorString(ft_cuda_rc_), __FILE__, __LINE__);              \
    }                                                                                            \
  } while (0)
