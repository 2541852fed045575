// FT_MPI_CHECK(call): raise an ftdist::Error (kind Comm) with MPI's error string when `call` fails.
#pragma once

#include <mpi.h>

#include <string>

#include "ftdist/core/check.h"

namespace ftdist::detail {
// MPI's text for `code`; MPI may not be asked before MPI_Init or after MPI_Finalize, so then only
// the number.
inline std::string mpi_error_string(int code) {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (!init || fin) return "MPI error code " + std::to_string(code);
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<size_t>(len));
}
}  // namespace ftdist::detail

#define FT_MPI_CHECK(call)                                                                         \
  do {                                                                                             \
    int ft_mpi_rc_ = (call);                                                                       \
    if (ft_mpi_rc_ != MPI_SUCCESS) {                                                               \
      ::ftdist::detail::raise(::ftdist::ErrorKind::Comm, "MPI call failed", #call,                 \
                              ::ftdist::detail::mpi_error_string(ft_mpi_rc_), __FILE__, __LINE__); \
    }                                                                                              \
  } while (0)
