// Check macros. All of them end in ftdist::detail::raise(), so every error has the same shape:
//   "[rank 3] <kind> error at src/comm/mpi_communicator.cpp:88: <message> (in MPI_Allreduce(...): <library message>)"
//
//   FT_CHECK(cond, kind, stream-expr)          — our own preconditions
//   FT_MPI_CHECK(call)                          — include ftdist/core/mpi_check.h
//   FT_CUDA_CHECK(call)                         — include ftdist/core/cuda_check.h
//   FT_NCCL_CHECK(call)                         — include ftdist/core/nccl_check.h
#pragma once

#include <sstream>
#include <string>

#include "ftdist/core/error.h"

namespace ftdist::detail {

// The one helper every check macro uses. `library_message` is the failing library's own string
// (empty for FT_CHECK).
[[noreturn]] void raise(ErrorKind kind, const std::string& message, const char* call,
                        const std::string& library_message, const char* file, int line);

}  // namespace ftdist::detail

#define FT_CHECK(cond, kind, msg)                                                                  \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      std::ostringstream ft_check_os_;                                                             \
      ft_check_os_ << msg;                                                                         \
      ::ftdist::detail::raise((kind), ft_check_os_.str(), #cond, "", __FILE__, __LINE__);          \
    }                                                                                              \
  } while (0)

// Shorthand for the common case of a violated argument precondition.
#define FT_CHECK_ARG(cond, msg) FT_CHECK(cond, ::ftdist::ErrorKind::BadInput, msg)
