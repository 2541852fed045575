// ftdist bench comm — a collective benchmark in the style of nccl-tests.
//
// For each size S (bytes, the whole buffer as nccl-tests counts it) and each collective:
//   time    mean over --iters calls after --warmup calls, the slowest rank's
//   algbw   S / time
//   busbw   algbw * (n-1)/n for all-gather and reduce-scatter, * 2(n-1)/n for all-reduce, * 1 for
//           broadcast: the bandwidth each link sustains, comparable across rank counts
// --check fills every input with a closed-form pattern, runs each collective once more and compares
// every element with the closed-form result (pattern below), counting mismatches on every rank.
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "options.h"
#include "ftdist/comm/communicator.h"
#include "ftdist/core/bytes.h"
#include "ftdist/core/check.h"
#include "ftdist/core/dtype.h"
#include "ftdist/core/log.h"

namespace ftdist::cli {
namespace {

using comm::Communicator;
using comm::ReduceOp;

enum class Collective { AllGather, ReduceScatter, AllReduce, Broadcast };

struct CollectiveInfo {
  Collective kind;
  const char* name;
  double bus_factor_num;  // busbw = algbw * bus factor, as (num * (n-1)) / n, or 1 for broadcast
};

Collective collective_from_name(const std::string& name) {
  if (name == "all_gather" || name == "allgather") return Collective::AllGather;
  if (name == "reduce_scatter" || name == "reducescatter") return Collective::ReduceScatter;
  if (name == "all_reduce" || name == "allreduce") return Collective::AllReduce;
  if (name == "broadcast") return Collective::Broadcast;
  FT_CHECK_ARG(false, "--ops: unknown collective '" << name
                          << "' (expected all_gather, reduce_scatter, all_reduce, broadcast)");
  return Collective::AllReduce;
}

const char* collective_name(Collective c) {
  switch (c) {
    case Collective::AllGather: return "all_gather";
    case Collective::ReduceScatter: return "reduce_scatter";
    case Collective::AllReduce: return "all_reduce";
    case Collective::Broadcast: return "broadcast";
  }
  return "?";
}

// The table's column names (rank 0), after a note when one rank has no link to measure.
void print_table_header(int ranks) {
  if (ranks == 1)
    std::printf("# one rank: the collectives move no data (time is the call's overhead; busbw 0 except broadcast's,\n"
                "# whose bus factor is 1 on any number of ranks); run on several ranks to measure a link\n");
  std::printf("#\n# %12s %12s %-15s %12s %12s %12s %8s\n", "size(B)", "count", "collective", "time(us)", "algbw(GB/s)",
              "busbw(GB/s)", "#wrong");
}

double bus_factor(Collective c, int n) {
  switch (c) {
    case Collective::AllGather:
    case Collective::ReduceScatter: return double(n - 1) / n;
    case Collective::AllReduce: return 2.0 * (n - 1) / n;
    case Collective::Broadcast: return 1.0;
  }
  return 1.0;
}

// The closed-form input: element i of rank r holds (r + 1) + (i mod 5). Small integers, so sums
// over a few dozen ranks are exact even in bf16.
at::Tensor pattern(int64_t rank, const at::Tensor& index) { return index.remainder(5).add(rank + 1); }

// What rank r holds after the collective, element by element (as fp64), given n ranks and op.
at::Tensor expected(Collective c, ReduceOp op, int rank, int n, int64_t count_per_rank, const at::Tensor& index) {
  auto reduced = [&](const at::Tensor& idx) {
    at::Tensor m = idx.remainder(5);
    if (op == ReduceOp::Max) return m.add(n);                                  // rank n-1's value
    at::Tensor sum = m.mul(n).add(double(n) * (n + 1) / 2.0);                  // sum over r of (r+1) + m
    return op == ReduceOp::Avg ? sum.div(double(n)) : sum;
  };
  switch (c) {
    case Collective::AllGather: return pattern(0, index.remainder(count_per_rank)).add(index.div(count_per_rank, "floor"));
    case Collective::ReduceScatter: return reduced(index.add(int64_t(rank) * count_per_rank));
    case Collective::AllReduce: return reduced(index);
    case Collective::Broadcast: return pattern(0, index);
  }
  return index;
}

struct Buffers {
  at::Tensor in, out;      // for all_reduce and broadcast, out is in (in place)
  int64_t count_per_rank;  // elements each rank contributes / receives
  int64_t bytes;           // the size reported, nccl-tests style
};

// Element counts for a nominal size; count_per_rank 0 means the size is too small for n ranks.
Buffers make_buffers(Collective c, int64_t nominal_bytes, const at::TensorOptions& opts, int n) {
  int64_t elem = static_cast<int64_t>(c10::elementSize(opts.dtype().toScalarType()));
  Buffers b{};
  int64_t total = nominal_bytes / elem;
  if (c == Collective::AllGather || c == Collective::ReduceScatter) {
    b.count_per_rank = total / n;
    if (b.count_per_rank == 0) return b;
    at::Tensor whole = at::empty({b.count_per_rank * n}, opts);
    at::Tensor part = at::empty({b.count_per_rank}, opts);
    b.in = c == Collective::AllGather ? part : whole;
    b.out = c == Collective::AllGather ? whole : part;
    b.bytes = b.count_per_rank * n * elem;
  } else {
    b.count_per_rank = total;
    if (total == 0) return b;
    b.in = at::empty({total}, opts);
    b.out = b.in;
    b.bytes = total * elem;
  }
  return b;
}

void run_once(Communicator& comm, Collective c, ReduceOp op, const Buffers& b) {
  switch (c) {
    case Collective::AllGather: comm.all_gather_into(b.out, b.in); break;
    case Collective::ReduceScatter: comm.reduce_scatter(b.out, b.in, op); break;
    case Collective::AllReduce: comm.all_reduce(b.in, op); break;
    case Collective::Broadcast: comm.broadcast(b.in, 0); break;
  }
}

// Runs the collective once on the pattern and counts wrong elements on this rank; describes the
// first one in `first_wrong`.
int64_t check(Communicator& comm, Collective c, ReduceOp op, const Buffers& b, std::string* first_wrong) {
  at::TensorOptions index_opts = b.in.options().dtype(at::kLong);
  b.in.copy_(pattern(comm.rank(), at::arange(b.in.numel(), index_opts)));
  if (!b.out.is_same(b.in)) b.out.fill_(-1);
  run_once(comm, c, op, b);
  at::Tensor want = expected(c, op, comm.rank(), comm.size(), b.count_per_rank, at::arange(b.out.numel(), index_opts))
                        .to(at::kDouble);
  at::Tensor got = b.out.to(at::kDouble);
  double rtol = is_reduced_float(b.out.scalar_type()) ? 1e-2 : 0.0;
  at::Tensor wrong = (got - want).abs() > want.abs() * rtol;
  int64_t n_wrong = wrong.sum().item<int64_t>();
  if (n_wrong > 0) {
    int64_t i = wrong.nonzero()[0][0].item<int64_t>();
    std::ostringstream os;
    os << collective_name(c) << " of " << b.bytes << " B: element " << i << " is " << got[i].item<double>()
       << ", expected " << want[i].item<double>() << " (" << n_wrong << " wrong on this rank)";
    *first_wrong = os.str();
  }
  return n_wrong;
}

// Mean time per call; the cross-rank argument check is off while timing (it ran in check()).
double time_us(Communicator& comm, Collective c, ReduceOp op, const Buffers& b, int warmup, int iters) {
  bool verify = comm.verify_args();
  comm.set_verify_args(false);
  for (int i = 0; i < warmup; ++i) run_once(comm, c, op, b);
  comm.barrier();
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) run_once(comm, c, op, b);
  comm.synchronize();
  double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / iters;
  comm.set_verify_args(verify);
  return us;
}

// Reduces a per-rank scalar over ranks on the communicator's device.
double reduce_scalar(Communicator& comm, double value, ReduceOp op, const at::TensorOptions& opts) {
  at::Tensor t = at::full({1}, value, opts.dtype(at::kDouble));
  comm.all_reduce(t, op);
  return t.item<double>();
}

std::vector<Collective> parse_ops(const std::string& list) {
  std::vector<Collective> ops;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) ops.push_back(collective_from_name(item));
  }
  FT_CHECK_ARG(!ops.empty(), "--ops: name at least one collective");
  return ops;
}

void add_bench_comm_options(cxxopts::Options& options) {
  options.add_options()
      ("backend", "auto | local | mpi | nccl (auto: nccl when a GPU is present and --device is not cpu)",
       cxxopts::value<std::string>()->default_value("auto"))
      ("device", "auto | cpu | cuda", cxxopts::value<std::string>()->default_value("auto"))
      ("b,min-bytes", "smallest size (e.g. 8, 1K, 1M)", cxxopts::value<std::string>()->default_value("8"))
      ("e,max-bytes", "largest size (default: 4M on CPU, 256M on GPU)", cxxopts::value<std::string>()->default_value("auto"))
      ("f,step-factor", "multiply the size by this each row", cxxopts::value<int>()->default_value("4"))
      ("n,iters", "timed calls per row", cxxopts::value<int>()->default_value("20"))
      ("w,warmup", "untimed calls before timing", cxxopts::value<int>()->default_value("5"))
      ("ops", "collectives, comma-separated", cxxopts::value<std::string>()->default_value("all_gather,reduce_scatter,all_reduce,broadcast"))
      ("op", "reduce op: sum | avg | max", cxxopts::value<std::string>()->default_value("sum"))
      ("d,dtype", "fp32 | bf16 | fp16 | int64 | int32", cxxopts::value<std::string>()->default_value("fp32"))
      ("c,check", "verify every result against closed-form values")
      ("h,help", "this help");
}

// --device cuda, --backend nccl, or auto with NCCL and a GPU present (unless --backend names a CPU one).
bool uses_cuda(const std::string& device_name, comm::Backend backend) {
  const bool gpu = cuda_from_device_option(device_name);  // (--device cuda without a GPU: exit 2, as everywhere)
  const bool use_cuda = device_name == "cuda" || backend == comm::Backend::Nccl ||
                        (gpu && backend != comm::Backend::Mpi && backend != comm::Backend::Local && comm::nccl_available());
  FT_CHECK_ARG(!(use_cuda && device_name == "cpu"), "--backend nccl needs --device cuda (or auto)");
  FT_CHECK_ARG(!use_cuda || comm::cuda_device_present(), "--backend nccl: no CUDA device is present (or ftdist was built without CUDA)");
  return use_cuda;
}

}  // namespace

int bench_comm_main(int argc, char** argv) {
  cxxopts::Options options("ftdist bench comm",
                           "Collective benchmark: time, algbw, busbw per size and collective (nccl-tests style).");
  add_bench_comm_options(options);
  cxxopts::ParseResult args = parse_options(options, argc, argv);
  if (print_help_if_asked(options, args)) return 0;

  comm::CommOptions copts = comm::comm_options_from_env();
  copts.backend = comm::backend_from_name(args["backend"].as<std::string>());
  const bool use_cuda = uses_cuda(args["device"].as<std::string>(), copts.backend);

  int64_t min_bytes = static_cast<int64_t>(parse_bytes(args["min-bytes"].as<std::string>(), "--min-bytes"));
  std::string max_text = args["max-bytes"].as<std::string>();
  int64_t max_bytes = max_text == "auto" ? int64_t(use_cuda ? 256 * kMiB : 4 * kMiB)
                                         : static_cast<int64_t>(parse_bytes(max_text, "--max-bytes"));
  int factor = args["step-factor"].as<int>();
  int iters = args["iters"].as<int>();
  int warmup = args["warmup"].as<int>();
  FT_CHECK_ARG(min_bytes > 0, "--min-bytes must be positive");
  FT_CHECK_ARG(max_bytes >= min_bytes, "--max-bytes (" << max_bytes << ") must be >= --min-bytes (" << min_bytes << ")");
  FT_CHECK_ARG(factor >= 2, "--step-factor must be >= 2, got " << factor);
  FT_CHECK_ARG(iters >= 1, "--iters must be >= 1, got " << iters);
  FT_CHECK_ARG(warmup >= 0, "--warmup must be >= 0, got " << warmup);
  std::vector<Collective> ops = parse_ops(args["ops"].as<std::string>());
  ReduceOp op = comm::reduce_op_from_name(args["op"].as<std::string>());
  at::ScalarType dtype = dtype_from_name(args["dtype"].as<std::string>(), "--dtype");
  FT_CHECK_ARG(!(op == ReduceOp::Avg && !at::isFloatingType(dtype)), "--op avg needs a floating --dtype");
  bool do_check = args.count("check") > 0;

  std::unique_ptr<Communicator> comm = comm::make_communicator(use_cuda ? at::kCUDA : at::kCPU, copts);
  at::TensorOptions opts = at::TensorOptions().dtype(dtype).device(comm->device());
  int n = comm->size();

  FT_LOG_INFO("bench comm: backend " << comm::backend_name(comm->backend()) << ", " << n << " rank(s), device "
              << opts.device() << ", dtype " << dtype_name(dtype) << ", op " << comm::reduce_op_name(op) << ", "
              << iters << " iterations after " << warmup << " warm-up" << (do_check ? ", check on" : ""));
  if (comm->rank() == 0) print_table_header(n);

  int64_t total_wrong = 0;
  double busbw_sum = 0;
  int rows = 0;
  for (int64_t size = min_bytes; size <= max_bytes; size *= factor) {
    for (Collective c : ops) {
      Buffers b = make_buffers(c, size, opts, n);
      if (b.count_per_rank == 0) continue;  // fewer elements than ranks
      int64_t wrong = 0;
      std::string first_wrong;
      if (do_check) {
        wrong = check(*comm, c, op, b, &first_wrong);
        if (!first_wrong.empty()) FT_LOG_ERROR("mismatch on rank " << comm->rank() << ": " << first_wrong);
        wrong = static_cast<int64_t>(reduce_scalar(*comm, double(wrong), ReduceOp::Sum, opts));
        total_wrong += wrong;
      }
      double us = reduce_scalar(*comm, time_us(*comm, c, op, b, warmup, iters), ReduceOp::Max, opts);
      double algbw = double(b.bytes) / (us * 1e-6) / kGB;
      double busbw = algbw * bus_factor(c, n);
      busbw_sum += busbw;
      ++rows;
      if (comm->rank() == 0) {
        int64_t count = b.in.numel() > b.out.numel() ? b.in.numel() : b.out.numel();
        std::printf("  %12lld %12lld %-15s %12.2f %12.3f %12.3f %8s\n", static_cast<long long>(b.bytes),
                    static_cast<long long>(count), collective_name(c), us, algbw, busbw,
                    do_check ? std::to_string(wrong).c_str() : "n/a");
        std::fflush(stdout);
      }
    }
  }
  // (the same on every rank: the sizes and the world decide which rows run)
  FT_CHECK_ARG(rows > 0, "bench comm: no size from --min-bytes " << min_bytes << " to --max-bytes " << max_bytes
                             << " holds one element per rank (" << n << " ranks): nothing was measured or checked");
  if (comm->rank() == 0) {
    std::printf("# rows: %d, average busbw: %.3f GB/s\n", rows, rows ? busbw_sum / rows : 0.0);
    if (do_check) {
      if (total_wrong == 0) std::printf("all results correct\n");
      else std::printf("%lld wrong elements in total (first mismatches above)\n", static_cast<long long>(total_wrong));
    }
    std::fflush(stdout);
  }
  comm->barrier();
  return total_wrong == 0 ? 0 : 1;
}

}  // namespace ftdist::cli
