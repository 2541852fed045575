// MpiSession — MPI's lifetime in one process, and the launch environment.
//
// Construct one in main (RAII: MPI_Finalize on destruction). It initializes MPI only when the
// process was started by an MPI launcher (mpirun / mpiexec / srun with PMI), so `ftdist` also runs
// as a plain process without any MPI daemon. MPI errors return codes (MPI_ERRORS_RETURN) so that
// FT_MPI_CHECK turns them into ftdist::Error.
#pragma once

namespace ftdist::comm {

class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  static bool initialized();  // MPI_Init ran and MPI_Finalize did not
  static int world_rank();    // 0 when not initialized
  static int world_size();    // 1 when not initialized

  // Ends every rank of the job with `code` (MPI_Abort when initialized, else std::_Exit).
  [[noreturn]] static void abort(int code);

 private:
  bool owns_ = false;
};

// True when the environment says an MPI launcher started this process.
bool launched_by_mpi();

// This process's rank among the ranks of its node, from the launcher's environment
// (OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID, SLURM_LOCALID); -1 when none says.
int local_rank_from_env();

}  // namespace ftdist::comm
