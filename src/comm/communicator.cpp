#include "ftdist/comm/communicator.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "ftdist/core/check.h"
#include "ftdist/core/dtype.h"
#include "ftdist/core/torch_compat.h"

namespace ftdist::comm {

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Avg: return "avg";
    case ReduceOp::Max: return "max";
  }
  return "?";
}

ReduceOp reduce_op_from_name(const std::string& name) {
  if (name == "sum") return ReduceOp::Sum;
  if (name == "avg") return ReduceOp::Avg;
  if (name == "max") return ReduceOp::Max;
  FT_CHECK_ARG(false, "unknown reduce op '" << name << "' (expected sum, avg or max)");
  return ReduceOp::Sum;
}

const char* backend_name(Backend backend) {
  switch (backend) {
    case Backend::Auto: return "auto";
    case Backend::Local: return "local";
    case Backend::Mpi: return "mpi";
    case Backend::Nccl: return "nccl";
  }
  return "?";
}

Backend backend_from_name(const std::string& name) {
  if (name == "auto") return Backend::Auto;
  if (name == "local") return Backend::Local;
  if (name == "mpi") return Backend::Mpi;
  if (name == "nccl") return Backend::Nccl;
  FT_CHECK_ARG(false, "unknown communication backend '" << name << "' (expected auto, local, mpi or nccl)");
  return Backend::Auto;
}

namespace {
double seconds_from_env(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (!v) return fallback;
  char* end = nullptr;
  const double t = std::strtod(v, &end);
  FT_CHECK_ARG(end != v && *end == '\0' && t > 0,
               name << " must be a positive number of seconds, got '" << v << "'");
  return t;
}
}  // namespace

CommOptions comm_options_from_env(CommOptions base) {
  if (const char* v = std::getenv("FTDIST_COMM_VERIFY")) base.verify_args = std::string(v) != "0";
  base.timeout_s = seconds_from_env("FTDIST_COMM_TIMEOUT_S", base.timeout_s);
  base.io_timeout_s = seconds_from_env("FTDIST_IO_TIMEOUT_S", base.io_timeout_s);
  return base;
}

double io_wait_limit_s(const CommOptions& options, int64_t bytes) {
  return std::max(options.timeout_s, options.io_timeout_s) + double(std::max<int64_t>(bytes, 0)) / kIoAllowanceBytesPerS;
}

const char* const Communicator::kSignatureFieldNames[Communicator::kSignatureFields] = {
    "the collective", "the dtype", "the input element count", "the output element count", "the reduce op", "the root"};

namespace {
enum CollectiveKind : int64_t { kAllGather = 1, kReduceScatter, kAllReduce, kBroadcast };

// Problems every backend rejects; "" when the tensor is usable.
std::string tensor_problem(const char* name, const at::Tensor& t) {
  std::ostringstream os;
  if (!t.defined()) os << name << " is an undefined tensor";
  else if (!compat::is_dense_contiguous(t))
    os << name << " must be a dense contiguous tensor (got sizes " << t.sizes() << ", strides " << t.strides()
       << "); call .contiguous() first";
  return os.str();
}

std::string pair_problem(const at::Tensor& out, const at::Tensor& in) {
  std::ostringstream os;
  if (out.scalar_type() != in.scalar_type())
    os << "out and in must have the same dtype (out " << dtype_name(out.scalar_type()) << ", in "
       << dtype_name(in.scalar_type()) << ")";
  else if (out.device() != in.device())
    os << "out and in must be on the same device (out " << out.device() << ", in " << in.device() << ")";
  return os.str();
}

std::string op_problem(const at::Tensor& t, ReduceOp op) {
  if (op == ReduceOp::Avg && !at::isFloatingType(t.scalar_type()))
    return std::string("avg is defined for floating dtypes only, got ") + dtype_name(t.scalar_type());
  return "";
}

std::string first_of(std::initializer_list<std::string> problems) {
  for (const auto& p : problems)
    if (!p.empty()) return p;
  return "";
}

int64_t dtype_field(const at::Tensor& t) { return t.defined() ? static_cast<int64_t>(t.scalar_type()) : -1; }
int64_t numel_field(const at::Tensor& t) { return t.defined() ? t.numel() : -1; }
}  // namespace

void Communicator::check_and_agree(const char* what, const Signature& sig, std::string problem) {
  if (verify_args_ || !problem.empty()) {
    // With verification off a local problem still throws, but only on this rank; the failure
    // policy (run_guarded) then aborts the job.
    if (!verify_args_) FT_CHECK_ARG(false, what << ": " << problem);
    agree(what, sig, problem);
  }
}

void Communicator::all_gather_into(const at::Tensor& out, const at::Tensor& in) {
  std::string problem = first_of({tensor_problem("out", out), tensor_problem("in", in)});
  if (problem.empty()) {
    problem = first_of({pair_problem(out, in), backend_problem(in)});
    if (problem.empty() && out.numel() != in.numel() * size()) {
      std::ostringstream os;
      os << "out must have size() * in.numel() = " << size() << " * " << in.numel() << " = " << in.numel() * size()
         << " elements, got " << out.numel();
      problem = os.str();
    }
  }
  check_and_agree("all_gather_into", {kAllGather, dtype_field(in), numel_field(in), numel_field(out), -1, -1}, problem);
  do_all_gather_into(out, in);
}

void Communicator::reduce_scatter(const at::Tensor& out, const at::Tensor& in, ReduceOp op) {
  std::string problem = first_of({tensor_problem("out", out), tensor_problem("in", in)});
  if (problem.empty()) {
    problem = first_of({pair_problem(out, in), backend_problem(in), op_problem(in, op)});
    if (problem.empty() && in.numel() != out.numel() * size()) {
      std::ostringstream os;
      os << "in must have size() * out.numel() = " << size() << " * " << out.numel() << " = " << out.numel() * size()
         << " elements, got " << in.numel();
      problem = os.str();
    }
  }
  check_and_agree("reduce_scatter", {kReduceScatter, dtype_field(in), numel_field(in), numel_field(out),
                                     static_cast<int64_t>(op), -1}, problem);
  do_reduce_scatter(out, in, op);
}

void Communicator::all_reduce(const at::Tensor& tensor, ReduceOp op) {
  std::string problem = tensor_problem("tensor", tensor);
  if (problem.empty()) problem = first_of({backend_problem(tensor), op_problem(tensor, op)});
  check_and_agree("all_reduce", {kAllReduce, dtype_field(tensor), numel_field(tensor), numel_field(tensor),
                                 static_cast<int64_t>(op), -1}, problem);
  do_all_reduce(tensor, op);
}

void Communicator::broadcast(const at::Tensor& tensor, int root) {
  std::string problem = tensor_problem("tensor", tensor);
  if (problem.empty()) problem = backend_problem(tensor);
  if (problem.empty() && (root < 0 || root >= size())) {
    std::ostringstream os;
    os << "root " << root << " is not a rank of this communicator (size " << size() << ")";
    problem = os.str();
  }
  check_and_agree("broadcast", {kBroadcast, dtype_field(tensor), numel_field(tensor), numel_field(tensor), -1, root},
                  problem);
  do_broadcast(tensor, root);
}

}  // namespace ftdist::comm
