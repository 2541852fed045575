// A job in which one rank fails while the others wait in a collective that can never finish.
// tests/scripts/expect_exit.sh checks that every rank exits non-zero within seconds (the failure
// policy aborts the job) instead of hanging. Usage: mpirun -np N ftdist_fail_helper [failing_rank] [hang]
// With "hang" the failing rank stays alive without joining (a stuck process rather than a dead one):
// the waiting ranks give up after FTDIST_COMM_TIMEOUT_S and abort the job.
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "ftdist/comm/communicator.h"
#include "ftdist/comm/failure_policy.h"
#include "ftdist/comm/mpi_session.h"
#include "ftdist/core/check.h"

int main(int argc, char** argv) {
  std::unique_ptr<ftdist::comm::MpiSession> mpi;
  return ftdist::comm::run_guarded([&] {
    mpi = std::make_unique<ftdist::comm::MpiSession>(&argc, &argv);
    int failing = argc > 1 ? std::atoi(argv[1]) : 1;
    auto comm = ftdist::comm::make_communicator(at::kCPU);
    const bool hang = argc > 2 && std::string(argv[2]) == "hang";
    if (comm->rank() == failing && hang) std::this_thread::sleep_for(std::chrono::seconds(600));
    if (comm->rank() == failing) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      FT_CHECK(false, ftdist::ErrorKind::Internal, "injected failure on rank " << failing);
    }
    at::Tensor t = at::ones({4}, at::kFloat);
    comm->all_reduce(t, ftdist::comm::ReduceOp::Sum);  // the failing rank never joins
    return 0;
  });
}
