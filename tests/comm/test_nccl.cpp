// The nccl backend on CUDA tensors. Runs under mpirun (NCCL bootstraps over MPI); every test skips
// itself, visibly, when no GPU is present (ctest then reports the run as skipped, not passed).
#include <gtest/gtest.h>

#include <vector>

#include "ftdist/comm/communicator.h"
#include "ftdist/core/error.h"

using ftdist::comm::Backend;
using ftdist::comm::ReduceOp;

namespace {

double input_value(int r, int64_t i) { return double((r + 1) * (i % 3 + 1)); }

class Nccl : public testing::Test {
 protected:
  void SetUp() override {
    if (!ftdist::comm::nccl_available()) GTEST_SKIP() << "built without NCCL";
    if (!ftdist::comm::cuda_device_present()) GTEST_SKIP() << "no CUDA device present";
    ftdist::comm::CommOptions o;
    o.backend = Backend::Nccl;
    o.timeout_s = 60;
    comm_ = ftdist::comm::make_communicator(at::kCUDA, o);
  }
  at::Tensor filled(int64_t n, at::ScalarType dtype, int rank) const {
    std::vector<double> v;
    for (int64_t i = 0; i < n; ++i) v.push_back(input_value(rank, i));
    return at::tensor(v, at::kDouble).to(comm_->device(), dtype);
  }
  std::unique_ptr<ftdist::comm::Communicator> comm_;
};

TEST_F(Nccl, EveryCollectiveMatchesClosedForm) {
  const int n = comm_->size();
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kLong}) {
    // all_reduce sum and max
    at::Tensor t = filled(12, dtype, comm_->rank());
    comm_->all_reduce(t, ReduceOp::Sum);
    at::Tensor want = filled(12, at::kDouble, 0).mul(double(n) * (n + 1) / 2.0);
    EXPECT_TRUE(at::equal(t.to(at::kDouble), want)) << c10::toString(dtype);
    t = filled(12, dtype, comm_->rank());
    comm_->all_reduce(t, ReduceOp::Max);
    EXPECT_TRUE(at::equal(t.to(at::kDouble), filled(12, at::kDouble, n - 1)));

    // all_gather_into
    at::Tensor out = at::empty({4 * n}, t.options());
    comm_->all_gather_into(out, filled(4, dtype, comm_->rank()));
    for (int r = 0; r < n; ++r)
      EXPECT_TRUE(at::equal(out.slice(0, 4 * r, 4 * (r + 1)).to(at::kDouble), filled(4, at::kDouble, r)));

    // reduce_scatter sum: rank r gets elements [3r, 3r+3) of the summed vector
    at::Tensor rs = at::empty({3}, t.options());
    comm_->reduce_scatter(rs, filled(3 * n, dtype, comm_->rank()), ReduceOp::Sum);
    at::Tensor full_sum = filled(3 * n, at::kDouble, 0).mul(double(n) * (n + 1) / 2.0);
    EXPECT_TRUE(at::equal(rs.to(at::kDouble), full_sum.slice(0, 3 * comm_->rank(), 3 * comm_->rank() + 3)));

    // broadcast from the last rank
    at::Tensor b = filled(5, dtype, comm_->rank());
    comm_->broadcast(b, n - 1);
    EXPECT_TRUE(at::equal(b.to(at::kDouble), filled(5, at::kDouble, n - 1)));
  }
  comm_->barrier();
}

TEST_F(Nccl, AvgOfBf16) {
  const int n = comm_->size();
  at::Tensor t = filled(8, at::kBFloat16, comm_->rank());
  comm_->all_reduce(t, ReduceOp::Avg);
  at::Tensor want = filled(8, at::kDouble, 0).mul((n + 1) / 2.0);
  EXPECT_TRUE(at::allclose(t.to(at::kDouble), want, 1e-2, 0));
}

TEST_F(Nccl, RejectsCpuTensorsAndMismatchedSizes) {
  at::Tensor cpu = at::ones({4}, at::kFloat);
  EXPECT_THROW(comm_->all_reduce(cpu, ReduceOp::Sum), ftdist::Error);
  at::Tensor t = at::ones({comm_->rank() == 0 ? 4 : 5}, at::TensorOptions().device(comm_->device()));
  if (comm_->size() > 1) {
    EXPECT_THROW(comm_->all_reduce(t, ReduceOp::Sum), ftdist::Error);
  }
  at::Tensor one = at::ones({1}, at::TensorOptions().device(comm_->device()).dtype(at::kLong));
  comm_->all_reduce(one, ReduceOp::Sum);
  EXPECT_EQ(one.item<int64_t>(), comm_->size());
}

TEST_F(Nccl, SplitKeepsTheBackend) {
  auto sub = comm_->split(comm_->rank() % 2, comm_->rank());
  EXPECT_EQ(sub->backend(), Backend::Nccl);
  at::Tensor t = at::full({2}, 1.0, at::TensorOptions().device(comm_->device()));
  sub->all_reduce(t, ReduceOp::Sum);
  EXPECT_EQ(t[0].item<double>(), double(sub->size()));
}

}  // namespace

namespace {
// Deferred completion: calls return once enqueued, the stream orders them, synchronize() drains
// the queue. Many collectives on a side stream, then the result read after synchronize().
TEST_F(Nccl, DeferredCollectivesCompleteInStreamOrder) {
  const int n = comm_->size();
  comm_->set_deferred(true);
  at::Tensor t = at::ones({1 << 20}, at::TensorOptions().dtype(at::kFloat).device(comm_->device()));
  double want = 1;
  for (int i = 0; i < 6; ++i) {  // exact in fp32 up to 8 ranks
    comm_->all_reduce(t, ReduceOp::Sum);  // times n, then plus one: wrong if the two were reordered
    t.add_(1);
    want = want * n + 1;
  }
  comm_->synchronize();
  EXPECT_DOUBLE_EQ(t[0].item<double>(), want);
  EXPECT_DOUBLE_EQ(t[-1].item<double>(), want);
  comm_->set_deferred(false);
}
}  // namespace
