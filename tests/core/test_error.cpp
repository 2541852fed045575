// ftdist::Error and the check macros: kind, rank, file:line, the failing call, the library's message.
#include <gtest/gtest.h>

#include <string>

#include "ftdist/core/check.h"
#include "ftdist/core/error.h"
#include "ftdist/core/log.h"
#include "ftdist/core/mpi_check.h"
#ifdef FTDIST_WITH_CUDA
#include "ftdist/core/cuda_check.h"
#endif
#ifdef FTDIST_WITH_NCCL
#include "ftdist/core/nccl_check.h"
#endif

namespace {

std::string contains_msg(const std::string& hay, const std::string& needle) {
  return "'" + needle + "' not found in: " + hay;
}

TEST(Error, FtCheckCarriesKindRankFileLineAndCall) {
  ftdist::log::set_rank(3);
  int line = 0;
  try {
    int n = -1;
    line = __LINE__ + 1;
    FT_CHECK(n > 0, ftdist::ErrorKind::BadInput, "--iters must be positive, got " << n);
    FAIL() << "FT_CHECK did not throw";
  } catch (const ftdist::Error& e) {
    std::string what = e.what();
    EXPECT_EQ(e.kind(), ftdist::ErrorKind::BadInput);
    EXPECT_EQ(e.rank(), 3);
    EXPECT_EQ(e.line(), line);
    EXPECT_EQ(e.file(), "tests/core/test_error.cpp");
    EXPECT_EQ(e.call(), "n > 0");
    EXPECT_NE(what.find("[rank 3]"), std::string::npos) << contains_msg(what, "[rank 3]");
    EXPECT_NE(what.find("--iters must be positive, got -1"), std::string::npos) << what;
    // Bad input speaks to the user: no source position in the text (it stays in file()/line()).
    EXPECT_EQ(what.find("test_error.cpp"), std::string::npos) << what;
  }
  try {
    line = __LINE__ + 1;
    FT_CHECK(1 == 2, ftdist::ErrorKind::Internal, "invariant broken");
    FAIL() << "FT_CHECK did not throw";
  } catch (const ftdist::Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("[rank 3] internal error at tests/core/test_error.cpp:" + std::to_string(line)), std::string::npos)
        << what;
    EXPECT_NE(what.find("(in 1 == 2)"), std::string::npos) << what;
  }
  ftdist::log::set_rank(0);
}

TEST(Error, PassingChecksDoNotThrow) {
  EXPECT_NO_THROW(FT_CHECK(1 + 1 == 2, ftdist::ErrorKind::Internal, "math"));
  EXPECT_NO_THROW(FT_MPI_CHECK(MPI_SUCCESS));
#ifdef FTDIST_WITH_CUDA
  EXPECT_NO_THROW(FT_CUDA_CHECK(cudaSuccess));
#endif
#ifdef FTDIST_WITH_NCCL
  EXPECT_NO_THROW(FT_NCCL_CHECK(ncclSuccess));
#endif
}

TEST(Error, LibraryChecksIncludeTheLibraryMessage) {
#ifdef FTDIST_WITH_CUDA
  try {
    FT_CUDA_CHECK(cudaErrorInvalidValue);
    FAIL();
  } catch (const ftdist::Error& e) {
    EXPECT_EQ(e.kind(), ftdist::ErrorKind::Cuda);
    EXPECT_NE(std::string(e.what()).find(cudaGetErrorString(cudaErrorInvalidValue)), std::string::npos) << e.what();
    EXPECT_NE(e.call().find("cudaErrorInvalidValue"), std::string::npos);
  }
#endif
#ifdef FTDIST_WITH_NCCL
  try {
    FT_NCCL_CHECK(ncclInvalidArgument);
    FAIL();
  } catch (const ftdist::Error& e) {
    EXPECT_EQ(e.kind(), ftdist::ErrorKind::Comm);
    EXPECT_NE(std::string(e.what()).find(ncclGetErrorString(ncclInvalidArgument)), std::string::npos) << e.what();
  }
#endif
  try {
    FT_MPI_CHECK(MPI_ERR_COUNT);
    FAIL();
  } catch (const ftdist::Error& e) {
    EXPECT_EQ(e.kind(), ftdist::ErrorKind::Comm);
    // Outside an MPI job MPI may not be asked for its text, so the message carries the code.
    EXPECT_NE(std::string(e.what()).find("MPI error code " + std::to_string(MPI_ERR_COUNT)), std::string::npos)
        << e.what();
    EXPECT_EQ(e.call(), "MPI_ERR_COUNT");
  }
}

TEST(Error, ExitCodesFollowTheDesign) {
  EXPECT_EQ(ftdist::exit_code_for(ftdist::ErrorKind::BadInput), 2);
  EXPECT_EQ(ftdist::exit_code_for(ftdist::ErrorKind::DoesNotFit), 3);
  EXPECT_EQ(ftdist::exit_code_for(ftdist::ErrorKind::Internal), 1);
  EXPECT_EQ(ftdist::exit_code_for(ftdist::ErrorKind::Comm), 1);
}

TEST(Log, OnlyRankZeroPrintsInfoByDefault) {
  ftdist::log::set_level(ftdist::log::Level::Info);
  ftdist::log::set_all_ranks(false);
  ftdist::log::set_rank(0);
  EXPECT_TRUE(ftdist::log::enabled(ftdist::log::Level::Info));
  EXPECT_FALSE(ftdist::log::enabled(ftdist::log::Level::Debug));
  ftdist::log::set_rank(2);
  EXPECT_FALSE(ftdist::log::enabled(ftdist::log::Level::Info));
  EXPECT_TRUE(ftdist::log::enabled(ftdist::log::Level::Warn));
  ftdist::log::set_all_ranks(true);
  EXPECT_TRUE(ftdist::log::enabled(ftdist::log::Level::Info));
  ftdist::log::set_all_ranks(false);
  ftdist::log::set_rank(0);
}

}  // namespace
