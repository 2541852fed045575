// The communicator multi-rank comm tests run on: the mpi backend over every rank of the job.
#pragma once

#include <memory>

#include "ftdist/comm/communicator.h"

inline std::unique_ptr<ftdist::comm::Communicator> mpi_world() {
  ftdist::comm::CommOptions options;
  options.backend = ftdist::comm::Backend::Mpi;
  return ftdist::comm::make_communicator(at::kCPU, options);
}
