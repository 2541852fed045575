// The `nccl` backend: CUDA tensors through NCCL, bootstrapped over MPI (rank 0 of the group makes
// the unique id and broadcasts it).
//
// The communicator is non-blocking (ncclConfig_t::blocking = 0): no NCCL call can hang the host.
// Every call is followed by polling ncclCommGetAsyncError until it leaves ncclInProgress, and each
// collective is then waited for on the host by polling its CUDA completion event together with the
// async error, for at most CommOptions::timeout_s. On error or timeout the communicator is aborted
// (ncclCommAbort) and an ftdist::Error is thrown, which the failure policy turns into an abort of
// the whole job — a dead peer ends the job instead of hanging it.
//
// Collectives run on the caller's current CUDA stream (c10::cuda::getCurrentCUDAStream), so callers
// order them against compute by choosing the stream. Deferred (set_deferred): a call returns once
// enqueued and its completion event joins a queue that every later call polls (finished ones
// dropped, the oldest checked against the timeout) and synchronize() drains.
#include <c10/cuda/CUDAStream.h>

#include <chrono>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "backends.h"
#include "ftdist/comm/device_binding.h"
#include "ftdist/core/cuda_event.h"
#include "ftdist/core/dtype.h"
#include "ftdist/core/log.h"
#include "ftdist/core/mpi_check.h"
#include "ftdist/core/nccl_check.h"

namespace ftdist::comm {
namespace {

ncclDataType_t nccl_type(at::ScalarType type, bool* ok) {
  *ok = true;
  switch (type) {
    case at::kFloat: return ncclFloat32;
    case at::kDouble: return ncclFloat64;
    case at::kBFloat16: return ncclBfloat16;
    case at::kHalf: return ncclFloat16;
    case at::kLong: return ncclInt64;
    case at::kInt: return ncclInt32;
    case at::kByte: return ncclUint8;
    default: *ok = false; return ncclFloat32;
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return ncclSum;
    case ReduceOp::Avg: return ncclAvg;
    case ReduceOp::Max: return ncclMax;
  }
  return ncclSum;
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(MpiGroup group, const CommOptions& options, int device_index)
      : Communicator(options.verify_args), group_(std::move(group)), options_(options), device_index_(device_index) {
    group_.set_timeout(options.timeout_s);
    check_one_gpu_per_rank();
    ncclUniqueId id;
    if (group_.rank() == 0) FT_NCCL_CHECK(ncclGetUniqueId(&id));
    MPI_Request req = MPI_REQUEST_NULL;
    FT_MPI_CHECK(MPI_Ibcast(&id, sizeof(id), MPI_BYTE, 0, group_.get(), &req));
    group_.wait(&req, "nccl unique id broadcast");
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    FT_NCCL_CHECK(ncclCommInitRankConfig(&comm_, group_.size(), id, group_.rank(), &config));
    wait_until_idle("ncclCommInitRankConfig");
    FT_LOG_DEBUG("nccl communicator: rank " << group_.rank() << "/" << group_.size() << " on cuda:" << device_index_);
  }

  ~NcclCommunicator() override {
    if (comm_ == nullptr) return;
    // Unwinding from an error on this rank: the peers may be anywhere (an MPI call, another
    // collective), so a finalize that needs them all would only delay the job's abort.
    if (!healthy_ || std::uncaught_exceptions() > 0) {
      ncclCommAbort(comm_);
      return;
    }
    // Finalize (flushes outstanding work) with a bounded wait; abort if it does not finish.
    ncclResult_t rc = ncclCommFinalize(comm_);
    auto start = std::chrono::steady_clock::now();
    ncclResult_t state = rc;
    while (state == ncclInProgress && seconds_since(start) < options_.timeout_s) {
      std::this_thread::yield();
      ncclCommGetAsyncError(comm_, &state);
    }
    if (state == ncclSuccess) ncclCommDestroy(comm_);
    else ncclCommAbort(comm_);
  }

  int rank() const override { return group_.rank(); }
  int size() const override { return group_.size(); }
  Backend backend() const override { return Backend::Nccl; }
  at::Device device() const override { return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device_index_)); }

  void barrier() override {
    synchronize();
    MPI_Request req = MPI_REQUEST_NULL;
    FT_MPI_CHECK(MPI_Ibarrier(group_.get(), &req));
    group_.wait(&req, "barrier");
  }
  void barrier_after_io(const char* what, int64_t bytes) override {
    synchronize();
    group_.barrier_within(what, io_wait_limit_s(options_, bytes));
  }

  void synchronize() override {
    ensure_healthy("synchronize");
    while (!pending_.empty()) {
      wait_for(pending_.front().done->get(), pending_.front().call, pending_.front().start);
      pending_.pop_front();
    }
    CudaEvent done;
    done.record(stream());
    wait_for(done.get(), "synchronize");
  }

  std::unique_ptr<Communicator> split(int color, int key) override {
    return std::make_unique<NcclCommunicator>(group_.split(color, key), options_, device_index_);
  }

 protected:
  void agree(const char* what, const Signature& sig, const std::string& local_problem) override {
    group_.agree(what, sig.data(), kSignatureFieldNames, kSignatureFields, local_problem);
  }

  std::string backend_problem(const at::Tensor& t) const override {
    std::ostringstream os;
    bool ok = false;
    nccl_type(t.scalar_type(), &ok);
    if (!t.is_cuda() || t.get_device() != device_index_)
      os << "the nccl backend takes tensors on cuda:" << device_index_ << ", got one on " << t.device();
    else if (!ok)
      os << "the nccl backend does not support dtype " << dtype_name(t.scalar_type());
    return os.str();
  }

  void do_all_gather_into(const at::Tensor& out, const at::Tensor& in) override {
    launch("ncclAllGather", [&](cudaStream_t s) {
      return ncclAllGather(in.data_ptr(), out.data_ptr(), static_cast<size_t>(in.numel()), type_of(in), comm_, s);
    });
  }

  void do_reduce_scatter(const at::Tensor& out, const at::Tensor& in, ReduceOp op) override {
    launch("ncclReduceScatter", [&](cudaStream_t s) {
      return ncclReduceScatter(in.data_ptr(), out.data_ptr(), static_cast<size_t>(out.numel()), type_of(in),
                               nccl_op(op), comm_, s);
    });
  }

  void do_all_reduce(const at::Tensor& tensor, ReduceOp op) override {
    launch("ncclAllReduce", [&](cudaStream_t s) {
      return ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(), static_cast<size_t>(tensor.numel()),
                           type_of(tensor), nccl_op(op), comm_, s);
    });
  }

  void do_broadcast(const at::Tensor& tensor, int root) override {
    launch("ncclBroadcast", [&](cudaStream_t s) {
      return ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(), static_cast<size_t>(tensor.numel()),
                           type_of(tensor), root, comm_, s);
    });
  }

 private:
  static double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  static ncclDataType_t type_of(const at::Tensor& t) {
    bool ok = false;
    return nccl_type(t.scalar_type(), &ok);
  }
  cudaStream_t stream() const {
    return c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device_index_)).stream();
  }

  template <typename Enqueue>
  void launch(const char* call, Enqueue&& enqueue) {
    ensure_healthy(call);
    cudaStream_t s = stream();
    ncclResult_t rc = enqueue(s);
    if (rc != ncclSuccess && rc != ncclInProgress) fail(call, rc, "");
    wait_until_idle(call);
    auto done = std::make_unique<CudaEvent>();
    done->record(s);
    if (!deferred_) {
      wait_for(done->get(), call);
      return;
    }
    pending_.push_back({std::move(done), call, std::chrono::steady_clock::now()});
    poll_pending();
  }

  // Deferred collectives: drops the finished ones from the front; fails when the oldest has run
  // past the timeout or the communicator reports an error.
  void poll_pending() {
    while (!pending_.empty() && pending_.front().done->done()) pending_.pop_front();
    if (pending_.empty()) return;
    ncclResult_t state = ncclSuccess;
    ncclCommGetAsyncError(comm_, &state);
    if (state != ncclSuccess && state != ncclInProgress) fail(pending_.front().call, state, "");
    if (seconds_since(pending_.front().start) > options_.timeout_s) fail(pending_.front().call, ncclSuccess, "timed out");
  }

  void ensure_healthy(const char* call) const {
    FT_CHECK(healthy_, ErrorKind::Comm, call << ": this NCCL communicator was aborted after an earlier error");
  }

  // Two ranks on one GPU cannot share an NCCL communicator: every rank learns every rank's host
  // and GPU (PCI bus id) and all of them stop with the same message when two coincide.
  void check_one_gpu_per_rank() {
    constexpr int kKey = MPI_MAX_PROCESSOR_NAME + 32;
    std::vector<char> mine(kKey, '\0'), all(size_t(kKey) * size_t(group_.size()), '\0');
    int len = 0;
    FT_MPI_CHECK(MPI_Get_processor_name(mine.data(), &len));
    mine[size_t(len)] = '|';
    FT_CUDA_CHECK(cudaDeviceGetPCIBusId(mine.data() + len + 1, 31, device_index_));
    MPI_Request req = MPI_REQUEST_NULL;
    FT_MPI_CHECK(MPI_Iallgather(mine.data(), kKey, MPI_CHAR, all.data(), kKey, MPI_CHAR, group_.get(), &req));
    group_.wait(&req, "gpu check all-gather");
    std::map<std::string, int> first;
    for (int r = 0; r < group_.size(); ++r) {
      const std::string key(all.data() + size_t(r) * kKey);
      auto [it, fresh] = first.emplace(key, r);
      FT_CHECK_ARG(fresh, "ranks " << it->second << " and " << r << " share the GPU " << key.substr(key.find('|') + 1)
                                   << " on " << key.substr(0, key.find('|'))
                                   << ": the nccl backend needs a GPU per rank (start at most as many ranks per node "
                                      "as it has GPUs, or give each rank its own CUDA_VISIBLE_DEVICES)");
    }
  }

  // Polls the async state until the last call has left ncclInProgress.
  void wait_until_idle(const char* call) {
    auto start = std::chrono::steady_clock::now();
    ncclResult_t state = ncclInProgress;
    while (true) {
      ncclResult_t rc = ncclCommGetAsyncError(comm_, &state);
      if (rc != ncclSuccess) fail(call, rc, "");
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) fail(call, state, "");
      if (seconds_since(start) > options_.timeout_s) fail(call, ncclInProgress, "timed out");
      std::this_thread::yield();
    }
  }

  // Polls `event` and the communicator's async error until the event completes or time runs out
  // (counted from `start`).
  void wait_for(cudaEvent_t event, const char* call,
                std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now()) {
    while (true) {
      if (cuda_event_done(event)) return;
      ncclResult_t state = ncclSuccess;
      ncclCommGetAsyncError(comm_, &state);
      if (state != ncclSuccess && state != ncclInProgress) fail(call, state, "");
      if (seconds_since(start) > options_.timeout_s) fail(call, ncclSuccess, "timed out");
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  [[noreturn]] void fail(const char* call, ncclResult_t rc, const char* what) {
    healthy_ = false;
    std::ostringstream os;
    if (std::string(what) == "timed out")
      os << call << " did not finish within " << options_.timeout_s
         << " s (FTDIST_COMM_TIMEOUT_S); a peer rank has probably died or hung — aborting the NCCL communicator";
    else
      os << call << " failed: " << detail::nccl_error_string(rc, comm_);
    ncclCommAbort(comm_);
    comm_ = nullptr;
    pending_.clear();
    FT_CHECK(false, ErrorKind::Comm, os.str());
    std::abort();  // unreachable: FT_CHECK(false) throws
  }

  MpiGroup group_;
  CommOptions options_;
  int device_index_;
  ncclComm_t comm_ = nullptr;
  bool healthy_ = true;
  struct Pending {  // a deferred collective not yet seen finished
    std::unique_ptr<CudaEvent> done;
    const char* call;
    std::chrono::steady_clock::time_point start;
  };
  std::deque<Pending> pending_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(MpiGroup group, const CommOptions& options) {
  int device = bind_local_gpu();
  return std::make_unique<NcclCommunicator>(std::move(group), options, device);
}

}  // namespace ftdist::comm
