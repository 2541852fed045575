// The `mpi` backend: CPU tensors through MPI. fp32, fp64, int32, int64 are reduced natively; bf16
// and fp16 (no MPI types) in their own storage, by user-defined ops that combine each pair of
// elements in fp32 and round back, as NCCL's ring rounds at every hop: no fp32 copy of the tensor
// (a whole unit's, which the planner's 16-bit reduce buffers do not count). Gathers and broadcasts
// move raw bytes, so every dtype works for them.
#include <algorithm>
#include <climits>
#include <sstream>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

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

// Elementwise sum or max of 16-bit floats, in fp32, rounded back (an MPI user function).
template <typename T, bool kMax>
void combine16(void* in, void* inout, int* len, MPI_Datatype*) {
  const T* a = static_cast<const T*>(in);
  T* b = static_cast<T*>(inout);
  for (int i = 0; i < *len; ++i) {
    const float x = static_cast<float>(a[i]), y = static_cast<float>(b[i]);
    b[i] = T(kMax ? std::max(x, y) : x + y);
  }
}

// The 2-byte datatype and the ops reducing bf16 / fp16 in place, made once (after MPI_Init).
struct Reduce16 {
  MPI_Datatype type = MPI_DATATYPE_NULL;
  MPI_Op bf16_sum = MPI_OP_NULL, bf16_max = MPI_OP_NULL, f16_sum = MPI_OP_NULL, f16_max = MPI_OP_NULL;
  Reduce16() {
    FT_MPI_CHECK(MPI_Type_contiguous(2, MPI_BYTE, &type));
    FT_MPI_CHECK(MPI_Type_commit(&type));
    FT_MPI_CHECK(MPI_Op_create(&combine16<c10::BFloat16, false>, /*commute=*/1, &bf16_sum));
    FT_MPI_CHECK(MPI_Op_create(&combine16<c10::BFloat16, true>, 1, &bf16_max));
    FT_MPI_CHECK(MPI_Op_create(&combine16<c10::Half, false>, 1, &f16_sum));
    FT_MPI_CHECK(MPI_Op_create(&combine16<c10::Half, true>, 1, &f16_max));
  }
  MPI_Op op(at::ScalarType t, ReduceOp o) const {
    const bool max = o == ReduceOp::Max;
    return t == at::kBFloat16 ? (max ? bf16_max : bf16_sum) : (max ? f16_max : f16_sum);
  }
};
const Reduce16& reduce16() {
  static const Reduce16 r;
  return r;
}

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
  void barrier_after_io(const char* what, int64_t bytes) override { group_.barrier_within(what, io_wait_limit_s(options_, bytes)); }

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
    int count = checked_count(out.numel(), "reduce_scatter");
    MPI_Request req = MPI_REQUEST_NULL;
    FT_MPI_CHECK(MPI_Ireduce_scatter_block(in.data_ptr(), out.data_ptr(), count, reduce_type(in), reduce_op(in, op), group_.get(), &req));
    group_.wait(&req, "reduce_scatter");
    if (op == ReduceOp::Avg) out.div_(static_cast<double>(size()));
  }

  void do_all_reduce(const at::Tensor& tensor, ReduceOp op) override {
    int count = checked_count(tensor.numel(), "all_reduce");
    MPI_Request req = MPI_REQUEST_NULL;
    FT_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, tensor.data_ptr(), count, reduce_type(tensor), reduce_op(tensor, op), group_.get(), &req));
    group_.wait(&req, "all_reduce");
    if (op == ReduceOp::Avg) tensor.div_(static_cast<double>(size()));
  }

  void do_broadcast(const at::Tensor& tensor, int root) override {
    int bytes = checked_count(tensor.numel() * static_cast<int64_t>(tensor.element_size()), "broadcast");
    MPI_Request req = MPI_REQUEST_NULL;
    FT_MPI_CHECK(MPI_Ibcast(tensor.data_ptr(), bytes, MPI_BYTE, root, group_.get(), &req));
    group_.wait(&req, "broadcast");
  }

 private:
  // The datatype and op MPI reduces `t` with: its own, or for bf16 / fp16 the 16-bit ones.
  static MPI_Datatype reduce_type(const at::Tensor& t) {
    return is_reduced_float(t.scalar_type()) ? reduce16().type : mpi_reduce_type(t.scalar_type());
  }
  static MPI_Op reduce_op(const at::Tensor& t, ReduceOp op) {
    return is_reduced_float(t.scalar_type()) ? reduce16().op(t.scalar_type(), op) : mpi_op(op);
  }

  MpiGroup group_;
  CommOptions options_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(MpiGroup group, const CommOptions& options) {
  return std::make_unique<MpiCommunicator>(std::move(group), options);
}

}  // namespace ftdist::comm
