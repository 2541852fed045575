#include "ftdist/train/memory_fit.h"

#include <c10/util/Exception.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "ftdist/comm/communicator.h"
#include "ftdist/comm/device_binding.h"
#include "ftdist/fsdp/device_memory.h"
#include "ftdist/core/bytes.h"
#include "ftdist/core/check.h"
#include "ftdist/fsdp/memory_category.h"
#include "ftdist/fsdp/memory_report.h"
#include "ftdist/plan/host_memory.h"
#include "ftdist/plan/memory_model.h"
#include "ftdist/plan/search.h"

namespace ftdist::train {
namespace {

// Every stage, micro-batch and activation checkpointing for `world` ranks of `budget` bytes (one node of
// `world` ranks: hybrid needs several), timed on the configured GPU or, on CPU, a nominal one.
constexpr int kMaxRanks = 1024;  // how far "how many ranks would it take" looks

plan::PlanResult search_for(const RunConfig& c, const plan::ModelSpec& spec, std::optional<int> world, int64_t global_batch,
                            const MemoryBudget& budget) {
  plan::PlanRequest req;
  req.model = spec;
  plan::HardwareOption hw;
  hw.gpu.name = "this machine";
  hw.gpu.bf16_tflops = c.peak_tflops > 0 ? c.peak_tflops : 1.0;
  hw.gpu.efficiency = 0.4;
  hw.gpu.hbm_gbs = 100;
  hw.gpu.link_busbw_gbs = 10;
  hw.gpu.network_busbw_gbs = 10;
  hw.gpu.price_per_hour = 1;
  hw.gpu.memory_gib = double(budget.bytes) / double(kGiB);
  hw.gpus_per_node = world.value_or(kMaxRanks);
  hw.max_nodes = 1;
  req.hardware = {hw};
  // The base carries precision, prefetch, attention and the rest; the search sets the stage and
  // the group sizes for each candidate world size (so the base's own stage and group are moot).
  RunConfig base = c;
  base.shard = plan::Stage::Full;
  base.shard_group = 0;
  // train.loss_chunk = -1 (auto): decided for each candidate's micro-batch, as resolve_run() does after
  req.auto_loss_chunk = c.loss_chunk < 0;
  if (req.auto_loss_chunk) base.loss_chunk = plan::default_loss_chunk(spec, c.micro_batch * c.seq_len);
  req.base = runtime_setup(base, world.value_or(1), c.micro_batch);
  req.gpus = world;
  req.max_gpus = kMaxRanks;
  req.global_batch = global_batch;
  req.total_tokens = double(c.steps) * double(global_batch) * double(c.seq_len);
  req.objective = plan::Objective::Time;
  return plan::search(req);
}

std::string describe(const plan::RunSetup& s) {
  std::ostringstream os;
  const plan::ActivationCheckpointing ck = s.activation_checkpointing;
  os << "shard " << plan::stage_name(s.stage) << ", micro_batch " << s.micro_batch << ", checkpointing "
     << plan::activation_checkpointing_name(ck)
     << (ck.partial() ? " layers" : "");
  return os.str();
}

}  // namespace

uint64_t mem_available_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  return 0;
}

MemoryBudget memory_budget(const RunConfig& c) {
  const int local = comm::local_size();  // collective: every rank, whatever the source
  if (c.memory_limit > 0) return {c.memory_limit, c.origin + " parallel.memory_limit"};
  if (resolved_device(c) == "cuda") {
    // This rank's GPU, chosen (and made current) the way the nccl backend will choose it.
    const at::Device gpu(at::kCUDA, static_cast<c10::DeviceIndex>(comm::bind_local_gpu()));
    const uint64_t total = uint64_t(fsdp::device_memory_capacity(gpu));
    return {total, "the memory of " + gpu.str() + " (" + format_bytes(double(total)) + ")"};
  }
  const uint64_t avail = mem_available_bytes();
  if (avail == 0) return {0, "unknown (no /proc/meminfo)"};
  return {avail / uint64_t(local), "MemAvailable " + format_bytes(double(avail)) + " / " + std::to_string(local) +
                                        " rank(s) on this node"};
}

void check_fits_host(uint64_t need, comm::Communicator& world, const std::string& what, const std::string& hint) {
  const int local = std::max(1, comm::local_size());
  const uint64_t available = mem_available_bytes() / uint64_t(local);
  at::Tensor short_anywhere = at::tensor({available != 0 && need > available ? 1.0 : 0.0}, at::kDouble);
  world.all_reduce(short_anywhere, comm::ReduceOp::Max);
  FT_CHECK(short_anywhere.item<double>() == 0, ErrorKind::DoesNotFit,
           what << ": the planned peak is " << format_bytes(double(need)) << " of host memory per rank, MemAvailable leaves "
                << format_bytes(double(available)) << " to each of the " << local << " rank(s) on this node: " << hint);
}

plan::RunSetup runtime_setup(const RunConfig& c, int world, int64_t micro_batch) {
  plan::RunSetup s = fsdp::planned_setup(fsdp_config(c), world, micro_batch, c.seq_len, runtime_attention(c));
  // (resolved from "auto" by resolve_run(), for each file: eval forwards of packed examples build
  // their masks too, planned as the training's would be)
  s.packed_documents = c.packing == "documents" || c.eval_packing == "documents";
  return s;
}

RunConfig choose_parallel(const RunConfig& c, const plan::ModelSpec& spec, int world, int64_t global_batch,
                          const MemoryBudget& budget) {
  FT_CHECK_ARG(budget.bytes > 0, c.origin << ": parallel.auto needs a memory budget; set parallel.memory_limit");
  const plan::PlanResult r = search_for(c, spec, world, global_batch, budget);
  if (r.recommended < 0)
    FT_CHECK(false, ErrorKind::DoesNotFit,
             c.origin << ": parallel.auto: no shard stage, micro_batch and checkpointing fits " << world << " rank(s) of "
                      << format_bytes(double(budget.bytes)) << " (" << budget.source << "); "
                      << recommendation(c, spec, world, global_batch, budget));
  RunConfig out = c;
  const plan::RunSetup& s = r.candidates[size_t(r.recommended)].setup;
  out.shard = s.stage;
  out.micro_batch = s.micro_batch;
  out.activation_checkpointing = s.activation_checkpointing;
  out.loss_chunk = s.loss_chunk;  // (the auto one of the chosen micro-batch; else the config's)
  return out;
}

std::string recommendation(const RunConfig& c, const plan::ModelSpec& spec, int world, int64_t global_batch,
                           const MemoryBudget& budget) {
  if (budget.bytes == 0) return "no memory budget is known to plan against (set parallel.memory_limit)";
  plan::PlanResult r = search_for(c, spec, world, global_batch, budget);
  if (r.recommended >= 0) {
    const plan::Candidate& best = r.candidates[size_t(r.recommended)];
    return "ftdist plan recommends for " + std::to_string(world) + " rank(s) of " + format_bytes(double(budget.bytes)) +
           ": " + describe(best.setup) + " (planned " + format_bytes(double(best.needed_bytes())) +
           " per rank); set parallel.auto = true to use it";
  }
  // Nothing fits on this many ranks: how many would it take (same global batch)?
  r = search_for(c, spec, std::nullopt, global_batch, budget);
  if (r.recommended >= 0) {
    const plan::Candidate& best = r.candidates[size_t(r.recommended)];
    return "nothing fits " + std::to_string(world) + " rank(s) of " + format_bytes(double(budget.bytes)) +
           "; ftdist plan recommends " + std::to_string(best.gpus) + " ranks with " + describe(best.setup) + " (planned " +
           format_bytes(double(best.needed_bytes())) + " per rank)";
  }
  uint64_t least = 0;
  for (const plan::Candidate& cand : r.candidates)
    if (cand.needed_bytes() > 0 && (least == 0 || cand.needed_bytes() < least)) least = cand.needed_bytes();
  return "nothing fits up to " + std::to_string(kMaxRanks) + " ranks of " + format_bytes(double(budget.bytes)) +
         (least ? " (the smallest plan needs " + format_bytes(double(least)) + " per rank)" : "") +
         "; use ranks with more memory, a shorter data.seq_len or a smaller model";
}

void FitCheck::check_plan() const {
  if (budget.bytes == 0) return;
  const plan::PeakMemory peak = plan::peak_memory(spec, setup);
  const plan::MemoryBreakdown& planned = peak.alive;
  if (peak.needed(setup.host_device) <= budget.bytes) return;
  // The category at which the bytes alive at the step's peak, taken in the order the runtime
  // allocates them, pass the budget: the one that does not fit.
  using plan::MemCategory;
  uint64_t sum = setup.host_device ? planned.host.total() : 0;  // offloaded on the CPU: the same memory
  MemCategory over = MemCategory::overhead;
  for (MemCategory cat : {MemCategory::params_sharded, MemCategory::master, MemCategory::optimizer, MemCategory::grads_sharded,
                          MemCategory::unsharded_params, MemCategory::unsharded_grads, MemCategory::comm_buffers,
                          MemCategory::activations, MemCategory::logits, MemCategory::overhead}) {
    sum += planned[cat];
    if (sum > budget.bytes) {
      over = cat;
      break;
    }
  }
  std::ostringstream os;
  os << "with " << describe(setup) << " on " << world << " rank(s) the plan needs "
     << format_bytes(double(peak.needed(setup.host_device))) << " per rank at the step's peak (the " << peak.phase << ")"
     << (setup.host_device && planned.host.total() ? " (" + format_bytes(double(planned.host.total())) + " of it offloaded master, optimizer states and staging)" : "")
     << ", available " << format_bytes(double(budget.bytes)) << " ("
     << budget.source << "); " << plan::mem_category_name(over) << " (" << format_bytes(double(planned[over]))
     << ") is the category that does not fit (" << format_bytes(double(sum - planned[over])) << " planned before it). "
     << recommendation(config, spec, world, global_batch, budget);
  FT_CHECK(false, ErrorKind::DoesNotFit, os.str());
}

void FitCheck::check_host(uint64_t available, int ranks_per_node) const {
  if (setup.host_device || available == 0) return;
  const plan::HostMemory host = plan::estimate_host_memory(spec, setup, ranks_per_node);
  if (host.node_load_peak() <= available) return;
  std::ostringstream os;
  os << "host memory: with " << describe(setup) << " each rank needs " << format_bytes(double(host.load_peak))
     << " of host memory while loading (" << format_bytes(double(host.steady)) << " when training), "
     << format_bytes(double(host.node_load_peak())) << " for the " << ranks_per_node << " rank(s) on this node; "
     << "available " << format_bytes(double(available)) << " (MemAvailable). "
     << (setup.offload_optimizer ? "Offloading keeps the master and optimizer states in host memory: turn it off, or "
                                 : "")
     << "run fewer ranks per node or free host memory (ftdist plan shows the host memory per rank and per node)";
  FT_CHECK(false, ErrorKind::DoesNotFit, os.str());
}

void FitCheck::check_step_inputs(uint64_t available, int ranks_per_node) const {
  if (available == 0) return;
  const double per_rank = double(global_batch / world) * double(setup.seq_len) * 3 * sizeof(int64_t);
  const double node = per_rank * double(ranks_per_node);
  if (node <= 0.5 * double(available)) return;
  std::ostringstream os;
  os << "host memory: train.global_batch = " << global_batch << " makes each rank build " << global_batch / world << " sequences of "
     << setup.seq_len << " tokens per step (ids, labels and positions: " << format_bytes(per_rank) << ", "
     << format_bytes(node) << " for the " << ranks_per_node << " rank(s) on this node), more than half of the "
     << format_bytes(double(available)) << " available (MemAvailable); lower train.global_batch";
  FT_CHECK(false, ErrorKind::DoesNotFit, os.str());
}

void FitCheck::run(const std::string& phase, const std::function<void()>& fn) const {
  fsdp::CategoryScope::clear_failure();
  try {
    fn();
  } catch (const c10::OutOfMemoryError& e) {
    const std::optional<plan::MemCategory> cat = fsdp::CategoryScope::at_failure();
    const plan::MemoryBreakdown planned = plan::estimate_memory(spec, setup);
    std::string first(e.what());
    first = first.substr(0, first.find('\n'));
    std::ostringstream os;
    os << "out of memory " << phase << ": " << (cat ? plan::mem_category_name(*cat) : "an allocation") << " did not fit ("
       << first << "). Planned per rank for " << describe(setup) << ": "
       << (cat ? std::string(plan::mem_category_name(*cat)) + " " + format_bytes(double(planned[*cat])) + ", " : "")
       << "step peak " << format_bytes(double(plan::peak_memory(spec, setup).needed(setup.host_device))) << "; available "
       << (budget.bytes ? format_bytes(double(budget.bytes)) + " (" + budget.source + ")" : "unknown") << ". "
       << recommendation(config, spec, world, global_batch, budget);
    FT_CHECK(false, ErrorKind::DoesNotFit, os.str());
  }
}

}  // namespace ftdist::train
