// Constructors of the backends, private to comm/ (make_communicator() is the public way in).
#pragma once

#include <memory>

#include "ftdist/comm/communicator.h"
#include "mpi_group.h"

namespace ftdist::comm {

std::unique_ptr<Communicator> make_local_communicator(const CommOptions& options, at::Device device);
std::unique_ptr<Communicator> make_mpi_communicator(MpiGroup group, const CommOptions& options);
#ifdef FTDIST_WITH_NCCL
std::unique_ptr<Communicator> make_nccl_communicator(MpiGroup group, const CommOptions& options);
#endif

}  // namespace ftdist::comm
