// The `mpi` backend: CPU tensors through MPI. bf16/fp16 reductions are computed in fp32 (MPI has no
// 16-bit float types); fp32, fp64, int32, int64 are reduced natively. Gathers and broadcasts move
// raw bytes, so every dtype works for them.
#include <climits>
#include <sstream>

#include "backends.h"
#include "ftdist/core/dtype.h"
#include "ftdist/core/mpi_check.h"

namespace ftdist::comm {
namespace {

MPI_Datatype mpi_reduce_type(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return MPI_FLOAT;
    case at::kDouble: return MPI_DOUBLE;
    case at::kLong: return MPI_INT64_T;
    case at::kInt: return MPI_INT32_T;
    case at::kByte: return MPI_UINT8_T;
    default: return MPI_DATATYPE_NULL;
  }
}

MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::Max ? MPI_MAX : MPI_SUM; }

int checked_count(int64_t n, const char* what) {
  FT_CHECK_ARG(n <= INT_MAX, what << ": " << n << " elements exceed MPI's int count (" << INT_MAX
                                  << "); split the tensor");
  return static_cast<int>(n);
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MpiGroup group, const CommOptions& options)
      : Communicator(options.verify_args), group_(std::move(group)), options_(options) {
    group_.set_timeout(options.timeout_s);
  }

  int rank() const override { return group_.rank(); }
  int size() const override { return group_.size(); }
  Backend backend() const override { return Backend::Mpi; }
  at::Device device() const override { return at::Device(at::kCPU); }

  void barrier() override {
    MPI_Request req = MPI_REQUEST_NULL;
    FT_MPI_CHECK(MPI_Ibarrier(group_.get(), &req));
    group_.wait(&req, "barrier");
  }

  std::unique_ptr<Communicator> split(int color, int key) override {
    return make_mpi_communicator(group_.split(color, key), options_);
  }

 protected:
  void agree(const char* what, const Signature& sig, const std::string& local_problem) override {
    group_.agree(what, sig.data(), kSignatureFieldNames, kSignatureFields, local_problem);
  }

  std::string backend_problem(const at::Tensor& t) const override {
    if (!t.is_cpu()) return "the mpi backend takes CPU tensors, got one on " + t.device().str() + " (use nccl)";
    at::ScalarType s = t.scalar_type();
    if (mpi_reduce_type(s) == MPI_DATATYPE_NULL && !is_reduced_float(s))
      return "the mpi backend does not support dtype " + dtype_name(s) + " (fp32, fp64, bf16, fp16, int32, int64, uint8)";
    return "";
  }

  void do_all_gather_into(const at::Tensor& out, const at::Tensor& in) override {
    int bytes = checked_count(in.numel() * static_cast<int64_t>(in.element_size()), "all_gather_into");
    // In place when `in` is this rank's own slot of `out` (as NCCL defines it).
    const char* own_slot = static_cast<const char*>(out.data_ptr()) + int64_t(rank()) * bytes;
    const void* src = in.data_ptr() == own_slot ? MPI_IN_PLACE : in.data_ptr();
    MPI_Request req = MPI_REQUEST_NULL;
    FT_MPI_CHECK(MPI_Iallgather(src, bytes, MPI_BYTE, out.data_ptr(), bytes, MPI_BYTE, group_.get(), &req));
    group_.wait(&req, "all_gather_into");
  }

  void do_reduce_scatter(const at::Tensor& out, const at::Tensor& in, ReduceOp op) override {
    at::Tensor work_in = reduction_view(in);
    at::Tensor work_out = is_reduced_float(out.scalar_type()) ? at::empty(out.sizes(), out.options().dtype(at::kFloat)) : out;
    int count = checked_count(out.numel(), "reduce_scatter");
    MPI_Request req = MPI_REQUEST_NULL;
    FT_MPI_CHECK(MPI_Ireduce_scatter_block(work_in.data_ptr(), work_out.data_ptr(), count,
                                           mpi_reduce_type(work_in.scalar_type()), mpi_op(op), group_.get(), &req));
    group_.wait(&req, "reduce_scatter");
    finish(out, work_out, op);
  }

  void do_all_reduce(const at::Tensor& tensor, ReduceOp op) override {
    at::Tensor work = reduction_view(tensor);
    int count = checked_count(work.numel(), "all_reduce");
    MPI_Request req = MPI_REQUEST_NULL;
    FT_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, work.data_ptr(), count, mpi_reduce_type(work.scalar_type()),
                                mpi_op(op), group_.get(), &req));
    group_.wait(&req, "all_reduce");
    finish(tensor, work, op);
  }

  void do_broadcast(const at::Tensor& tensor, int root) override {
    int bytes = checked_count(tensor.numel() * static_cast<int64_t>(tensor.element_size()), "broadcast");
    MPI_Request req = MPI_REQUEST_NULL;
    FT_MPI_CHECK(MPI_Ibcast(tensor.data_ptr(), bytes, MPI_BYTE, root, group_.get(), &req));
    group_.wait(&req, "broadcast");
  }

 private:
  // The tensor MPI reduces: the tensor itself, or an fp32 copy of a bf16/fp16 tensor.
  static at::Tensor reduction_view(const at::Tensor& t) {
    return is_reduced_float(t.scalar_type()) ? t.to(at::kFloat) : t;
  }
  // Applies avg's division and writes an fp32 work buffer back into a bf16/fp16 result.
  void finish(const at::Tensor& result, const at::Tensor& work, ReduceOp op) const {
    if (op == ReduceOp::Avg) work.div_(static_cast<double>(size()));
    if (!work.is_same(result)) result.copy_(work);
  }

  MpiGroup group_;
  CommOptions options_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(MpiGroup group, const CommOptions& options) {
  return std::make_unique<MpiCommunicator>(std::move(group), options);
}

}  // namespace ftdist::comm
