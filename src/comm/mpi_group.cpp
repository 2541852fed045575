#include "mpi_group.h"

#include <chrono>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ftdist/comm/mpi_session.h"
#include "ftdist/core/mpi_check.h"

namespace ftdist::comm {

MpiGroup::MpiGroup(MPI_Comm comm) : comm_(comm) {
  FT_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  FT_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  FT_MPI_CHECK(MPI_Comm_size(comm_, &size_));
}

MpiGroup MpiGroup::dup(MPI_Comm parent) {
  FT_CHECK(MpiSession::initialized(), ErrorKind::Internal,
           "MPI is not initialized: construct ftdist::comm::MpiSession in main and start the job with mpirun");
  MPI_Comm c = MPI_COMM_NULL;
  FT_MPI_CHECK(MPI_Comm_dup(parent, &c));
  return MpiGroup(c);
}

MpiGroup MpiGroup::split(int color, int key) const {
  FT_CHECK_ARG(color >= 0, "split: color must be >= 0, got " << color);
  MPI_Comm c = MPI_COMM_NULL;
  FT_MPI_CHECK(MPI_Comm_split(comm_, color, key, &c));
  MpiGroup g(c);
  g.timeout_s_ = timeout_s_;
  return g;
}

void MpiGroup::wait(MPI_Request* request, const char* call, double seconds, const char* limit_name) const {
  const auto start = std::chrono::steady_clock::now();
  int done = 0;
  while (true) {
    FT_MPI_CHECK(MPI_Test(request, &done, MPI_STATUS_IGNORE));
    if (done) return;
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    FT_CHECK(seconds <= 0 || waited <= seconds, ErrorKind::Comm,
             call << " (mpi) did not finish within " << seconds << " s (" << limit_name
                  << "); a peer rank has probably died or hung — aborting the job");
    std::this_thread::yield();
  }
}

void MpiGroup::barrier_within(const char* what, double seconds) const {
  MPI_Request req = MPI_REQUEST_NULL;
  FT_MPI_CHECK(MPI_Ibarrier(comm_, &req));
  const std::string call = std::string("barrier after ") + what;
  wait(&req, call.c_str(), seconds, "FTDIST_IO_TIMEOUT_S, at least FTDIST_COMM_TIMEOUT_S, with the allowance for the bytes written");
}

MpiGroup::MpiGroup(MpiGroup&& other) noexcept
    : comm_(other.comm_), rank_(other.rank_), size_(other.size_), timeout_s_(other.timeout_s_) {
  other.comm_ = MPI_COMM_NULL;
}

MpiGroup::~MpiGroup() {
  if (comm_ != MPI_COMM_NULL && MpiSession::initialized()) MPI_Comm_free(&comm_);
}

void MpiGroup::agree(const char* what, const int64_t* fields, const char* const* names, int count,
                     const std::string& local_problem) const {
  // One all-reduce(max) of [bad, f..., -f...] gives, for each field, its max and its min.
  std::vector<int64_t> buf(1 + 2 * static_cast<size_t>(count));
  buf[0] = local_problem.empty() ? 0 : 1;
  for (int i = 0; i < count; ++i) {
    buf[1 + i] = fields[i];
    buf[1 + count + i] = -fields[i];
  }
  MPI_Request req = MPI_REQUEST_NULL;
  FT_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(buf.size()), MPI_INT64_T, MPI_MAX, comm_, &req));
  wait(&req, what);

  if (!local_problem.empty()) {
    FT_CHECK_ARG(false, what << ": " << local_problem);
  }
  std::ostringstream why;
  if (buf[0] != 0) why << "another rank rejected its arguments (see its message)";
  for (int i = 0; i < count && buf[0] == 0; ++i) {
    int64_t hi = buf[1 + i], lo = -buf[1 + count + i];
    if (hi != lo) {
      why << "ranks disagree on " << names[i] << " (this rank " << fields[i] << ", min " << lo << ", max " << hi << ")";
      break;
    }
  }
  FT_CHECK_ARG(why.str().empty(), what << ": " << why.str());
}

}  // namespace ftdist::comm
