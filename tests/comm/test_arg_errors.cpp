// Wrong arguments give a clear ftdist::Error on *every* rank — never a hang — and leave the
// communicator usable. Runs on 2 and 4 ranks.
#include <gtest/gtest.h>

#include "expect_error.h"

#include <string>

#include "ftdist/comm/communicator.h"
#include "mpi_world.h"
#include "ftdist/core/error.h"

using ftdist::comm::ReduceOp;

namespace {


// After an error every rank must still agree on the next collective.
void expect_still_usable(ftdist::comm::Communicator& comm) {
  at::Tensor one = at::ones({1}, at::kLong);
  comm.all_reduce(one, ReduceOp::Sum);
  EXPECT_EQ(one.item<int64_t>(), comm.size());
}

class ArgErrors : public testing::Test {
 protected:
  void SetUp() override {
    comm_ = mpi_world();
    ASSERT_GE(comm_->size(), 2) << "run this binary with mpirun -np 2 or more";
  }
  std::unique_ptr<ftdist::comm::Communicator> comm_;
};

TEST_F(ArgErrors, MismatchedSizesAcrossRanks) {
  at::Tensor t = at::ones({comm_->rank() == 0 ? 4 : 5}, at::kFloat);
  expect_bad_input([&] { comm_->all_reduce(t, ReduceOp::Sum); }, "ranks disagree on the input element count");
  expect_still_usable(*comm_);
}

TEST_F(ArgErrors, MismatchedDtypesAcrossRanks) {
  at::Tensor t = at::ones({4}, comm_->rank() == 0 ? at::kFloat : at::kBFloat16);
  expect_bad_input([&] { comm_->all_reduce(t, ReduceOp::Sum); }, "ranks disagree on the dtype");
  expect_still_usable(*comm_);
}

TEST_F(ArgErrors, MismatchedReduceOpsAcrossRanks) {
  at::Tensor in = at::ones({4 * comm_->size()}, at::kFloat);
  at::Tensor out = at::empty({4}, at::kFloat);
  ReduceOp op = comm_->rank() == 0 ? ReduceOp::Sum : ReduceOp::Max;
  expect_bad_input([&] { comm_->reduce_scatter(out, in, op); }, "ranks disagree on the reduce op");
  expect_still_usable(*comm_);
}

TEST_F(ArgErrors, NonContiguousTensorOnOneRankFailsEveryRank) {
  at::Tensor base = at::ones({4, 6}, at::kFloat);
  at::Tensor t = comm_->rank() == 0 ? base.t() : base.view({6, 4}).clone();
  const std::string needle = comm_->rank() == 0 ? "dense contiguous" : "another rank rejected its arguments";
  expect_bad_input([&] { comm_->all_reduce(t, ReduceOp::Sum); }, needle);
  expect_still_usable(*comm_);
}

TEST_F(ArgErrors, WrongGatherOutputSize) {
  at::Tensor in = at::ones({3}, at::kFloat);
  at::Tensor out = at::empty({3 * comm_->size() + 1}, at::kFloat);
  expect_bad_input([&] { comm_->all_gather_into(out, in); }, "out must have size() * in.numel()");
  expect_still_usable(*comm_);
}

TEST_F(ArgErrors, WrongReduceScatterInputSize) {
  at::Tensor in = at::ones({3 * comm_->size() - 1}, at::kFloat);
  at::Tensor out = at::empty({3}, at::kFloat);
  expect_bad_input([&] { comm_->reduce_scatter(out, in, ReduceOp::Sum); }, "in must have size() * out.numel()");
  expect_still_usable(*comm_);
}

TEST_F(ArgErrors, OutAndInDtypesDiffer) {
  at::Tensor in = at::ones({2}, at::kFloat);
  at::Tensor out = at::empty({2 * comm_->size()}, at::kBFloat16);
  expect_bad_input([&] { comm_->all_gather_into(out, in); }, "same dtype");
  expect_still_usable(*comm_);
}

TEST_F(ArgErrors, AvgOfIntegers) {
  at::Tensor t = at::ones({2}, at::kLong);
  expect_bad_input([&] { comm_->all_reduce(t, ReduceOp::Avg); }, "avg is defined for floating dtypes only");
  expect_still_usable(*comm_);
}

TEST_F(ArgErrors, UnsupportedDtype) {
  at::Tensor t = at::ones({2}, at::kBool);
  expect_bad_input([&] { comm_->all_reduce(t, ReduceOp::Sum); }, "does not support dtype");
  expect_still_usable(*comm_);
}

TEST_F(ArgErrors, BroadcastRootOutOfRange) {
  at::Tensor t = at::ones({2}, at::kFloat);
  expect_bad_input([&] { comm_->broadcast(t, comm_->size()); }, "is not a rank of this communicator");
  expect_still_usable(*comm_);
}

TEST_F(ArgErrors, BroadcastRootsDisagree) {
  at::Tensor t = at::ones({2}, at::kFloat);
  expect_bad_input([&] { comm_->broadcast(t, comm_->rank() == 0 ? 0 : 1); }, "ranks disagree on the root");
  expect_still_usable(*comm_);
}

}  // namespace
