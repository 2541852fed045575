#include "mpi_group.h"

#include <sstream>
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
  return MpiGroup(c);
}

MpiGroup::MpiGroup(MpiGroup&& other) noexcept
    : comm_(other.comm_), rank_(other.rank_), size_(other.size_) {
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
  FT_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(buf.size()), MPI_INT64_T, MPI_MAX, comm_));

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
