// The failure policy of every ftdist process (docs/runtime.md#failure-policy-and-exit-codes): an exception on any rank prints
// the rank and the cause on stderr and ends the whole job, so every rank exits non-zero within
// seconds instead of waiting forever in a collective for the rank that died.
//
//   int main(int argc, char** argv) {
//     std::unique_ptr<ftdist::comm::MpiSession> mpi;  // outlives the handler, so it can MPI_Abort
//     return ftdist::comm::run_guarded([&] {
//       mpi = std::make_unique<ftdist::comm::MpiSession>(&argc, &argv);
//       return real_main(argc, argv);
//     });
//   }
#pragma once

#include <functional>

namespace ftdist::comm {

// Runs `body`. On ftdist::Error prints it and exits with its kind's code (2 bad input, 3 does not
// fit, 1 other); on any other exception prints it and exits 1. With more than one rank the exit is
// an MPI_Abort of the whole job. Returns body's result when it returns normally.
int run_guarded(const std::function<int()>& body);

}  // namespace ftdist::comm
