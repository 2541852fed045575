// FT_NCCL_CHECK(call): raise an ftdist::Error (kind Comm) with ncclGetErrorString (and NCCL's last
// error text) when `call` returns anything but ncclSuccess or ncclInProgress. ncclInProgress is the
// normal answer of a non-blocking communicator; the caller polls it (see NcclCommunicator).
#pragma once

#include <nccl.h>

#include <string>

#include "ftdist/core/check.h"

namespace ftdist::detail {
inline std::string nccl_error_string(ncclResult_t rc, ncclComm_t comm) {
  std::string text = ncclGetErrorString(rc);
  const char* last = ncclGetLastError(comm);
  if (last != nullptr && last[0] != '\0') text += std::string(" — ") + last;
  return text;
}
}  // namespace ftdist::detail

#define FT_NCCL_CHECK_COMM(call, comm)                                                           \
  do {                                                                                           \
    ncclResult_t ft_nccl_rc_ = (call);                                                           \
    if (ft_nccl_rc_ != ncclSuccess && ft_nccl_rc_ != ncclInProgress) {                           \
      ::ftdist::detail::raise(::ftdist::ErrorKind::Comm, "NCCL call failed", #call,              \
                              ::ftdist::detail::nccl_error_string(ft_nccl_rc_, (comm)),          \
                              __FILE__, __LINE__);                                               \
    }                                                                                            \
  } while (0)

#define FT_NCCL_CHECK(call) FT_NCCL_CHECK_COMM(call, nullptr)
