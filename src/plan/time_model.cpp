#include "ftdist/plan/time_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "ftdist/core/check.h"
#include "ftdist/plan/memory_model.h"

namespace ftdist::plan {
namespace {

std::string num(double v) {
  std::ostringstream os;
  os.precision(6);
  os << v;
  return os.str();
}

// Bus bandwidth (bytes/s) of a group of `size` consecutive ranks: NVLink when it fits in a node.
double busbw(int size, const Hardware& hw) {
  double gbs = size <= hw.gpus_per_node ? hw.link_busbw_gbs : hw.network_busbw_gbs;
  return gbs * 1e9;
}

// Seconds for all-gather / reduce-scatter of `bytes` (the whole buffer) over `n` ranks.
double gather_s(double bytes, int n, const Hardware& hw) { return n <= 1 ? 0.0 : bytes * (n - 1) / n / busbw(n, hw); }
double all_reduce_s(double bytes, int n, double bw) { return n <= 1 ? 0.0 : bytes * 2.0 * (n - 1) / n / bw; }

// The stage's collectives per micro-batch and per step (t.comm_s_per_micro, t.comm_s_per_step),
// from the bytes they move (whole buffers, per rank); returns the compute that hides the per-step
// collectives (the last backward, in `none`).
double add_comm_time(const ModelSpec& m, const RunSetup& s, const Hardware& hw, const UnitLayout& u, TimeEstimate& t,
                     std::vector<std::string>* explain) {
  auto say = [&](const std::string& line) {
    if (explain) explain->push_back(line);
  };
  const int n = s.shard_group;
  const double c = s.precision == Precision::Fp32 ? 4.0 : 2.0;
  const double r = float_type_bytes(s.reduce_dtype);
  const double layers_bytes = double(u.layers) * double(u.layer_shard) * n;  // elements
  const double all_elems = layers_bytes + double(u.edge_shards()) * n;
  double per_step_hidden_by = 0;
  switch (s.stage) {
    case Stage::Full:
    case Stage::Hybrid:
      // forward gathers every unit, backward gathers the layers (and the head) again; gradients
      // reduce-scatter once (with no_sync once per step, below)
      t.comm_s_per_micro = gather_s((all_elems + layers_bytes) * c, n, hw) + (s.no_sync ? 0.0 : gather_s(all_elems * r, n, hw));
      if (explain) say("comm/micro-batch (" + std::string(stage_name(s.stage)) + ") = all-gather (fwd all units + bwd layers) " + num((all_elems + layers_bytes) * c) +
          (s.no_sync ? std::string(" B") : " B + reduce-scatter " + num(all_elems * r) + " B") + ", x (N-1)/N over " +
          num(busbw(n, hw) / 1e9) + " GB/s = " + num(t.comm_s_per_micro) + " s");
      if (s.stage == Stage::Hybrid && s.replicas > 1) {
        const double shard_bytes = double(u.shard_numel()) * grad_accum_bytes(s);  // grad_: the accumulated gradient shard
        t.comm_s_per_step = all_reduce_s(shard_bytes, s.replicas, hw.network_busbw_gbs * 1e9);
        if (explain) say("comm/step (hybrid) = all-reduce of the gradient shard " + num(shard_bytes) + " B across " +
            std::to_string(s.replicas) + " replicas x 2(R-1)/R over the network = " + num(t.comm_s_per_step) + " s");
      }
      break;
    case Stage::GradOp:
      t.comm_s_per_micro = gather_s(all_elems * c, n, hw) + (s.no_sync ? 0.0 : gather_s(all_elems * r, n, hw));
      if (explain) say("comm/micro-batch (grad-op) = all-gather " + num(all_elems * c) + " B" +
          (s.no_sync ? std::string() : " + reduce-scatter " + num(all_elems * r) + " B") + ", x (N-1)/N = " + num(t.comm_s_per_micro) + " s");
      break;
    case Stage::Optimizer:
      t.comm_s_per_step = gather_s(all_elems * r, n, hw) + gather_s(all_elems * c, n, hw);
      if (explain) say("comm/step (optimizer) = reduce-scatter of the gradients in " + std::string(float_type_name(s.reduce_dtype)) + " " +
          num(all_elems * r) + " B + all-gather of the updated " + (c == 4.0 ? "fp32" : "bf16") + " parameters " + num(all_elems * c) +
          " B, x (N-1)/N = " + num(t.comm_s_per_step) + " s");
      break;
    case Stage::None: {
      const int dp = s.data_parallel();
      t.comm_s_per_step = all_reduce_s(double(m.param_count()) * r, dp, busbw(dp, hw));
      per_step_hidden_by = t.compute_s_per_micro * 2.0 / 3.0;  // overlaps the last backward
      if (explain) say("comm/step (none) = all-reduce " + num(double(m.param_count()) * r) + " B x 2(n-1)/n = " +
          num(t.comm_s_per_step) + " s, overlapped with the last backward");
      break;
    }
  }
  // no_sync (sharded stages): the gradients accumulate unsharded and reduce-scatter once, in the
  // step's last backward, which hides it as the all-reduce of `none` is hidden.
  if (s.no_sync && (s.stage == Stage::Full || s.stage == Stage::Hybrid || s.stage == Stage::GradOp)) {
    const double once = gather_s(all_elems * r, n, hw);
    t.comm_s_per_step += once;
    per_step_hidden_by += std::min(once, t.compute_s_per_micro * 2.0 / 3.0);  // (hides itself, not hybrid's all-reduce)
    if (explain) say("comm/step (no_sync) += reduce-scatter " + num(all_elems * r) + " B once, x (N-1)/N = " + num(once) +
                     " s, overlapped with the last backward");
  }
  return per_step_hidden_by;
}

}  // namespace

std::string duration_text(double s) {
  char buf[512];  // (any finite double)
  if (s < 60) std::snprintf(buf, sizeof(buf), "%.1f s", s);
  else if (s < 3600) std::snprintf(buf, sizeof(buf), "%.1f min", s / 60);
  else if (s < 48 * 3600) std::snprintf(buf, sizeof(buf), "%.2f h", s / 3600);
  else std::snprintf(buf, sizeof(buf), "%.1f days", s / 86400);
  return buf;
}

std::string usd_text(double d) {
  char buf[512];
  if (d > 0 && d < 0.0001) return "<0.0001";
  std::snprintf(buf, sizeof(buf), d >= 0.995 || d == 0 ? "%.2f" : "%.3g", d);
  return buf;
}

double model_flops_per_token(const ModelSpec& m, int64_t seq_len) {
  // (keys per query summed over the layers: a windowed layer reads at most the window)
  const int64_t windowed = m.window_layer_count();
  const double keys = double(m.layers - windowed) * double(seq_len) + double(windowed) * double(std::min(seq_len, m.sliding_window));
  return 6.0 * double(m.matmul_params()) + 12.0 * double(m.q_dim()) * keys;
}

TimeEstimate estimate_time(const ModelSpec& m, const RunSetup& s, const Hardware& hw, const Workload& w,
                           std::vector<std::string>* explain) {
  FT_CHECK_ARG(hw.peak_tflops > 0 && hw.efficiency > 0, "hardware peak and efficiency must be positive");
  FT_CHECK_ARG(w.grad_accum >= 1, "gradient accumulation must be >= 1");
  auto say = [&](const std::string& line) {
    if (explain) explain->push_back(line);
  };
  TimeEstimate t;
  const double psi = double(m.matmul_params());
  t.flops_per_token = model_flops_per_token(m, s.seq_len);
  const double attn = t.flops_per_token - 6.0 * psi;
  // Each checkpointed layer runs its forward once more: 2 x its matmul parameters + its attention's share / 3.
  const int64_t k = s.activation_checkpointing.count(m.layers);
  const double layer_forward = (2.0 * (psi - double(m.vocab) * double(m.hidden)) + attn / 3.0) / double(m.layers);
  t.hw_flops_per_token = t.flops_per_token + double(k) * layer_forward;
  if (explain) say("flops/token = 6 x Psi_matmul " + num(psi) + " + 12 x hq x keys over the L layers (s, at most the window where windowed) = " + num(t.flops_per_token) +
      (k > 0 ? "; with " + std::to_string(k) + " layer(s) recomputed (one more forward each, " + num(layer_forward) + ") " +
                   num(t.hw_flops_per_token) : ""));

  // (fp32 matmuls run without tensor cores: the runtime leaves TF32 off, as PyTorch does)
  const bool fp32 = s.precision == Precision::Fp32 && hw.fp32_peak_tflops > 0;
  const double peak = fp32 ? hw.fp32_peak_tflops : hw.peak_tflops;
  const double rate = peak * 1e12 * hw.efficiency;
  const double tokens_micro = double(s.micro_batch) * double(s.seq_len);
  t.compute_s_per_micro = tokens_micro * t.hw_flops_per_token / rate;
  if (explain) say("compute/micro-batch = b*s " + num(tokens_micro) + " x " + num(t.hw_flops_per_token) + " / (" + num(peak) +
      " TFLOP/s " + (fp32 ? "fp32" : "bf16") + " x efficiency " + num(hw.efficiency) + ") = " + num(t.compute_s_per_micro) + " s");

  const int n = s.shard_group;
  const UnitLayout u = unit_layout(m, n, shard_alignment(s.optimizer));
  const double c = s.precision == Precision::Fp32 ? 4.0 : 2.0;
  const double per_step_hidden_by = add_comm_time(m, s, hw, u, t, explain);  // compute available to hide the per-step collectives
  const double units = double(m.layers) + double(u.edges.size());
  const double exposed_micro = std::max(t.comm_s_per_micro - t.compute_s_per_micro, t.comm_s_per_micro / units);
  const double exposed_step = std::max(t.comm_s_per_step - per_step_hidden_by, t.comm_s_per_step / units);
  t.exposed_comm_s = double(w.grad_accum) * exposed_micro + exposed_step;

  // Optimizer step: reads and writes master, states, gradient and parameter shards (memory bound),
  // or with offload: each unit's gradient down and its parameters up over PCIe, and the update on
  // the host. The runtime pipelines the units (one unit's gradient comes down while the host updates
  // the previous one, whose parameters then go up), so the step takes the slower of the two, plus one
  // unit's share of the faster (filling the pipeline).
  const double state_elems = s.stage == Stage::None ? double(m.param_count()) : double(u.shard_numel());
  if (s.offload_optimizer) {
    const double transfer = state_elems * (double(step_grad_bytes(s)) + c) / (hw.host_link_gbs * 1e9);
    const double host = state_elems / hw.cpu_adam_params_per_s;
    t.optimizer_s = std::max(transfer, host) + std::min(transfer, host) / units;
    if (explain) say("optimizer (offloaded) = max(PCIe " + num(transfer) + " s, host update " + num(host) + " s at " +
                     num(hw.cpu_adam_params_per_s) + " elements/s) + the other / " + num(units) + " units = " + num(t.optimizer_s) + " s");
  } else {
    // master, states, gradient and parameter shard, each read and written
    const double states = double(u.optimizer_bytes(s.optimizer, s.precision, stage_policy(s.stage).shard_states)) / std::max(state_elems, 1.0);
    t.optimizer_s = state_elems * 2.0 * (4.0 + states + 4.0 + c) / (hw.hbm_gbs * 1e9);
    if (explain) say("optimizer = " + num(state_elems) + " elements x 2 (read + write) x (master 4 + states " + num(states) +
                     " + gradient 4 + parameter " + num(c) + ") B / " + num(hw.hbm_gbs) + " GB/s HBM = " + num(t.optimizer_s) + " s");
  }
  t.step_s = double(w.grad_accum) * t.compute_s_per_micro + t.exposed_comm_s + t.optimizer_s;
  if (explain) say("step = grad_accum " + std::to_string(w.grad_accum) + " x compute " + num(t.compute_s_per_micro) + " s + exposed comm " +
      num(t.exposed_comm_s) + " s + optimizer " + num(t.optimizer_s) + " s = " + num(t.step_s) + " s");

  const int gpus = s.data_parallel();
  t.tokens_per_step = tokens_micro * double(w.grad_accum) * gpus;
  t.tokens_per_s = t.tokens_per_step / t.step_s;
  t.mfu = t.tokens_per_s * t.flops_per_token / (peak * 1e12 * gpus);
  t.steps = static_cast<int64_t>(std::ceil(w.total_tokens / t.tokens_per_step));
  t.total_s = double(t.steps) * t.step_s;
  t.gpu_hours = t.total_s / 3600.0 * gpus;
  t.cost_usd = t.gpu_hours * hw.price_per_gpu_hour;
  t.cost_per_mtok_usd = t.step_s / 3600.0 * gpus * hw.price_per_gpu_hour / t.tokens_per_step * 1e6;
  if (explain) say("tokens/s = " + num(t.tokens_per_step) + " tokens/step / " + num(t.step_s) + " s = " + num(t.tokens_per_s) +
      " (MFU " + num(t.mfu) + "); " + std::to_string(t.steps) + " steps = " + num(t.total_s) + " s; GPU-hours = " +
      num(t.gpu_hours) + "; cost = " + num(t.gpu_hours) + " x $" + num(hw.price_per_gpu_hour) + " = $" + num(t.cost_usd));
  return t;
}

}  // namespace ftdist::plan
