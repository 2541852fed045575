// MpiGroup — an owned MPI communicator (MPI_Comm_dup'ed or split; freed on destruction) and the
// cross-rank argument agreement both MPI-bootstrapped backends (mpi, nccl) use. Private to comm/.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>

namespace ftdist::comm {

class MpiGroup {
 public:
  static MpiGroup dup(MPI_Comm parent);
  MpiGroup split(int color, int key) const;
  ~MpiGroup();
  MpiGroup(MpiGroup&& other) noexcept;
  MpiGroup& operator=(MpiGroup&&) = delete;
  MpiGroup(const MpiGroup&) = delete;

  MPI_Comm get() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }

  // Collectives on this group that do not finish within `seconds` (> 0; 0: no limit) fail with
  // Error(Comm) on the ranks waiting (FTDIST_COMM_TIMEOUT_S): a peer that hangs alive cannot stall
  // the job (the failure policy then aborts it).
  void set_timeout(double seconds) { timeout_s_ = seconds; }
  // Completes the nonblocking collective `request` (MPI_I...), polling within the time limit.
  void wait(MPI_Request* request, const char* call) const { wait(request, call, timeout_s_, "FTDIST_COMM_TIMEOUT_S"); }
  // The same within `seconds` (0: no limit), the limit's origin named by `limit_name`.
  void wait(MPI_Request* request, const char* call, double seconds, const char* limit_name) const;
  // An MPI barrier on this group within `seconds` (Communicator::barrier_after_io).
  void barrier_within(const char* what, double seconds) const;

  // Every rank passes its `fields` (same count everywhere) and its own complaint ("" if none).
  // Throws ftdist::Error(BadInput) on every rank when any rank complains or any field differs
  // between ranks; `names` label the fields in the message.
  void agree(const char* what, const int64_t* fields, const char* const* names, int count,
             const std::string& local_problem) const;

 private:
  explicit MpiGroup(MPI_Comm comm);
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  double timeout_s_ = 0;
};

}  // namespace ftdist::comm
