// Communicator — the collectives every other module uses (docs/runtime.md#communication-layer).
//
// Semantics (the same for every backend):
//   all_gather_into(out, in)       out (size*n) = concat over ranks r of in_r (n)
//   reduce_scatter(out, in, op)    out (n) on rank r = op over ranks of in[r*n, (r+1)*n)
//   all_reduce(t, op)              t = op over ranks of t, in place
//   broadcast(t, root)             t = t of rank `root`, in place
//   barrier()                      returns when every rank has entered it
//   barrier_after_io(what, bytes)  the same, after work whose length may differ between ranks by
//                                  far more than a collective's (writing files); see io_wait_limit_s
//   split(color, key)              a communicator of the ranks with the same color, ordered by key
//   synchronize()                  waits for every collective issued so far (GPU backends; see
//                                  set_deferred)
// Tensors must be contiguous and, within a call, of one dtype and device. Reduced-precision floats
// (bf16, fp16) are reduced in fp32 on the mpi backend. `avg` is defined for floating dtypes only.
//
// Argument checking: each call first agrees with the other ranks on a small signature (collective,
// dtype, element counts, op, root) through one tiny MPI all-reduce. A rank whose own arguments are
// wrong, or ranks that disagree, make *every* rank throw ftdist::Error(BadInput) — never a hang.
// CommOptions::verify_args = false (or FTDIST_COMM_VERIFY=0) skips that round trip.
//
// Usage:
//   ftdist::comm::MpiSession mpi(argc, argv);               // once per process, in main
//   auto comm = ftdist::comm::make_communicator(at::kCPU);  // local, mpi or nccl
//   comm->all_reduce(grad_norm_sq, ftdist::comm::ReduceOp::Sum);
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

namespace ftdist::comm {

enum class ReduceOp { Sum, Avg, Max };
enum class Backend { Auto, Local, Mpi, Nccl };

const char* reduce_op_name(ReduceOp op);
ReduceOp reduce_op_from_name(const std::string& name);  // sum|avg|max, else Error(BadInput)
const char* backend_name(Backend backend);
Backend backend_from_name(const std::string& name);     // auto|local|mpi|nccl, else Error(BadInput)

struct CommOptions {
  Backend backend = Backend::Auto;
  bool verify_args = true;      // cross-rank signature check before every collective
  double timeout_s = 600.0;     // a collective not finished by then aborts the job
  double io_timeout_s = 1800.0; // barrier_after_io: the least a rank waits for peers still writing
};

// Reads FTDIST_COMM_VERIFY (0|1), FTDIST_COMM_TIMEOUT_S and FTDIST_IO_TIMEOUT_S (seconds) over the
// defaults above.
CommOptions comm_options_from_env(CommOptions base = {});

// How long barrier_after_io waits for the slowest rank when the most any rank wrote is `bytes`:
// max(timeout_s, io_timeout_s) plus one second per kIoAllowanceBytesPerS of `bytes`. A slow or busy
// shared disk (a 70B checkpoint is about 100 GB per rank on 8 GPUs) must not fail the job at its
// save, while a peer that hangs there is still found in bounded time.
constexpr double kIoAllowanceBytesPerS = 16.0 * (1 << 20);
double io_wait_limit_s(const CommOptions& options, int64_t bytes);

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual Backend backend() const = 0;
  virtual at::Device device() const = 0;  // where its tensors must live (local: any)

  void all_gather_into(const at::Tensor& out, const at::Tensor& in);
  void reduce_scatter(const at::Tensor& out, const at::Tensor& in, ReduceOp op);
  void all_reduce(const at::Tensor& tensor, ReduceOp op);
  void broadcast(const at::Tensor& tensor, int root);
  virtual void barrier() = 0;
  // `what` names the wait in the timeout's message; `bytes`: the most any rank wrote (or 0).
  virtual void barrier_after_io(const char* what, int64_t bytes) = 0;
  virtual void synchronize() {}
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;

  // Deferred completion. Off (the default): a collective returns when it has finished. On: a GPU
  // backend returns once the collective is enqueued on the caller's current stream, so it overlaps
  // work on other streams (the caller orders it against them with events); the communicator keeps
  // watching what is outstanding, and a collective still unfinished after the timeout aborts the
  // job, found at the next call or at synchronize(). CPU backends are synchronous either way.
  // Call synchronize() before the host waits on a stream that depends on deferred collectives.
  void set_deferred(bool deferred) { deferred_ = deferred; }
  bool deferred() const { return deferred_; }

  // Turns the cross-rank argument check on or off (benchmarks time collectives without it).
  void set_verify_args(bool verify) { verify_args_ = verify; }
  bool verify_args() const { return verify_args_; }

 protected:
  explicit Communicator(bool verify_args) : verify_args_(verify_args) {}

  // What every collective agrees on before it runs, one signature per call: collective kind,
  // dtype (at::ScalarType), input element count, output element count, ReduceOp or -1, root or -1.
  static constexpr int kSignatureFields = 6;
  using Signature = std::array<int64_t, kSignatureFields>;
  static const char* const kSignatureFieldNames[kSignatureFields];  // for messages
  // Agree on `sig` with every rank. `local_problem` is this rank's own complaint ("" if none).
  // Throws ftdist::Error(BadInput) on every rank when any rank complains or the signatures differ.
  virtual void agree(const char* what, const Signature& sig, const std::string& local_problem) = 0;

  virtual void do_all_gather_into(const at::Tensor& out, const at::Tensor& in) = 0;
  virtual void do_reduce_scatter(const at::Tensor& out, const at::Tensor& in, ReduceOp op) = 0;
  virtual void do_all_reduce(const at::Tensor& tensor, ReduceOp op) = 0;
  virtual void do_broadcast(const at::Tensor& tensor, int root) = 0;

  // The per-backend part of argument checking (device, supported dtypes); "" if fine.
  virtual std::string backend_problem(const at::Tensor& t) const = 0;

  bool verify_args_;
  bool deferred_ = false;

 private:
  void check_and_agree(const char* what, const Signature& sig, std::string problem);
};

// Picks the backend for tensors on `device` and this launch (see CommOptions::backend):
//   auto, plain process (no launcher)  -> local (size 1; on GPU 0 for a CUDA device)
//   auto under mpirun/srun, CUDA       -> nccl (error if ftdist was built without NCCL)
//   auto under mpirun/srun, CPU        -> mpi
// Needs an MpiSession for mpi and nccl.
std::unique_ptr<Communicator> make_communicator(at::DeviceType device, const CommOptions& options = comm_options_from_env());

// Whether this build has the NCCL backend, and whether a CUDA device is present.
bool nccl_available();
bool cuda_device_present();

}  // namespace ftdist::comm
