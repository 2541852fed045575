#include "ftdist/comm/device_binding.h"

#include <mpi.h>

#include <utility>

#include "ftdist/comm/mpi_session.h"
#include "ftdist/core/mpi_check.h"
#ifdef FTDIST_WITH_CUDA
#include "ftdist/core/cuda_check.h"
#endif

namespace ftdist::comm {

namespace {
// This rank's rank and the size of the ranks sharing its node (collective over MPI_COMM_WORLD).
std::pair<int, int> node_rank_and_size() {
  MPI_Comm node = MPI_COMM_NULL;
  FT_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
  int r = 0, n = 1;
  MPI_Comm_rank(node, &r);
  MPI_Comm_size(node, &n);
  MPI_Comm_free(&node);
  return {r, n};
}
}  // namespace

int local_rank() {
  int from_env = local_rank_from_env();
  if (from_env >= 0) return from_env;
  if (!MpiSession::initialized()) return 0;
  return node_rank_and_size().first;
}

int local_size() {
  if (!MpiSession::initialized()) return 1;
  return node_rank_and_size().second;
}

int bind_local_gpu() {
#ifdef FTDIST_WITH_CUDA
  int count = 0;
  cudaError_t rc = cudaGetDeviceCount(&count);
  FT_CHECK(rc == cudaSuccess && count > 0, ErrorKind::Cuda,
           "no CUDA device is visible to this process (" << cudaGetErrorString(rc)
           << "); use the mpi backend on CPU or check CUDA_VISIBLE_DEVICES");
  // One visible GPU: the launcher bound this rank to its own (Slurm --gpus-per-task=1, or a
  // per-rank CUDA_VISIBLE_DEVICES). Several: the local rank picks one.
  const int local = count == 1 ? 0 : local_rank();
  FT_CHECK_ARG(local < count, "local rank " << local << " has no GPU of its own: only " << count
               << " visible on this node; start at most " << count << " ranks per node");
  FT_CUDA_CHECK(cudaSetDevice(local));
  return local;
#else
  FT_CHECK(false, ErrorKind::Internal, "this ftdist was built without CUDA (FTDIST_CUDA=OFF)");
  return -1;
#endif
}

}  // namespace ftdist::comm
