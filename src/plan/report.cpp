#include "ftdist/plan/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <tuple>
#include <sstream>

#include "ftdist/core/bytes.h"
#include "ftdist/plan/timeline.h"

namespace ftdist::plan {
namespace {

std::string fmt(const char* f, double v) {
  char buf[512];  // (a "%.0f" of a finite double has at most 309 digits)
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

// One epoch's time: its own whole steps (the total's steps, rounded up once, divided by the epochs
// would be far more than one epoch takes where the epochs are a sliver of a step).
double epoch_seconds(const PlanRequest& req, const Candidate& c) {
  return std::ceil(req.total_tokens / req.epochs / c.time.tokens_per_step - 1e-9) * c.time.step_s;
}
std::string gib(uint64_t b) { return fmt("%.2f", double(b) / double(kGiB)); }

std::string human_count(double n) {
  if (n >= 1e12) return fmt("%.2f T", n / 1e12);
  if (n >= 1e9) return fmt("%.2f B", n / 1e9);
  if (n >= 1e6) return fmt("%.2f M", n / 1e6);
  if (n >= 1e3) return fmt("%.1f K", n / 1e3);
  return fmt("%.0f", n);
}

// Host (CPU RAM) memory of a candidate: per rank while loading and steady, per node while loading.
std::string host_line(const Candidate& c) {
  std::ostringstream os;
  os << "host memory: " << gib(c.host.load_peak) << " GiB per rank while loading, " << gib(c.host.steady)
     << " GiB steady";
  if (c.memory.host.total()) os << " (" << gib(c.memory.host.total()) << " GiB of it offloaded master, optimizer states and staging)";
  os << "; " << gib(c.host.node_load_peak()) << " GiB per node while loading (" << c.host.ranks_per_node << " rank"
     << (c.host.ranks_per_node == 1 ? "" : "s") << ")";
  return os.str();
}

}  // namespace


std::string candidate_summary(const PlanRequest& req, const Candidate& c) {
  std::ostringstream os;
  const HardwareOption& hw = req.hardware[c.hardware];
  os << c.gpus << " x " << hw.gpu.name;
  if (c.nodes > 1) os << " (" << c.nodes << " nodes" << (hw.node_type.empty() ? "" : " of " + hw.node_type) << ")";
  os << ", shard " << stage_name(c.setup.stage) << ", micro-batch " << c.setup.micro_batch << ", grad-accum "
     << c.grad_accum << ", checkpointing " << activation_checkpointing_text(c.setup.activation_checkpointing, req.model.layers);
  if (req.auto_loss_chunk && c.setup.loss_chunk > 0) os << ", loss in chunks of " << c.setup.loss_chunk << " tokens";
  return os.str();
}

int least_memory_candidate(const PlanResult& result) {
  int best = -1;
  for (int i = 0; i < int(result.candidates.size()); ++i) {
    const Candidate& c = result.candidates[i];
    if (c.needed_bytes() == 0) continue;  // never laid out
    if (best < 0 || c.needed_bytes() < result.candidates[best].needed_bytes()) best = i;
  }
  return best;
}

nlohmann::ordered_json candidate_json(const PlanRequest& req, const Candidate& c) {
  nlohmann::ordered_json mem = nlohmann::ordered_json::object();
  for (MemCategory cat : all_mem_categories()) mem[mem_category_name(cat)] = c.memory[cat];
  mem["total"] = c.memory.total();
  const HardwareOption& hw = req.hardware[c.hardware];
  // A candidate the search never laid out (its global batch or shard group rules it out:
  // rejected_because says why) has no memory, time or cost: null, never 0.
  const bool laid_out = c.needed_bytes() > 0;
  auto known = [&](auto v) { return laid_out ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr); };
  // The workload's totals, or null without a workload (rates only).
  auto totals = [&](double v) { return req.total_tokens > 0 ? known(v) : nlohmann::ordered_json(nullptr); };
  nlohmann::ordered_json j = {
      {"gpus", c.gpus},
      {"nodes", c.nodes},
      {"gpu", hw.gpu.name},
      {"shard", stage_name(c.setup.stage)},
      {"shard_group", c.setup.shard_group},
      {"replicas", c.setup.replicas},
      {"micro_batch", c.setup.micro_batch},
      {"grad_accum", c.grad_accum},
      {"checkpointing", activation_checkpointing_name(c.setup.activation_checkpointing)},
      {"memory_per_gpu_bytes", known(mem)},
      {"host_memory_bytes", known(c.memory.host.total())},
      {"host_memory", known(nlohmann::ordered_json{{"per_rank_load_peak_bytes", c.host.load_peak},
                                                   {"per_rank_steady_bytes", c.host.steady},
                                                   {"ranks_per_node", c.host.ranks_per_node},
                                                   {"per_node_load_peak_bytes", c.host.node_load_peak()},
                                                   {"per_node_steady_bytes", c.host.node_steady()}})},
      {"gpu_memory_bytes", c.gpu_memory_bytes},
      {"usable_memory_bytes", c.usable_bytes},
      {"fits", c.fits},
      {"time", {{"step_s", known(c.time.step_s)}, {"tokens_per_s", known(c.time.tokens_per_s)}, {"total_s", totals(c.time.total_s)},
                {"epoch_s", totals(epoch_seconds(req, c))},
                {"steps", req.total_tokens > 0 ? known(nlohmann::ordered_json(c.time.steps)) : nlohmann::ordered_json(nullptr)}, {"mfu", known(c.time.mfu)}, {"exposed_comm_s_per_step", known(c.time.exposed_comm_s)}}},
      {"gpu_hours", totals(c.time.gpu_hours)},
      {"cost_usd", totals(c.time.cost_usd)},
      {"cost_per_mtok_usd", known(c.time.cost_per_mtok_usd)},
  };
  if (c.needed_bytes() > 0) {  // laid out: the step's peak as a timeline (the phase and what is alive then), what `fits` compares
    nlohmann::ordered_json at = nlohmann::ordered_json::object();
    for (MemCategory cat : all_mem_categories()) at[mem_category_name(cat)] = c.peak.alive[cat];
    j["timeline_peak"] = {{"phase", c.peak.phase}, {"bytes", c.peak.alive.total()}, {"by_category", at}};
    j["needed_bytes"] = c.needed_bytes();
  }
  if (!hw.node_type.empty()) j["node_type"] = hw.node_type;
  if (!c.rejected_because.empty()) j["rejected_because"] = c.rejected_because;
  return j;
}

nlohmann::ordered_json plan_json(const PlanReport& r) {
  const ModelSpec& m = r.request.model;
  nlohmann::ordered_json j;
  j["model"] = {{"name", m.name},          {"params_total", m.param_count()}, {"layers", m.layers},
                {"hidden", m.hidden},      {"vocab", m.vocab},                {"intermediate", m.intermediate},
                {"heads", m.heads},        {"kv_heads", m.kv_heads},          {"head_dim", m.head_dim},
                {"params_per_layer", m.layer_params()}, {"tie_embeddings", m.tie_embeddings}};
  j["inputs"] = r.inputs;
  j["recommendation"] = r.result.recommended >= 0
                            ? candidate_json(r.request, r.result.candidates[r.result.recommended])
                            : nlohmann::ordered_json(nullptr);
  if (r.result.recommended >= 0) j["recommendation"]["launch"] = r.launch_line;
  nlohmann::ordered_json cands = nlohmann::ordered_json::array();
  for (const Candidate& c : r.result.candidates) cands.push_back(candidate_json(r.request, c));
  j["candidates"] = cands;
  nlohmann::ordered_json alts = nlohmann::ordered_json::array();
  for (const AlternativeRow& a : r.alternatives)
    alts.push_back({{"method", a.method}, {"rank", a.rank}, {"trainable_params", a.trainable_params},
                    {"base_bytes", a.base_bytes}, {"adapter_bytes", a.adapter_bytes}, {"activations", a.activations},
                    {"logits", a.logits}, {"overhead", a.overhead}, {"total", a.total}, {"fits", a.fits}});
  j["alternatives"] = alts;
  j["gpu_catalog"] = r.catalog_origin;
  return j;
}

namespace {

// The model, the workload and the hardware, a line each.
void header_section(std::ostringstream& os, const PlanRequest& req) {
  const ModelSpec& m = req.model;
  os << "ftdist plan: " << m.name << " (" << human_count(double(m.param_count())) << " parameters, " << m.layers
     << " layers, hidden " << m.hidden << ", vocab " << m.vocab << ")\n";
  if (req.total_tokens > 0) os << "workload: " << human_count(req.total_tokens) << " tokens at seq-len " << req.base.seq_len << "; ";
  else os << "workload: none given (per-step time and $ per million tokens; --tokens or --examples for totals), seq-len "
          << req.base.seq_len << "; ";
  os
     << precision_name(req.base.precision) << ", " << optimizer_name(req.base.optimizer) << ", "
     << attention_name(req.base.attention) << " attention, reduce in " << float_type_name(req.base.reduce_dtype)
     << (req.base.offload_optimizer ? ", optimizer offloaded to host" : "")
     << (req.auto_loss_chunk ? std::string()  // (each candidate's own: its summary says it)
         : req.base.loss_chunk > 0 ? ", loss in chunks of " + std::to_string(req.base.loss_chunk) + " tokens" : std::string()) << "\n";
  os << "hardware: ";
  for (size_t i = 0; i < req.hardware.size(); ++i) {
    const auto& h = req.hardware[i];
    os << (i ? "; " : "") << h.gpu.display << " (" << fmt("%.1f", h.gpu.memory_gib) << " GiB, "
       << fmt("%.0f", h.gpu.bf16_tflops) << " TFLOP/s bf16, $" << fmt("%.2f", h.gpu.price_per_hour)
       << "/GPU-hour assumed)";
    if (!h.node_type.empty()) os << " x " << h.gpus_per_node << " per node, " << h.max_nodes << " nodes";
  }
  os << "\n\n";

}

// Memory per GPU by category: the recommendation (or the closest candidate, `focus`) next to the
// single-GPU view: why one GPU does not do (or does).
void memory_section(std::ostringstream& os, const PlanReport& r, int focus) {
  const PlanRequest& req = r.request;
  const PlanResult& res = r.result;
  const ModelSpec& m = req.model;
  int single = -1;
  for (int i = 0; i < int(res.candidates.size()); ++i) {
    const Candidate& c = res.candidates[i];
    if (c.gpus != 1 || c.needed_bytes() == 0) continue;
    if (single < 0 || c.needed_bytes() < res.candidates[single].needed_bytes()) single = i;
  }
  std::vector<std::pair<std::string, int>> cols;
  if (single >= 0 && single != focus) cols.push_back({"1 GPU (least memory)", single});
  if (focus >= 0) cols.push_back({res.recommended >= 0 ? "recommended" : "closest (does not fit)", focus});
  if (!cols.empty()) {
    os << "Memory per GPU at the step's peak, GiB (each category as it is then; --explain: the whole step)\n";
    // One line: a label, then one value per column.
    auto row = [&](const std::string& label, const std::function<std::string(const Candidate&)>& value) {
      char cell[256];
      std::snprintf(cell, sizeof(cell), "  %-18s", label.c_str());
      os << cell;
      for (auto& col : cols) {
        std::snprintf(cell, sizeof(cell), " %24s", value(res.candidates[col.second]).c_str());
        os << cell;
      }
      os << "\n";
    };
    size_t head = 0;  // (the header: each column's name, in order)
    row("category", [&](const Candidate&) { return cols[head++].first; });
    for (MemCategory cat : all_mem_categories()) row(mem_category_name(cat), [&](const Candidate& c) { return gib(c.peak.alive[cat]); });
    row("total", [](const Candidate& c) { return gib(c.peak.alive.total()); });
    row("peak during", [](const Candidate& c) { return "the " + c.peak.phase; });
    row("categories' peaks", [](const Candidate& c) { return gib(c.memory.total()) + " summed"; });
    if (req.base.offload_optimizer)  // not on the GPU: what lives in each rank's host memory instead
      for (const auto& [name, field] : offload_host_parts()) {
        auto part = field;
        row(name, [part](const Candidate& c) { return gib(c.memory.host.*part); });
      }
    row("", [](const Candidate& c) { return std::string(c.fits ? "fits " : "DOES NOT FIT ") + gib(c.usable_bytes) + " usable"; });
    for (auto& col : cols) {
      const Candidate& c = res.candidates[col.second];
      os << "  " << col.first << ": " << candidate_summary(req, c) << "\n";
    }
    if (single >= 0) {
      const Candidate& s = res.candidates[single];
      if (!s.fits) {
        // (the states this layout keeps on the GPU: with offload no master or optimizer states)
        std::string parts;
        for (MemCategory cat : {MemCategory::params_sharded, MemCategory::master, MemCategory::optimizer, MemCategory::grads_sharded})
          if (s.memory[cat] > 0) parts += (parts.empty() ? "" : ", ") + std::string(mem_category_name(cat));
        const double states = double(s.memory.model_states());
        const std::string sized = "(" + parts + ") are " + fmt("%.1f", states / double(m.param_count())) + " bytes/param x " +
                                  human_count(double(m.param_count())) + " = " + gib(uint64_t(states)) + " GiB";
        if (states > double(s.usable_bytes))
          os << "  One GPU does not fit: the model states alone " << sized << ", before activations, over the " << gib(s.usable_bytes)
             << " GiB usable.\n";
        else
          os << "  One GPU does not fit: the model states " << sized << ", within the " << gib(s.usable_bytes)
             << " GiB usable; the step's peak, during the " << s.peak.phase << ", needs " << gib(s.needed_bytes())
             << " GiB (activations " << gib(s.peak.alive[MemCategory::activations]) << ", logits "
             << gib(s.peak.alive[MemCategory::logits]) << " GiB).\n";
      } else {
        os << "  One GPU fits (" << gib(s.needed_bytes()) << " GiB of " << gib(s.usable_bytes) << " GiB usable).\n";
      }
    }
    os << "\n";
  }

}

// Candidates: per GPU count and stage, the best fitting variant, else the least memory one.
void candidates_section(std::ostringstream& os, const PlanReport& r, int focus) {
  const PlanRequest& req = r.request;
  const PlanResult& res = r.result;
  int hidden = 0;
  const std::vector<int> shown = shown_candidates(r, focus, &hidden);
  os << "Candidates (best variant per GPU count and stage; every candidate is in --json)\n";
  char line[512];
  std::snprintf(line, sizeof(line), "  %-14s %5s %5s %-9s %4s %5s %9s %6s %9s %11s %10s %10s  %s\n", "gpu", "gpus", "nodes",
                "shard", "mb", "ckpt", "GiB/GPU", "fits", "step s", "tokens/s", "time", "cost $", "note");
  os << line;
  for (int i : shown) {
    const Candidate& c = res.candidates[i];
    std::string note = i == res.recommended ? "<- recommended" : c.rejected_because;
    std::snprintf(line, sizeof(line), "  %-14s %5d %5d %-9s %4lld %5s %9s %6s %9.2f %11.0f %10s %10s  %s\n",
                  req.hardware[c.hardware].gpu.name.c_str(), c.gpus, c.nodes, stage_name(c.setup.stage),
                  static_cast<long long>(c.setup.micro_batch), activation_checkpointing_name(c.setup.activation_checkpointing).c_str(),
                  gib(c.needed_bytes()).c_str(), c.fits ? "yes" : "no", c.time.step_s, c.time.tokens_per_s,
                  req.total_tokens > 0 ? duration_text(c.time.total_s).c_str() : "-", req.total_tokens > 0 ? usd_text(c.time.cost_usd).c_str() : "-",
                  note.c_str());
    os << line;
  }
  if (hidden > 0) os << "  (" << hidden << " more rows with more GPUs in --json)\n";
  os << "\n";

}

// The recommendation: layout, memory, host memory, time, cost and the launch line; or that nothing fits.
void recommendation_section(std::ostringstream& os, const PlanReport& r, int focus) {
  const PlanRequest& req = r.request;
  const PlanResult& res = r.result;
  if (res.recommended >= 0) {
    const Candidate& c = res.candidates[res.recommended];
    const HardwareOption& hw = req.hardware[c.hardware];
    os << "Recommendation (" << (req.objective == Objective::Cost ? "cheapest" : "fastest") << " that fits with "
       << fmt("%.0f", req.headroom * 100) << "% headroom): " << candidate_summary(req, c) << "\n";
    os << "  memory per GPU " << gib(c.needed_bytes()) << " GiB of " << gib(c.gpu_memory_bytes) << " GiB ("
       << gib(c.usable_bytes) << " usable) at the step's peak, during the " << c.peak.phase
       << " (--explain prints every phase)\n";
    os << "  " << host_line(c) << "\n";
    os << "  step " << fmt("%.3f", c.time.step_s) << " s, " << fmt("%.0f", c.time.tokens_per_s) << " tokens/s ("
       << fmt("%.0f", c.time.tokens_per_s / c.gpus) << " per GPU, MFU " << fmt("%.0f", c.time.mfu * 100) << "%)";
    if (req.total_tokens > 0) {
      os << ", " << c.time.steps << " steps; " << duration_text(epoch_seconds(req, c)) << " per epoch, " << duration_text(c.time.total_s)
         << " in total\n";
      os << "  " << fmt("%.2f", c.time.gpu_hours) << " GPU-hours x $" << fmt("%.2f", hw.gpu.price_per_hour)
         << " = $" << usd_text(c.time.cost_usd) << " (price is an assumption: edit " << r.catalog_origin
         << " or the cluster file)\n";
    } else {
      os << "\n  $" << usd_text(c.time.cost_per_mtok_usd) << " per million tokens at $" << fmt("%.2f", hw.gpu.price_per_hour)
         << "/GPU-hour (price is an assumption: edit " << r.catalog_origin << " or the cluster file); no workload given: "
         << "add --tokens N or --examples N for steps, time and cost\n";
    }
    os << "  launch: " << r.launch_line << "\n";
  } else {
    os << "Nothing fits.\n";
    if (focus >= 0) os << "  closest candidate's " << host_line(res.candidates[focus]) << "\n";
  }
}

// LoRA / QLoRA on one GPU, for comparison.
void alternatives_section(std::ostringstream& os, const PlanReport& r) {
  if (!r.alternatives.empty()) {
    os << "\nFor comparison (ftdist trains full-parameter): adapters on one GPU, "
       << "micro-batch " << r.alternatives.front().micro_batch << ", checkpointing " << activation_checkpointing_name(ActivationCheckpointing::Full) << "\n";
    for (const AlternativeRow& a : r.alternatives) {
      os << "  " << (a.method == "lora" ? "LoRA  (bf16 base)" : "QLoRA (NF4 base) ") << " rank " << a.rank << ": "
         << human_count(double(a.trainable_params)) << " trainable; base " << gib(a.base_bytes) << " + adapters "
         << gib(a.adapter_bytes) << " + activations " << gib(a.activations) << " + logits " << gib(a.logits)
         << " + overhead " << gib(a.overhead) << " = " << gib(a.total) << " GiB, " << (a.fits ? "fits" : "does not fit")
         << "\n";
    }
  }
}

}  // namespace

std::vector<int> shown_candidates(const PlanReport& r, int focus, int* hidden) {
  const PlanRequest& req = r.request;
  const PlanResult& res = r.result;
  std::map<std::tuple<int, int, int>, int> best;  // (hardware, gpus, stage) -> index
  for (int i = 0; i < int(res.candidates.size()); ++i) {
    const Candidate& c = res.candidates[i];
    if (c.needed_bytes() == 0) continue;
    auto key = std::make_tuple(c.hardware, c.gpus, int(c.setup.stage));
    auto it = best.find(key);
    if (it == best.end()) {
      best[key] = i;
      continue;
    }
    const Candidate& b = res.candidates[it->second];
    // (the search's order: the workload's cost or time, or without one per million tokens)
    bool take = c.fits ? (!b.fits || better_candidate(c, b, req.objective)) : (!b.fits && c.needed_bytes() < b.needed_bytes());
    if (take) it->second = i;
  }
  // (the recommendation is its group's row, though a variant of it within the near-tie of the cost
  // chose it by more memory left)
  if (res.recommended >= 0) {
    const Candidate& c = res.candidates[res.recommended];
    best[std::make_tuple(c.hardware, c.gpus, int(c.setup.stage))] = res.recommended;
  }
  const int limit_gpus = focus >= 0 ? std::max(8, res.candidates[focus].gpus * 4) : 64;
  std::vector<int> shown;
  if (hidden) *hidden = 0;
  for (const auto& [key, i] : best) {
    if (res.candidates[i].gpus <= limit_gpus) shown.push_back(i);
    else if (hidden) ++*hidden;
  }
  return shown;
}

std::string plan_table(const PlanReport& r) {
  const PlanResult& res = r.result;
  const int focus = res.recommended >= 0 ? res.recommended : least_memory_candidate(res);
  std::ostringstream os;
  header_section(os, r.request);
  memory_section(os, r, focus);
  candidates_section(os, r, focus);
  recommendation_section(os, r, focus);
  alternatives_section(os, r);
  return os.str();
}

}  // namespace ftdist::plan
