// The local backend (one process, no MPI) and the factory's choices without a launcher.
#include <gtest/gtest.h>

#include <cstdlib>

#include "ftdist/comm/communicator.h"
#include "ftdist/comm/mpi_session.h"
#include "ftdist/core/error.h"

using ftdist::comm::Backend;
using ftdist::comm::ReduceOp;

namespace {

TEST(Local, FactoryPicksLocalWithoutALauncher) {
  ASSERT_FALSE(ftdist::comm::MpiSession::initialized()) << "this binary must run without mpirun";
  auto comm = ftdist::comm::make_communicator(at::kCPU);
  EXPECT_EQ(comm->backend(), Backend::Local);
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);
}

TEST(Local, CudaJobWithoutALauncherIsLocalOnGpuZero) {
  auto comm = ftdist::comm::make_communicator(at::kCUDA);  // creates no CUDA context
  EXPECT_EQ(comm->backend(), Backend::Local);
  EXPECT_EQ(comm->device(), at::Device(at::kCUDA, 0));
}

TEST(Local, CollectivesAreIdentities) {
  auto comm = ftdist::comm::make_communicator(at::kCPU);
  at::Tensor in = at::arange(6, at::kFloat);
  at::Tensor out = at::zeros({6}, at::kFloat);
  comm->all_gather_into(out, in);
  EXPECT_TRUE(at::equal(out, in));
  out.zero_();
  comm->reduce_scatter(out, in, ReduceOp::Avg);
  EXPECT_TRUE(at::equal(out, in));
  at::Tensor t = in.clone();
  comm->all_reduce(t, ReduceOp::Sum);
  comm->broadcast(t, 0);
  EXPECT_TRUE(at::equal(t, in));
  comm->barrier();
  auto sub = comm->split(3, 0);
  EXPECT_EQ(sub->size(), 1);
}

TEST(Local, RejectsBadArgumentsToo) {
  auto comm = ftdist::comm::make_communicator(at::kCPU);
  at::Tensor in = at::arange(6, at::kFloat);
  at::Tensor out = at::zeros({5}, at::kFloat);
  EXPECT_THROW(comm->all_gather_into(out, in), ftdist::Error);
  at::Tensor t = at::ones({2}, at::kFloat);
  EXPECT_THROW(comm->broadcast(t, 1), ftdist::Error);
  EXPECT_THROW(comm->all_reduce(at::ones({4, 4}).t(), ReduceOp::Sum), ftdist::Error);
}

TEST(Local, MpiAndNcclNeedALauncher) {
  ftdist::comm::CommOptions o;
  o.backend = Backend::Mpi;
  try {
    ftdist::comm::make_communicator(at::kCPU, o);
    ADD_FAILURE() << "expected an error";
  } catch (const ftdist::Error& e) {
    EXPECT_EQ(e.kind(), ftdist::ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find("mpirun"), std::string::npos) << e.what();
  }
  o.backend = Backend::Nccl;
  EXPECT_THROW(ftdist::comm::make_communicator(at::kCUDA, o), ftdist::Error);
}

TEST(Local, NamesRoundTrip) {
  for (Backend b : {Backend::Auto, Backend::Local, Backend::Mpi, Backend::Nccl})
    EXPECT_EQ(ftdist::comm::backend_from_name(ftdist::comm::backend_name(b)), b);
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max})
    EXPECT_EQ(ftdist::comm::reduce_op_from_name(ftdist::comm::reduce_op_name(op)), op);
  EXPECT_THROW(ftdist::comm::backend_from_name("gloo"), ftdist::Error);
  EXPECT_THROW(ftdist::comm::reduce_op_from_name("min"), ftdist::Error);
}

// The waits after file writes: at least the collectives' timeout, FTDIST_IO_TIMEOUT_S over the
// default, one second more per 16 MiB written; a bad value names the variable.
TEST(Local, IoWaitLimitFromTheEnvironment) {
  ::unsetenv("FTDIST_IO_TIMEOUT_S");
  ::setenv("FTDIST_COMM_TIMEOUT_S", "30", 1);
  ftdist::comm::CommOptions o = ftdist::comm::comm_options_from_env();
  EXPECT_EQ(o.timeout_s, 30);
  EXPECT_EQ(ftdist::comm::io_wait_limit_s(o, 0), 1800);
  EXPECT_EQ(ftdist::comm::io_wait_limit_s(o, int64_t(160) << 20), 1810);
  ::setenv("FTDIST_IO_TIMEOUT_S", "5", 1);
  o = ftdist::comm::comm_options_from_env();
  EXPECT_EQ(ftdist::comm::io_wait_limit_s(o, 0), 30);  // never below the collectives' own limit
  EXPECT_EQ(ftdist::comm::io_wait_limit_s(o, int64_t(32) << 20), 32);
  for (const char* bad : {"soon", "-1", "0", "5s"}) {
    ::setenv("FTDIST_IO_TIMEOUT_S", bad, 1);
    try {
      ftdist::comm::comm_options_from_env();
      ADD_FAILURE() << "expected an error for " << bad;
    } catch (const ftdist::Error& e) {
      EXPECT_NE(std::string(e.what()).find("FTDIST_IO_TIMEOUT_S must be a positive number of seconds, got '" + std::string(bad)),
                std::string::npos) << e.what();
    }
  }
  ::unsetenv("FTDIST_IO_TIMEOUT_S");
  ::unsetenv("FTDIST_COMM_TIMEOUT_S");
}

}  // namespace
