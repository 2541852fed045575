#include <mpi.h>

#include "backends.h"
#include "ftdist/comm/communicator.h"
#include "ftdist/comm/mpi_session.h"
#include "ftdist/core/check.h"
#include "ftdist/core/log.h"
#ifdef FTDIST_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ftdist::comm {

bool nccl_available() {
#ifdef FTDIST_WITH_NCCL
  return true;
#else
  return false;
#endif
}

bool cuda_device_present() {
#ifdef FTDIST_WITH_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) == cudaSuccess) return count > 0;
  (void)cudaGetLastError();  // no device: leave no error behind for a later CUDA call
  return false;
#else
  return false;
#endif
}

std::unique_ptr<Communicator> make_communicator(at::DeviceType device, const CommOptions& options) {
  Backend backend = options.backend;
  if (backend == Backend::Auto) {
    if (!MpiSession::initialized()) backend = Backend::Local;  // a plain process: one rank, no MPI
    else backend = device == at::kCUDA ? Backend::Nccl : Backend::Mpi;
  }
  switch (backend) {
    case Backend::Local:
      FT_CHECK_ARG(MpiSession::world_size() == 1,
                   "the local backend is for one process, but this job has " << MpiSession::world_size()
                   << " ranks; use --backend mpi or nccl");
      return make_local_communicator(options, device == at::kCUDA ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU));
    case Backend::Mpi:
      FT_CHECK_ARG(MpiSession::initialized(),
                   "the mpi backend needs the job to be started by mpirun or srun (MPI is not initialized)");
      return make_mpi_communicator(MpiGroup::dup(MPI_COMM_WORLD), options);
    case Backend::Nccl:
#ifdef FTDIST_WITH_NCCL
      FT_CHECK_ARG(MpiSession::initialized(),
                   "the nccl backend bootstraps over MPI: start the job with mpirun or srun (even for one rank)");
      return make_nccl_communicator(MpiGroup::dup(MPI_COMM_WORLD), options);
#else
      FT_CHECK_ARG(false, "this ftdist was built without NCCL (FTDIST_NCCL is off or nccl.h was not found)");
#endif
    case Backend::Auto:
      break;
  }
  FT_CHECK(false, ErrorKind::Internal, "unhandled backend " << backend_name(backend));
  return nullptr;
}

}  // namespace ftdist::comm
