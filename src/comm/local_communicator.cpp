// The `local` backend: one rank, no MPI. Collectives reduce to copies; tensors may live anywhere
// (device() says where the caller should put them: the CPU, or GPU 0 for a CUDA job).
#include <sstream>

#include "backends.h"
#include "ftdist/core/check.h"

namespace ftdist::comm {
namespace {

class LocalCommunicator final : public Communicator {
 public:
  LocalCommunicator(const CommOptions& options, at::Device device)
      : Communicator(options.verify_args), options_(options), device_(device) {}

  int rank() const override { return 0; }
  int size() const override { return 1; }
  Backend backend() const override { return Backend::Local; }
  at::Device device() const override { return device_; }

  void barrier() override {}
  void barrier_after_io(const char*, int64_t) override {}
  std::unique_ptr<Communicator> split(int color, int /*key*/) override {
    FT_CHECK_ARG(color >= 0, "split: color must be >= 0, got " << color);
    return make_local_communicator(options_, device_);
  }

 protected:
  void agree(const char* what, const Signature&, const std::string& local_problem) override {
    FT_CHECK_ARG(local_problem.empty(), what << ": " << local_problem);
  }
  std::string backend_problem(const at::Tensor&) const override { return ""; }

  void do_all_gather_into(const at::Tensor& out, const at::Tensor& in) override { copy_if_distinct(out, in); }
  void do_reduce_scatter(const at::Tensor& out, const at::Tensor& in, ReduceOp) override { copy_if_distinct(out, in); }
  void do_all_reduce(const at::Tensor&, ReduceOp) override {}
  void do_broadcast(const at::Tensor&, int) override {}

 private:
  static void copy_if_distinct(const at::Tensor& out, const at::Tensor& in) {
    if (!out.is_same(in)) out.view(in.sizes()).copy_(in);
  }
  CommOptions options_;
  at::Device device_;
};

}  // namespace

std::unique_ptr<Communicator> make_local_communicator(const CommOptions& options, at::Device device) {
  return std::make_unique<LocalCommunicator>(options, device);
}

}  // namespace ftdist::comm
