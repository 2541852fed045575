// split(color, key): groups of ranks with the same color, ordered by key; collectives stay inside
// the group. With 4 ranks this is the 2x2 layout of hybrid sharding (shard groups x replicas).
#include <gtest/gtest.h>

#include "ftdist/comm/communicator.h"
#include "mpi_world.h"
#include "ftdist/core/error.h"

using ftdist::comm::ReduceOp;

namespace {

TEST(Split, GroupsOfTwoReduceOnlyWithinTheGroup) {
  auto comm = mpi_world();
  const int n = comm->size();
  if (n % 2 != 0) GTEST_SKIP() << "needs an even number of ranks, have " << n;
  // Shard groups: consecutive pairs {0,1}, {2,3}; replica groups: same position {0,2}, {1,3}.
  auto shard = comm->split(comm->rank() / 2, comm->rank());
  auto replica = comm->split(comm->rank() % 2, comm->rank());
  ASSERT_EQ(shard->size(), 2);
  ASSERT_EQ(replica->size(), n / 2);
  EXPECT_EQ(shard->rank(), comm->rank() % 2);
  EXPECT_EQ(replica->rank(), comm->rank() / 2);

  at::Tensor t = at::full({3}, double(comm->rank()), at::kFloat);
  shard->all_reduce(t, ReduceOp::Sum);
  const int first = (comm->rank() / 2) * 2;
  EXPECT_TRUE(at::equal(t, at::full({3}, double(first + first + 1), at::kFloat)));

  at::Tensor u = at::full({2}, double(comm->rank()), at::kLong);
  replica->all_reduce(u, ReduceOp::Max);
  EXPECT_EQ(u[0].item<int64_t>(), n - 2 + comm->rank() % 2);

  at::Tensor gathered = at::empty({2}, at::kLong);
  shard->all_gather_into(gathered, at::full({1}, comm->rank(), at::kLong));
  EXPECT_EQ(gathered[0].item<int64_t>(), first);
  EXPECT_EQ(gathered[1].item<int64_t>(), first + 1);
}

TEST(Split, KeyReversesTheOrder) {
  auto comm = mpi_world();
  auto reversed = comm->split(0, comm->size() - comm->rank());
  EXPECT_EQ(reversed->size(), comm->size());
  EXPECT_EQ(reversed->rank(), comm->size() - 1 - comm->rank());
  at::Tensor t = at::full({1}, comm->rank(), at::kLong);
  reversed->broadcast(t, 0);  // new rank 0 is the old last rank
  EXPECT_EQ(t.item<int64_t>(), comm->size() - 1);
}

TEST(Split, NegativeColorIsRejectedOnEveryRank) {
  auto comm = mpi_world();
  EXPECT_THROW(comm->split(-1, 0), ftdist::Error);
}

}  // namespace
