#include "ftdist/plan/search.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <tuple>

#include "ftdist/core/bytes.h"
#include "ftdist/core/check.h"

namespace ftdist::plan {
namespace {

std::vector<int> gpu_counts(const PlanRequest& req, const HardwareOption& hw) {
  if (req.gpus) return {*req.gpus};
  if (req.nodes) return {*req.nodes * hw.gpus_per_node};
  std::vector<int> out;
  for (int g = 1; g <= hw.gpus_per_node && g <= req.max_gpus; g *= 2) out.push_back(g);
  if (out.empty() || out.back() != hw.gpus_per_node) {
    if (hw.gpus_per_node <= req.max_gpus) out.push_back(hw.gpus_per_node);
  }
  // A cluster: every node count up to 16, then steps of an eighth (a cluster of thousands of nodes
  // is searched in seconds), and all of its nodes; a plain --gpu: powers of two.
  const int most = std::min<int64_t>(hw.max_nodes, req.max_gpus / hw.gpus_per_node);
  for (int k = 2; k <= most; k = hw.every_node_count ? k + std::max(1, k / 16 * 2) : k * 2) out.push_back(k * hw.gpus_per_node);
  if (hw.every_node_count && most >= 2 && out.back() != most * hw.gpus_per_node) out.push_back(most * hw.gpus_per_node);
  return out;
}

std::vector<Stage> stages_for(const PlanRequest& req, int gpus, int nodes) {
  if (req.stage) return {*req.stage};
  if (gpus == 1) return {Stage::None};
  std::vector<Stage> s = {Stage::Full, Stage::GradOp, Stage::Optimizer, Stage::None};
  if (nodes > 1) s.push_back(Stage::Hybrid);
  return s;
}

std::vector<int64_t> micro_batches(const PlanRequest& req) {
  if (req.micro_batch) return {*req.micro_batch};
  return {1, 2, 4, 8, 16, 32, 64};
}

std::string gib(uint64_t bytes) { return format_gib(double(bytes)); }

// Lays out one candidate; returns "" or why it cannot exist at all.
std::string layout(Candidate& c, const HardwareOption& hw, const PlanRequest& req) {
  if (c.gpus < 1) return "needs at least one GPU";
  if (c.gpus > hw.gpus_per_node) {
    if (c.gpus % hw.gpus_per_node != 0)
      return std::to_string(c.gpus) + " GPUs do not fill whole nodes of " + std::to_string(hw.gpus_per_node);
    c.nodes = c.gpus / hw.gpus_per_node;
  } else {
    c.nodes = 1;
  }
  if (req.nodes && *req.nodes != c.nodes)
    return "--nodes " + std::to_string(*req.nodes) + ", but " + std::to_string(c.gpus) + " GPUs at " + std::to_string(hw.gpus_per_node) +
           " per node fill " + std::to_string(c.nodes) + " node" + (c.nodes == 1 ? "" : "s");
  if (c.nodes > hw.max_nodes)
    return "needs " + std::to_string(c.nodes) + " nodes, only " + std::to_string(hw.max_nodes) + " available" +
           (!hw.node_type.empty() ? " (the cluster file's count)" : " (--max-gpus " + std::to_string(req.max_gpus) + ")");
  RunSetup& s = c.setup;
  if (s.stage == Stage::Hybrid && c.nodes < 2) return "hybrid sharding needs more than one node";
  s.shard_group = shard_group_size(s.stage, c.gpus, hw.gpus_per_node);  // hybrid: one node per shard group
  s.replicas = c.gpus / s.shard_group;
  if (req.global_batch > 0) {
    int64_t per_step = s.micro_batch * s.data_parallel();
    if (req.global_batch % per_step != 0)
      return "global batch " + std::to_string(req.global_batch) + " is not a multiple of micro-batch x ranks = " +
             std::to_string(per_step);
    c.grad_accum = req.global_batch / per_step;
  } else {
    c.grad_accum = 1;
  }
  return "";
}

// Cost and time of the workload, or without one (total tokens 0) per million tokens: the same order.
double cost_of(const Candidate& c) { return c.time.steps > 0 ? c.time.cost_usd : c.time.cost_per_mtok_usd; }
double time_of(const Candidate& c) { return c.time.steps > 0 ? c.time.total_s : 1e6 / c.time.tokens_per_s; }

double objective_value(const Candidate& c, Objective o) { return o == Objective::Cost ? cost_of(c) : time_of(c); }


// Within kNearTie of the best value (inside the model's own uncertainty), fewer GPUs win (easier
// to get, fewer failure points), then less memory per GPU (more slack against an out-of-memory),
// then the objective.
constexpr double kNearTie = 0.02;
bool preferred(const Candidate& a, const Candidate& b, Objective o, double best_value) {
  bool a_near = objective_value(a, o) <= best_value * (1 + kNearTie);
  bool b_near = objective_value(b, o) <= best_value * (1 + kNearTie);
  if (a_near != b_near) return a_near;
  if (a_near && a.gpus != b.gpus) return a.gpus < b.gpus;
  if (a_near && a.needed_bytes() != b.needed_bytes()) return a.needed_bytes() < b.needed_bytes();
  return better_candidate(a, b, o);
}

}  // namespace

bool better_candidate(const Candidate& a, const Candidate& b, Objective o) {
  auto key = [&](const Candidate& c) {
    return o == Objective::Cost ? std::make_tuple(cost_of(c), time_of(c), c.gpus)
                                : std::make_tuple(time_of(c), cost_of(c), c.gpus);
  };
  return key(a) < key(b);
}

Hardware hardware_for(const HardwareOption& option, const PlanRequest& req) {
  Hardware h;
  h.peak_tflops = option.gpu.bf16_tflops;
  h.fp32_peak_tflops = option.gpu.fp32_tflops;
  h.efficiency = req.mfu.value_or(option.gpu.efficiency);
  h.hbm_gbs = option.gpu.hbm_gbs;
  h.link_busbw_gbs = option.gpu.link_busbw_gbs;
  h.network_busbw_gbs = option.gpu.network_busbw_gbs;
  h.gpus_per_node = option.gpus_per_node;
  h.price_per_gpu_hour = option.gpu.price_per_hour;
  return h;
}

int ranks_per_node(const Candidate& c, const HardwareOption& option) {
  return c.nodes > 1 ? option.gpus_per_node : c.gpus;
}

namespace {

// The candidate with activation checkpointing `ck`: its memory (the timeline's peak decides the
// fit), host memory and time.
Candidate priced(Candidate c, ActivationCheckpointing ck, const PlanRequest& req, const HardwareOption& hw, const Hardware& hwm) {
  c.setup.activation_checkpointing = ck;
  c.host = estimate_host_memory(estimate_memory(req.model, c.setup), c.setup, ranks_per_node(c, hw));
  c.peak = peak_memory(req.model, c.setup);
  c.memory = c.peak.categories;
  c.fits = c.needed_bytes() <= c.usable_bytes;
  c.time = estimate_time(req.model, c.setup, hwm, Workload{req.total_tokens, c.grad_accum});
  if (!c.fits) {
    char buf[256];
    std::snprintf(buf, sizeof(buf), "needs %s per GPU (peak in the %s); limit %s (%s - %.0f%% headroom)", gib(c.needed_bytes()).c_str(),
                  c.peak.phase.c_str(), gib(c.usable_bytes).c_str(), gib(c.gpu_memory_bytes).c_str(), req.headroom * 100);
    c.rejected_because = buf;
  }
  return c;
}

// Whether the candidate fits with activation checkpointing `ck`: the timeline's peak only.
bool fits_with(Candidate c, ActivationCheckpointing ck, const PlanRequest& req) {
  c.setup.activation_checkpointing = ck;
  c.peak = peak_memory(req.model, c.setup);
  return c.needed_bytes() <= c.usable_bytes;
}

// --checkpointing auto: no checkpointing when that fits; otherwise the fewest checkpointed layers
// that fit, the fastest such plan (each costs one more forward of a layer). Checkpointing one more
// of the first L - 1 layers lowers the peak; the last layer's may not (its recomputation comes
// right after its forward, on top of all the other layers' inputs). So: when L - 1 layers do not
// fit, no K below does and `full` is tried; otherwise K is bisected over 1..L-1. When nothing
// fits, the candidate shown is `full`'s, rejected.
void add_auto_checkpointing(const Candidate& laid_out, const PlanRequest& req, const HardwareOption& hw, const Hardware& hwm,
                            std::vector<Candidate>& out) {
  out.push_back(priced(laid_out, ActivationCheckpointing::None, req, hw, hwm));
  if (out.back().fits) return;
  const int64_t most = req.model.layers - 1;
  if (most < 1 || !fits_with(laid_out, ActivationCheckpointing::first(most), req)) {
    out.push_back(priced(laid_out, ActivationCheckpointing::Full, req, hw, hwm));
    return;
  }
  int64_t lo = 1, hi = most;  // the smallest fitting K is in [lo, hi]; hi fits
  while (lo < hi) {
    const int64_t k = lo + (hi - lo) / 2;
    if (fits_with(laid_out, ActivationCheckpointing::first(k), req))
      hi = k;
    else
      lo = k + 1;
  }
  out.push_back(priced(laid_out, ActivationCheckpointing::first(hi), req, hw, hwm));
}

}  // namespace

PlanResult search(const PlanRequest& req) {
  FT_CHECK_ARG(!req.hardware.empty(), "no hardware to plan for: give --gpu or --cluster");
  FT_CHECK_ARG(req.headroom >= 0 && req.headroom < 1, "--headroom must be in [0, 1), got " << req.headroom);
  FT_CHECK_ARG(req.total_tokens >= 0, "the workload's tokens must be >= 0 (0: none, rates only)");
  if (req.activation_checkpointing) check_activation_checkpointing(*req.activation_checkpointing, req.model.layers, "--checkpointing");
  if (req.mfu) FT_CHECK_ARG(*req.mfu > 0 && *req.mfu <= 1, "--mfu must be in (0, 1], got " << *req.mfu);
  PlanResult result;
  for (int h = 0; h < int(req.hardware.size()); ++h) {
    const HardwareOption& hw = req.hardware[h];
    const Hardware hwm = hardware_for(hw, req);
    for (int gpus : gpu_counts(req, hw)) {
      int nodes = gpus > hw.gpus_per_node ? (gpus + hw.gpus_per_node - 1) / hw.gpus_per_node : 1;
      for (Stage stage : stages_for(req, gpus, nodes)) {
        for (int64_t mb : micro_batches(req)) {
          Candidate c;
          c.hardware = h;
          c.gpus = gpus;
          c.setup = req.base;
          c.setup.stage = stage;
          c.setup.micro_batch = mb;
          if (req.auto_loss_chunk) c.setup.loss_chunk = default_loss_chunk(req.model, mb * c.setup.seq_len);
          c.gpu_memory_bytes = hw.gpu.memory_bytes();
          c.usable_bytes = uint64_t(double(c.gpu_memory_bytes) * (1.0 - req.headroom));
          const std::string why = layout(c, hw, req);
          if (!why.empty()) {
            c.setup.activation_checkpointing = req.activation_checkpointing.value_or(ActivationCheckpointing::None);
            c.rejected_because = why;
            result.candidates.push_back(std::move(c));
          } else if (req.activation_checkpointing) {
            result.candidates.push_back(priced(c, *req.activation_checkpointing, req, hw, hwm));
          } else {
            add_auto_checkpointing(c, req, hw, hwm, result.candidates);
          }
        }
      }
    }
  }
  double best_value = -1;
  for (const Candidate& c : result.candidates)
    if (c.fits && (best_value < 0 || objective_value(c, req.objective) < best_value)) best_value = objective_value(c, req.objective);
  for (int i = 0; i < int(result.candidates.size()); ++i) {
    const Candidate& c = result.candidates[i];
    if (c.fits && (result.recommended < 0 || preferred(c, result.candidates[result.recommended], req.objective, best_value)))
      result.recommended = i;
  }
  if (result.recommended >= 0) {
    const Candidate& best = result.candidates[result.recommended];
    for (int i = 0; i < int(result.candidates.size()); ++i) {
      Candidate& c = result.candidates[i];
      if (i == result.recommended || !c.fits) continue;
      char buf[256];
      const bool near = objective_value(c, req.objective) <= best_value * (1 + kNearTie);
      if (near && c.gpus > best.gpus)
        std::snprintf(buf, sizeof(buf), "fits, within %.0f%% of the best %s, but needs %d GPUs, not %d", kNearTie * 100,
                      req.objective == Objective::Cost ? "cost" : "time", c.gpus, best.gpus);
      else if (near && c.gpus == best.gpus)
        std::snprintf(buf, sizeof(buf), "fits, within %.0f%% of the best %s, but leaves less memory free (%.1f vs %.1f GiB)",
                      kNearTie * 100, req.objective == Objective::Cost ? "cost" : "time",
                      double(c.usable_bytes - c.needed_bytes()) / double(kGiB),
                      double(best.usable_bytes - best.needed_bytes()) / double(kGiB));
      else if (req.objective == Objective::Cost)
        std::snprintf(buf, sizeof(buf), "fits, but costs $%s vs $%s%s", usd_text(cost_of(c)).c_str(), usd_text(cost_of(best)).c_str(),
                      req.total_tokens > 0 ? "" : " per million tokens");
      else if (req.total_tokens > 0)
        std::snprintf(buf, sizeof(buf), "fits, but takes %s vs %s", duration_text(c.time.total_s).c_str(), duration_text(best.time.total_s).c_str());
      else
        std::snprintf(buf, sizeof(buf), "fits, but makes %.0f vs %.0f tokens/s", c.time.tokens_per_s, best.time.tokens_per_s);
      c.rejected_because = buf;
    }
  }
  return result;
}

}  // namespace ftdist::plan
