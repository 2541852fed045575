// Every collective of the mpi backend, for fp32 / bf16 / fp16 / int64 and sum / avg / max, on
// however many ranks mpirun started (ctest runs 1, 2 and 4). Expected values are computed here,
// element by element, from what each rank put in.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "ftdist/comm/communicator.h"
#include "mpi_world.h"

using ftdist::comm::Communicator;
using ftdist::comm::ReduceOp;

namespace {

// What rank r contributes at element i: small integers, exact in every dtype tested.
double input_value(int r, int64_t i) { return double((r + 1) * (i % 3 + 1)); }

at::Tensor filled(int rank, int64_t n, at::ScalarType dtype, int64_t offset = 0) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = input_value(rank, i + offset);
  return at::tensor(v, at::kDouble).to(dtype);
}

double reduced_value(ReduceOp op, int nranks, int64_t i) {
  double acc = op == ReduceOp::Max ? input_value(0, i) : 0.0;
  for (int r = 0; r < nranks; ++r) {
    double x = input_value(r, i);
    acc = op == ReduceOp::Max ? std::max(acc, x) : acc + x;
  }
  return op == ReduceOp::Avg ? acc / nranks : acc;
}

void expect_values(const at::Tensor& got, const std::vector<double>& want, const char* what) {
  at::Tensor g = got.to(at::kDouble).contiguous();
  ASSERT_EQ(g.numel(), static_cast<int64_t>(want.size())) << what;
  auto acc = g.accessor<double, 1>();
  // Expected values are exact in every dtype tested except the avg of fp16/bf16 (x/n rounded).
  double tol = at::isReducedFloatingType(got.scalar_type()) ? 1e-2 : 0.0;
  for (int64_t i = 0; i < g.numel(); ++i) {
    double w = want[static_cast<size_t>(i)];
    ASSERT_NEAR(acc[i], w, tol * std::abs(w)) << what << " element " << i;
  }
}

class Collectives : public testing::TestWithParam<at::ScalarType> {
 protected:
  void SetUp() override { comm_ = mpi_world(); }
  std::unique_ptr<Communicator> comm_;
};

TEST_P(Collectives, AllGatherInto) {
  const at::ScalarType dtype = GetParam();
  const int n = comm_->size();
  const int64_t per_rank = 7;
  at::Tensor in = filled(comm_->rank(), per_rank, dtype);
  at::Tensor out = at::full({per_rank * n}, -5, at::TensorOptions().dtype(dtype));
  comm_->all_gather_into(out, in);
  std::vector<double> want;
  for (int r = 0; r < n; ++r)
    for (int64_t i = 0; i < per_rank; ++i) want.push_back(input_value(r, i));
  expect_values(out, want, "all_gather_into");
}

TEST_P(Collectives, AllReduceEveryOp) {
  const at::ScalarType dtype = GetParam();
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max}) {
    if (op == ReduceOp::Avg && !at::isFloatingType(dtype)) continue;
    at::Tensor t = filled(comm_->rank(), 11, dtype);
    comm_->all_reduce(t, op);
    std::vector<double> want;
    for (int64_t i = 0; i < 11; ++i) want.push_back(reduced_value(op, comm_->size(), i));
    expect_values(t, want, ftdist::comm::reduce_op_name(op));
  }
}

TEST_P(Collectives, ReduceScatterEveryOp) {
  const at::ScalarType dtype = GetParam();
  const int n = comm_->size();
  const int64_t per_rank = 5;
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max}) {
    if (op == ReduceOp::Avg && !at::isFloatingType(dtype)) continue;
    at::Tensor in = filled(comm_->rank(), per_rank * n, dtype);
    at::Tensor out = at::zeros({per_rank}, at::TensorOptions().dtype(dtype));
    comm_->reduce_scatter(out, in, op);
    std::vector<double> want;
    for (int64_t i = 0; i < per_rank; ++i) want.push_back(reduced_value(op, n, comm_->rank() * per_rank + i));
    expect_values(out, want, ftdist::comm::reduce_op_name(op));
  }
}

TEST_P(Collectives, BroadcastFromFirstAndLastRank) {
  const at::ScalarType dtype = GetParam();
  for (int root : {0, comm_->size() - 1}) {
    at::Tensor t = filled(comm_->rank(), 9, dtype);
    comm_->broadcast(t, root);
    std::vector<double> want;
    for (int64_t i = 0; i < 9; ++i) want.push_back(input_value(root, i));
    expect_values(t, want, "broadcast");
  }
}

TEST_P(Collectives, TwoDimensionalTensorsAndEmptyTensors) {
  const at::ScalarType dtype = GetParam();
  at::Tensor t = filled(comm_->rank(), 12, dtype).view({3, 4});
  comm_->all_reduce(t, ReduceOp::Sum);
  std::vector<double> want;
  for (int64_t i = 0; i < 12; ++i) want.push_back(reduced_value(ReduceOp::Sum, comm_->size(), i));
  expect_values(t.view({-1}), want, "2-D all_reduce");

  at::Tensor empty = at::empty({0}, at::TensorOptions().dtype(dtype));
  comm_->all_reduce(empty, ReduceOp::Sum);  // must neither fail nor hang
  EXPECT_EQ(empty.numel(), 0);
}

TEST(CollectivesBarrier, BarrierReturnsOnEveryRank) {
  auto comm = mpi_world();
  comm->barrier();
  at::Tensor one = at::ones({1}, at::kLong);
  comm->all_reduce(one, ReduceOp::Sum);
  EXPECT_EQ(one.item<int64_t>(), comm->size());
}

INSTANTIATE_TEST_SUITE_P(Dtypes, Collectives, testing::Values(at::kFloat, at::kBFloat16, at::kHalf, at::kLong),
                         [](const testing::TestParamInfo<at::ScalarType>& info) {
                           return std::string(c10::toString(info.param));
                         });

}  // namespace
