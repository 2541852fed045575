// GPU binding under a launcher: each process uses GPU = its local rank (docs/runtime.md#device-binding). The local
// rank comes from OMPI_COMM_WORLD_LOCAL_RANK / MPI_LOCALRANKID / SLURM_LOCALID, else from an
// MPI_COMM_TYPE_SHARED split of the world (ranks sharing this node).
#pragma once

namespace ftdist::comm {

// This process's rank among the processes on its node (0 when not launched by MPI).
int local_rank();
// How many processes of the job share this node (1 when not launched by MPI). Collective over
// MPI_COMM_WORLD: every rank calls it.
int local_size();

// Makes this rank's GPU the current CUDA device and returns its index: the only one visible (a
// launcher that binds a GPU per task), else GPU local_rank(). Throws Error(BadInput)
// when there are more ranks on the node than visible GPUs, Error(Cuda) when there is no GPU.
// Only in builds with CUDA (FTDIST_WITH_CUDA).
int bind_local_gpu();

}  // namespace ftdist::comm
