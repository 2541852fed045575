#include "ftdist/comm/mpi_session.h"

#include <mpi.h>

#include <cstdlib>
#include <string>

#include "ftdist/core/log.h"
#include "ftdist/core/mpi_check.h"

namespace ftdist::comm {

namespace {
bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] != '\0';
}
}  // namespace

bool launched_by_mpi() {
  // Open MPI, MPICH/Hydra, PMIx launchers, and Slurm's srun with PMI/PMIx.
  return env_set("OMPI_COMM_WORLD_SIZE") || env_set("PMIX_RANK") || env_set("PMI_RANK") ||
         env_set("PMI_SIZE") || env_set("MPI_LOCALRANKID");
}

int local_rank_from_env() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}) {
    if (const char* v = std::getenv(name)) {
      try {
        return std::stoi(v);
      } catch (const std::exception&) {
        FT_LOG_WARN("ignoring " << name << "='" << v << "': not an integer");
      }
    }
  }
  return -1;
}

MpiSession::MpiSession(int* argc, char*** argv) {
  if (initialized() || !launched_by_mpi()) {
    log::set_rank(initialized() ? world_rank() : 0);
    return;
  }
  int provided = 0;
  FT_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided));
  owns_ = true;
  FT_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  // On a GPU the runtime's collectives (and their MPI argument check) run on the autograd engine's
  // CUDA thread while the main thread waits in backward(): MPI must allow calls from either thread.
  FT_CHECK(provided >= MPI_THREAD_SERIALIZED, ErrorKind::Comm,
           "this MPI library provides thread level " << provided << ", below MPI_THREAD_SERIALIZED, which ftdist needs");
  log::set_rank(world_rank());
}

MpiSession::~MpiSession() {
  if (owns_ && initialized()) MPI_Finalize();
}

bool MpiSession::initialized() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

int MpiSession::world_rank() {
  if (!initialized()) return 0;
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int MpiSession::world_size() {
  if (!initialized()) return 1;
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

void MpiSession::abort(int code) {
  if (initialized()) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace ftdist::comm
