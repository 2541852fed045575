// GoogleTest main for tests that run under mpirun: one MPI session for the whole binary; rank 0
// prints the usual report, other ranks print only their failures (prefixed with the rank).
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include "ftdist/comm/mpi_session.h"

namespace {
class RankFailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: failure\n%s\n", rank_, result.file_name() ? result.file_name() : "?",
                 result.line_number(), result.summary());
  }

 private:
  int rank_;
};
}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  ftdist::comm::MpiSession mpi(&argc, &argv);
  int rank = ftdist::comm::MpiSession::world_rank();
  if (rank != 0) {
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  return RUN_ALL_TESTS();
}
