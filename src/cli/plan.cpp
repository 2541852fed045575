// ftdist plan — per-rank memory, GPU count and sharding stage, time and cost (issue: planner).

#include <unistd.h>

#include <cctype>
#include <cmath>
#include <fstream>
#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>

#include "commands.h"
#include "options.h"
#include "ftdist/core/bytes.h"
#include "ftdist/core/check.h"
#include "ftdist/core/suggest.h"
#include "ftdist/core/text_file.h"
#include "ftdist/plan/alternatives.h"
#include "ftdist/plan/host_memory.h"
#include "ftdist/plan/launch_script.h"
#include "ftdist/plan/limits.h"
#include "ftdist/plan/presets.h"
#include "ftdist/plan/plan_html.h"
#include "ftdist/plan/report.h"
#include "ftdist/data/packing.h"
#include "ftdist/plan/timeline.h"

namespace ftdist::cli {
namespace {
using namespace ftdist::plan;

// "auto" or an integer in 1..max.
std::optional<int64_t> auto_or_int(const std::string& text, const char* flag, int64_t max) {
  if (text == "auto") return std::nullopt;
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  FT_CHECK_ARG(used == text.size() && used > 0 && v >= 1 && v <= max,
               flag << ": expected an integer 1.." << max << " or auto, got '" << excerpt(text) << "'");
  return v;
}

// Splits "2.5M" into 2.5 and "M"; false when the text does not start with a number.
bool leading_number(const std::string& text, double* value, std::string* suffix) {
  // (decimal only: no sign, space, hex, inf or nan, which std::stod takes)
  if (text.empty() || !(std::isdigit(static_cast<unsigned char>(text[0])) || text[0] == '.')) return false;
  size_t used = 0;
  try {
    *value = std::stod(text, &used);
  } catch (const std::exception&) {
    return false;
  }
  *suffix = text.substr(used);
  return text.substr(0, used).find_first_of("xX") == std::string::npos;
}

double parse_fraction(const std::string& text, const char* flag) {
  double v = 0;
  std::string suffix;
  bool ok = leading_number(text, &v, &suffix) && (suffix.empty() || suffix == "%");
  FT_CHECK_ARG(ok, flag << ": expected a fraction like 0.1 or a percentage like 10%, got '" << excerpt(text) << "'");
  return suffix == "%" ? v / 100.0 : v;
}

double parse_count(const std::string& text, const char* flag) {
  // 10000, 1e6, 2.5M, 1B
  double v = 0;
  std::string unit;
  bool ok = leading_number(text, &v, &unit);
  double scale = unit.empty() ? 1 : unit == "K" || unit == "k" ? 1e3 : unit == "M" ? 1e6 : unit == "B" || unit == "G" ? 1e9 : unit == "T" ? 1e12 : -1;
  FT_CHECK_ARG(ok && scale > 0 && v * scale >= 1 && v * scale <= kMaxTokens && std::floor(v * scale) == v * scale,
               flag << ": expected a whole count like 10000, 2.5M or 1B (1 to " << kMaxTokens << "), got '" << excerpt(text) << "'");
  return v * scale;
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// What more GPUs (or another stage) would do for the closest candidate `c`, which needs `need` bytes.
std::string gpu_count_advice(const PlanRequest& req, const PlanResult& res, const Candidate& c, uint64_t need) {
  std::ostringstream os;
  // More GPUs help only down to what every rank holds whole (a layer gathered, activations,
  // overheads): from the need on half the GPUs, need(N/2) = F + 2S and need(N) = F + S, that floor
  // is F = 2 need(N) - need(N/2).
  uint64_t half_need = 0;
  for (const Candidate& o : res.candidates)
    if (o.hardware == c.hardware && o.gpus * 2 == c.gpus && o.needed_bytes() > 0)
      half_need = half_need == 0 ? o.needed_bytes() : std::min(half_need, o.needed_bytes());
  const double floor = 2.0 * double(need) - double(half_need);
  // (0: no half to compare with; `none` holds everything whole on each GPU, however many)
  const bool more_can_fit = req.stage != Stage::None && (half_need == 0 || floor < double(c.usable_bytes));
  if (req.stage == Stage::Hybrid)
    os << " --shard hybrid shards the model states within a node only: without --shard the planner also shards them across "
          "every GPU.";
  if (req.stage == Stage::None)
    os << " --shard none keeps the whole model and its optimizer states on every GPU, so more GPUs will not fit it: without "
          "--shard the planner also shards them (full, grad-op, optimizer).";
  else if (!more_can_fit)
    os << " More GPUs will not fit it: however many, each holds about " << format_gib(std::max(floor, 0.0))
       << " whole (from " << c.gpus / 2 << " to " << c.gpus << " GPUs the need falls only " << format_gib(double(half_need - need))
       << ": the gathered layers, activations and overheads stay).";
  else if (req.gpus || req.nodes)
    os << " Let the planner choose the GPU count: " << (req.gpus ? "--gpus auto" : "") << (req.gpus && req.nodes ? " and " : "")
       << (req.nodes ? "leave out --nodes" : "") << ".";
  else if (c.gpus * 2 > req.max_gpus && req.max_gpus < kMaxRanks) os << " More GPUs than --max-gpus " << req.max_gpus << " may fit: raise it.";
  return os.str();
}

// What would fit when nothing does: bigger GPUs from the catalog, offload, adapters.
std::string what_would_fit(const PlanRequest& req, const PlanResult& res, const GpuCatalog& catalog,
                           const std::vector<AlternativeRow>& alts) {
  std::ostringstream os;
  int closest = least_memory_candidate(res);
  if (closest < 0) {  // every candidate refused before its memory was counted: say why, each reason once
    std::vector<std::string> why;
    for (const Candidate& c : res.candidates)
      if (!c.rejected_because.empty() && std::find(why.begin(), why.end(), c.rejected_because) == why.end()) why.push_back(c.rejected_because);
    std::string text = "no candidate could be laid out";
    for (size_t k = 0; k < why.size() && k < 4; ++k) text += (k ? "; " : ": ") + why[k];
    if (why.size() > 4) text += "; and " + std::to_string(why.size() - 4) + " more";
    return text + " (check --gpus, --nodes and --global-batch)";
  }
  const Candidate& c = res.candidates[closest];
  uint64_t need = c.needed_bytes();
  os << "no candidate fits: the least memory any candidate needs is " << format_gib(double(need)) << " per GPU ("
     << c.gpus << " x " << req.hardware[c.hardware].gpu.name << ", shard " << stage_name(c.setup.stage)
     << ", micro-batch " << c.setup.micro_batch << ", checkpointing " << activation_checkpointing_text(c.setup.activation_checkpointing, req.model.layers)
     << ") against " << format_gib(double(c.usable_bytes)) << " usable.";
  std::vector<std::string> bigger;
  for (const GpuSpec& g : catalog.gpus())
    if (double(g.memory_bytes()) * (1.0 - req.headroom) >= double(need)) bigger.push_back(g.name);
  const bool cluster = !req.hardware[c.hardware].node_type.empty();
  if (!bigger.empty())
    os << " GPUs with enough memory for that layout: " << join_or(bigger)
       << (cluster ? " (a cluster file with nodes of them, or --gpu without --cluster)." : " (--gpu).");
  os << gpu_count_advice(req, res, c, need);
  // (a --global-batch that leaves a GPU count no layout at all: micro-batch x GPUs must divide it)
  std::set<int> counts, laid_out;
  for (const Candidate& o : res.candidates) {
    if (o.rejected_because.rfind("global batch ", 0) == 0) counts.insert(o.gpus);
    if (o.needed_bytes() > 0) laid_out.insert(o.gpus);
  }
  std::vector<std::string> excluded;
  for (int n : counts)
    if (!laid_out.count(n)) excluded.push_back(std::to_string(n));
  if (!excluded.empty())
    os << " --global-batch " << req.global_batch << " leaves no layout on " << join_or(excluded)
       << " GPUs (it must be a multiple of micro-batch x GPUs).";
  if (req.micro_batch && *req.micro_batch > 1) os << " Let the planner choose the micro-batch: leave out --micro-batch.";
  if (req.activation_checkpointing && req.activation_checkpointing->count(req.model.layers) < req.model.layers)
    os << " Let the planner checkpoint activations: --checkpointing auto.";
  const uint64_t freed_gib_hundredth = uint64_t(double(kGiB) / 100);  // (what rounds to 0.00 GiB is no advice)
  if (req.base.optimizer == OptimizerKind::AdamW) {  // 8 bytes of moments per state element become 2.004
    RunSetup q = c.setup;
    q.optimizer = OptimizerKind::AdamW8bit;
    const uint64_t saved = c.memory[MemCategory::optimizer] - std::min(c.memory[MemCategory::optimizer], estimate_memory(req.model, q)[MemCategory::optimizer]);
    if (saved >= freed_gib_hundredth)
      os << " 8-bit AdamW states (--optimizer adamw-8bit, which ftdist train runs) free " << format_gib(double(saved)) << " per GPU in that layout.";
  }
  if (c.setup.loss_chunk == 0) {  // the whole loss at once: logits of every token of the micro-batch
    RunSetup q = c.setup;
    q.loss_chunk = 1024;
    const uint64_t before = c.memory[MemCategory::logits], after = estimate_memory(req.model, q)[MemCategory::logits];
    if (before > after && before - after >= freed_gib_hundredth)
      os << " The loss in chunks (--loss-chunk 1024, which ftdist train runs as train.loss_chunk) frees " << format_gib(double(before - after))
         << " of logits per GPU in that layout.";
  }
  const uint64_t offloadable = c.memory[MemCategory::master] + c.memory[MemCategory::optimizer];
  if (!req.base.offload_optimizer && offloadable >= freed_gib_hundredth)
    os << " Offloading the master weights and optimizer states to host memory (--offload) frees " << format_gib(double(offloadable))
       << " per GPU in that layout.";
  for (const AlternativeRow& a : alts)
    if (a.fits) os << " " << (a.method == "lora" ? "LoRA" : "QLoRA") << " would fit on one GPU (" << format_gib(double(a.total)) << ").";
  return os.str();
}


// A default shown in --help and parsed back: the shortest text of the value.
std::string num_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

void add_plan_options(cxxopts::Options& options) {
  options.add_options("model")
      ("model", "preset name (`ftdist models`)", cxxopts::value<std::string>())
      ("model-config", "Hugging Face config.json (or the model directory)", cxxopts::value<std::string>());
  options.add_options("hardware")
      ("gpu", "GPU model from the catalog (`ftdist gpus`); with --cluster, only the cluster's nodes of that GPU", cxxopts::value<std::string>()->default_value("h100-80gb-sxm"))
      ("gpus", "number of GPUs, or auto", cxxopts::value<std::string>()->default_value("auto"))
      ("nodes", "number of nodes (default: from --gpus)", cxxopts::value<int>())
      ("cluster", "cluster description TOML (node types, counts); the planner picks nodes x GPUs", cxxopts::value<std::string>())
      ("max-gpus", "largest GPU count --gpus auto considers", cxxopts::value<int>()->default_value("512"))
      ("gpu-catalog", "GPU catalog TOML (default: FTDIST_GPU_CATALOG, cluster/gpus.toml, built-in)", cxxopts::value<std::string>()->default_value(""));
  options.add_options("workload")
      ("seq-len", "tokens per sequence", cxxopts::value<int64_t>()->default_value("2048"))
      ("micro-batch", "sequences per GPU per forward, or auto", cxxopts::value<std::string>()->default_value("auto"))
      ("global-batch", "sequences per optimizer step (default: one micro-batch per GPU)", cxxopts::value<int64_t>()->default_value("0"))
      ("examples", "training sequences of --seq-len: examples padded to it, or with --packing documents the sequences "
       "the examples pack into (ftdist prepare-data --seq-len prints them; or give --tokens and --packing-efficiency)",
       cxxopts::value<std::string>())
      ("tokens", "training tokens (instead of --examples)", cxxopts::value<std::string>())
      ("epochs", "passes over the data", cxxopts::value<double>()->default_value("1"))
      ("packing-efficiency", "whole examples packed per sequence (data.packing = documents): the data's tokens over the "
       "sequences' slots, as ftdist prepare-data --seq-len prints it; --tokens is divided by it", cxxopts::value<double>());
  options.add_options("training")
      ("shard", "full | grad-op | optimizer | none | hybrid (ZeRO names too), or auto", cxxopts::value<std::string>()->default_value("auto"))
      ("precision", "bf16-mixed | fp32 | bf16-pure", cxxopts::value<std::string>()->default_value("bf16-mixed"))
      ("reduce-dtype", "gradient reduction dtype: fp32 | bf16", cxxopts::value<std::string>()->default_value("fp32"))
      ("grad-accum-dtype", "gradient shard dtype in bf16-mixed: fp32 | bf16", cxxopts::value<std::string>()->default_value("fp32"))
      ("optimizer", "adamw | adamw-8bit | sgd-momentum", cxxopts::value<std::string>()->default_value("adamw"))
      ("checkpointing", "activation checkpointing: none | full | K (the first K layers) | auto", cxxopts::value<std::string>()->default_value("auto"))
      ("attention", "flash | eager", cxxopts::value<std::string>()->default_value("flash"))
      ("offload", "keep master weights and optimizer states in host memory")
      ("no-sync", "accumulate unsharded fp32 gradients over micro-batches, reduce once per step")
      ("loss-chunk", "lm_head and the loss over chunks of N tokens (0: all logits at once), or auto: chunks for "
       "vocabularies of 64k and more", cxxopts::value<std::string>()->default_value("auto"))
      ("packing", "stream | documents (whole examples per sequence: a (b, s, s) attention mask per micro-batch)",
       cxxopts::value<std::string>()->default_value("stream"))
      ("prefetch", "unsharded layer buffers in flight", cxxopts::value<int>()->default_value("2"))
      ("overhead-context-gib", "CUDA context and library workspaces per GPU", cxxopts::value<double>()->default_value(num_text(plan::Overheads{}.cuda_context_gib)))
      ("overhead-nccl-gib", "NCCL buffers per GPU", cxxopts::value<double>()->default_value(num_text(plan::Overheads{}.nccl_gib)))
      ("fragmentation", "allocator slack as a fraction of the rest", cxxopts::value<double>()->default_value(num_text(plan::Overheads{}.fragmentation)))
      ("lora-rank", "rank of the LoRA/QLoRA comparison rows", cxxopts::value<int>()->default_value("16"))
      ("lora-targets", "modules of the LoRA/QLoRA rows", cxxopts::value<std::string>()->default_value("q,k,v,o,gate,up,down"));
  options.add_options("decision and output")
      ("headroom", "GPU memory kept free (fraction or %)", cxxopts::value<std::string>()->default_value("0.10"))
      ("mfu", "achievable fraction of peak (overrides the catalog's efficiency)", cxxopts::value<double>())
      ("objective", "cost | time", cxxopts::value<std::string>()->default_value("cost"))
      ("json", "print the plan as JSON")
      ("report", "also write the plan as one self-contained HTML page (charts, the candidates, the launch line) to FILE",
       cxxopts::value<std::string>())
      ("explain", "print every formula with its numbers")
      ("emit", "write launch files for the recommendation: slurm | mpirun", cxxopts::value<std::string>())
      ("emit-dir", "directory for --emit files", cxxopts::value<std::string>()->default_value("."))
      ("h,help", "this help");
}

// --gpu or --cluster, --gpus, --nodes, --max-gpus into `req`; the cluster file's name ("" for none).
std::string read_hardware(const cxxopts::ParseResult& args, const GpuCatalog& catalog, PlanRequest& req) {
  req.max_gpus = args["max-gpus"].as<int>();
  FT_CHECK_ARG(req.max_gpus >= 1 && req.max_gpus <= kMaxRanks, "--max-gpus must be 1.." << kMaxRanks << ", got " << req.max_gpus);
  std::string cluster_name;
  if (auto g = auto_or_int(args["gpus"].as<std::string>(), "--gpus", kMaxRanks)) req.gpus = int(*g);
  if (args.count("nodes")) {
    req.nodes = args["nodes"].as<int>();
    FT_CHECK_ARG(*req.nodes >= 1 && *req.nodes <= kMaxRanks, "--nodes must be 1.." << kMaxRanks << ", got " << *req.nodes);
  }
  if (args.count("cluster")) {  // its node types; with --gpu only those of that GPU
    Cluster cluster = load_cluster(args["cluster"].as<std::string>(), catalog);
    cluster_name = cluster.origin;
    const std::string gpu = args.count("gpu") ? catalog.find(args["gpu"].as<std::string>()).name : "";
    std::vector<std::string> has;
    for (const NodeType& nt : cluster.node_types) {
      if (std::find(has.begin(), has.end(), nt.gpu.name) == has.end()) has.push_back(nt.gpu.name);
      if (gpu.empty() || nt.gpu.name == gpu) req.hardware.push_back({nt.name, nt.gpu, nt.gpus_per_node, nt.count, true});
    }
    FT_CHECK_ARG(!req.hardware.empty(), "--gpu " << gpu << ": " << cluster.origin << " has no node of it (its GPUs: "
                                                 << join_or(has) << "); leave out --gpu, or leave out --cluster to plan on " << gpu);
  } else {  // nodes enough for --max-gpus, or for the --gpus or --nodes given (which --max-gpus does not bound)
    const GpuSpec& g = catalog.find(args["gpu"].as<std::string>());
    const int most = std::max({req.max_gpus, req.gpus.value_or(1), req.nodes.value_or(1) * g.gpus_per_node});
    req.hardware.push_back({"", g, g.gpus_per_node, std::max(1, (most + g.gpus_per_node - 1) / g.gpus_per_node), false});
  }
  for (const HardwareOption& hw : req.hardware)  // (a rank count ftdist runs)
    FT_CHECK_ARG(!req.nodes || int64_t(*req.nodes) * hw.gpus_per_node <= kMaxRanks,
                 "--nodes " << *req.nodes << " of " << hw.gpus_per_node << " GPUs is " << int64_t(*req.nodes) * hw.gpus_per_node
                            << " GPUs, more than ftdist runs (" << kMaxRanks << ")");
  return cluster_name;
}

// The training options into req.base and the choices left to the search (stage, micro-batch,
// activation checkpointing: nullopt = auto).
void read_setup(const cxxopts::ParseResult& args, PlanRequest& req) {
  RunSetup& s = req.base;
  s.seq_len = args["seq-len"].as<int64_t>();
  FT_CHECK_ARG(s.seq_len >= kMinSeqLen && s.seq_len <= kMaxSeqLen,
               "--seq-len must be " << kMinSeqLen << ".." << kMaxSeqLen << ", got " << s.seq_len);
  if (req.model.max_position > 0 && s.seq_len > req.model.max_position)
    std::fprintf(stderr, "ftdist plan: warning: --seq-len %lld exceeds the model's max_position_embeddings %lld\n",
                 static_cast<long long>(s.seq_len), static_cast<long long>(req.model.max_position));
  if (auto mb = auto_or_int(args["micro-batch"].as<std::string>(), "--micro-batch", kMaxMicroBatch)) req.micro_batch = *mb;
  req.global_batch = args["global-batch"].as<int64_t>();
  FT_CHECK_ARG(req.global_batch >= 0 && req.global_batch <= kMaxGlobalBatch,
               "--global-batch must be 0.." << kMaxGlobalBatch << ", got " << req.global_batch);
  std::string shard = args["shard"].as<std::string>();
  if (shard != "auto") req.stage = stage_from_name(shard);
  s.precision = precision_from_name(args["precision"].as<std::string>());
  s.reduce_dtype = float_type_from_name(args["reduce-dtype"].as<std::string>(), "--reduce-dtype");
  s.grad_accum_dtype = float_type_from_name(args["grad-accum-dtype"].as<std::string>(), "--grad-accum-dtype");
  s.optimizer = optimizer_from_name(args["optimizer"].as<std::string>());
  std::string ck = args["checkpointing"].as<std::string>();
  if (ck != "auto") req.activation_checkpointing = activation_checkpointing_from_name(ck);
  s.attention = attention_from_name(args["attention"].as<std::string>());
  s.offload_optimizer = args.count("offload") > 0;
  s.no_sync = args.count("no-sync") > 0;
  s.packed_documents = data::packing_from_name(args["packing"].as<std::string>(), "--packing") == data::Packing::Documents;
  const std::string chunk = args["loss-chunk"].as<std::string>();
  req.auto_loss_chunk = chunk == "auto";  // per candidate, for its micro-batch (below: a micro-batch of one)
  FT_CHECK_ARG(chunk == "auto" || (!chunk.empty() && chunk[0] != '-'),
               "--loss-chunk: expected auto, 0 (all logits at once) or a number of tokens per chunk, got '" << excerpt(chunk) << "'");
  s.loss_chunk = chunk == "auto" ? default_loss_chunk(req.model, s.seq_len)
                 : chunk == "0"  ? 0
                                 : int64_t(parse_count(chunk, "--loss-chunk"));
  FT_CHECK_ARG(s.loss_chunk <= kMaxLossChunk, "--loss-chunk must be at most " << kMaxLossChunk << " tokens, got " << s.loss_chunk);
  s.prefetch = args["prefetch"].as<int>();
  FT_CHECK_ARG(s.prefetch >= 1 && s.prefetch <= kMaxPrefetch, "--prefetch must be 1.." << kMaxPrefetch << ", got " << s.prefetch);
  s.overheads.cuda_context_gib = args["overhead-context-gib"].as<double>();
  s.overheads.nccl_gib = args["overhead-nccl-gib"].as<double>();
  s.overheads.fragmentation = args["fragmentation"].as<double>();
  FT_CHECK_ARG(s.overheads.cuda_context_gib >= 0 && s.overheads.cuda_context_gib <= 1024 && s.overheads.nccl_gib >= 0 &&
                   s.overheads.nccl_gib <= 1024 && s.overheads.fragmentation >= 0 && s.overheads.fragmentation <= 10,
               "--overhead-context-gib and --overhead-nccl-gib must be 0..1024, --fragmentation 0..10");
}

// --examples or --tokens, --epochs, --headroom, --mfu, --objective into `req`; the examples (0
// when given as tokens).
double read_workload(const cxxopts::ParseResult& args, PlanRequest& req) {
  for (const char* flag : {"examples", "tokens", "epochs"})
    FT_CHECK_ARG(args.count(flag) <= 1, "--" << flag << " is given " << args.count(flag) << " times; give it once");
  FT_CHECK_ARG(args.count("examples") + args.count("tokens") <= 1,
               "ftdist plan: give one of --examples N (sequences of --seq-len) or --tokens N, not both");
  double epochs = args["epochs"].as<double>();
  FT_CHECK_ARG(epochs > 0 && epochs <= 1e6, "--epochs must be in (0, 1e6], got " << epochs);
  double examples = args.count("examples") ? parse_count(args["examples"].as<std::string>(), "--examples") : 0;
  double tokens = args.count("tokens") ? parse_count(args["tokens"].as<std::string>(), "--tokens") : examples * double(req.base.seq_len);
  if (args.count("packing-efficiency")) {  // the slots the GPUs process for the data's tokens
    const double e = args["packing-efficiency"].as<double>();
    FT_CHECK_ARG(e > 0 && e <= 1, "--packing-efficiency must be in (0, 1], got " << e);
    FT_CHECK_ARG(args.count("tokens"), "--packing-efficiency divides --tokens (the data's tokens); --examples already counts sequences");
    FT_CHECK_ARG(req.base.packed_documents, "--packing-efficiency is for --packing documents: --packing stream fills every slot "
                                            "with the data's tokens");
    tokens /= e;
  }
  req.total_tokens = tokens * epochs;
  FT_CHECK_ARG(tokens == 0 || req.total_tokens >= 1, "the workload is " << req.total_tokens << " tokens (" << tokens << " x --epochs "
                                                     << epochs << "): less than one token to train");
  FT_CHECK_ARG(req.total_tokens <= kMaxTokens, "the workload is " << req.total_tokens << " tokens (--examples x --seq-len or --tokens, "
                                               "x --epochs); ftdist plans up to " << kMaxTokens);
  req.epochs = epochs;
  req.headroom = parse_fraction(args["headroom"].as<std::string>(), "--headroom");
  FT_CHECK_ARG(req.headroom >= 0 && req.headroom < 1, "--headroom must be in [0, 1) (or 0%..99%)");
  if (args.count("mfu")) {
    req.mfu = args["mfu"].as<double>();
    FT_CHECK_ARG(*req.mfu >= kMinEfficiency && *req.mfu <= 1, "--mfu must be in [" << kMinEfficiency << ", 1], got " << *req.mfu);
  }
  std::string objective = args["objective"].as<std::string>();
  FT_CHECK_ARG(objective == "cost" || objective == "time", "--objective: expected cost or time, got '" << objective << "'");
  req.objective = objective == "cost" ? Objective::Cost : Objective::Time;
  return examples;
}

// LoRA / QLoRA rows next to full fine-tuning, for comparison.
std::vector<AlternativeRow> alternatives(const cxxopts::ParseResult& args, const PlanRequest& req, const PlanResult& result) {
  AdapterOptions adapter;
  adapter.rank = args["lora-rank"].as<int>();
  FT_CHECK_ARG(adapter.rank >= 1 && adapter.rank <= 65536, "--lora-rank must be 1..65536, got " << adapter.rank);
  adapter.targets = split_list(args["lora-targets"].as<std::string>());
  FT_CHECK_ARG(!adapter.targets.empty(), "--lora-targets: expected modules separated by commas (of q, k, v, o, gate, up, down), got '"
                                             << excerpt(args["lora-targets"].as<std::string>()) << "'");
  RunSetup alt_setup = req.base;
  alt_setup.micro_batch = req.micro_batch.value_or(1);
  alt_setup.activation_checkpointing = ActivationCheckpointing::Full;
  const Candidate* any = result.candidates.empty() ? nullptr : &result.candidates.front();
  return adapter_alternatives(req.model, alt_setup, adapter, any ? any->usable_bytes : 0);
}

// A count as JSON: an integer where it is whole (10000, not 10000.0).
nlohmann::ordered_json count_json(double v) {
  return std::floor(v) == v && v < 9e15 ? nlohmann::ordered_json(int64_t(v)) : nlohmann::ordered_json(v);
}

// The inputs as the JSON document's "inputs" (what was asked, "auto" where the planner chose).
nlohmann::ordered_json plan_inputs(const PlanRequest& req, bool cluster, const std::string& cluster_name, double examples) {
  using json = nlohmann::ordered_json;
  const RunSetup& s = req.base;
  return {{"model", req.model.name},
          {"gpu", cluster ? json(nullptr) : json(req.hardware[0].gpu.name)},
          {"cluster", cluster_name.empty() ? json(nullptr) : json(cluster_name)},
          {"gpus", req.gpus ? json(*req.gpus) : json("auto")},
          {"nodes", req.nodes ? json(*req.nodes) : json("auto")},
          {"seq_len", s.seq_len},
          {"micro_batch", req.micro_batch ? json(*req.micro_batch) : json("auto")},
          {"global_batch", req.global_batch},
          {"examples", examples > 0 ? count_json(examples) : json(nullptr)},  // (null with --tokens)
          {"tokens", req.total_tokens > 0 ? count_json(req.total_tokens / req.epochs) : json(nullptr)},  // one epoch's
          {"epochs", req.epochs},
          {"packing", s.packed_documents ? "documents" : "stream"},
          {"loss_chunk", req.auto_loss_chunk ? json("auto") : json(s.loss_chunk)},
          {"shard", req.stage ? json(stage_name(*req.stage)) : json("auto")},
          {"precision", precision_name(s.precision)},
          {"reduce_dtype", float_type_name(s.reduce_dtype)},
          {"grad_accum_dtype", float_type_name(s.grad_accum_dtype)},
          {"optimizer", optimizer_name(s.optimizer)},
          {"checkpointing", req.activation_checkpointing ? json(activation_checkpointing_name(*req.activation_checkpointing)) : json("auto")},
          {"attention", attention_name(s.attention)},
          {"offload", s.offload_optimizer},
          {"headroom", req.headroom},
          {"mfu", req.mfu ? json(*req.mfu) : json(nullptr)},
          {"objective", req.objective == Objective::Cost ? "cost" : "time"}};
}

// --explain: every formula of the recommendation (or the closest candidate) with its numbers.
void print_formulas(const PlanRequest& req, const PlanResult& result, std::FILE* out) {
  int focus = result.recommended >= 0 ? result.recommended : least_memory_candidate(result);
  if (focus < 0) return;
  const Candidate& c = result.candidates[focus];
  std::vector<std::string> lines;
  estimate_memory(req.model, c.setup, &lines);
  estimate_host_memory(req.model, c.setup, ranks_per_node(c, req.hardware[c.hardware]), &lines);
  estimate_time(req.model, c.setup, hardware_for(req.hardware[c.hardware], req), Workload{req.total_tokens, c.grad_accum}, &lines);
  std::fprintf(out, "\nFormulas (%s):\n", result.recommended >= 0 ? "recommendation" : "closest candidate");
  std::fprintf(out, "  params_total = L x layer + root = %lld x %lld + %lld = %lld\n", static_cast<long long>(req.model.layers),
               static_cast<long long>(req.model.layer_params()), static_cast<long long>(req.model.root_params()),
               static_cast<long long>(req.model.param_count()));
  for (const auto& l : lines) std::fprintf(out, "  %s\n", l.c_str());
  // The step as a timeline (plan/timeline.h): bytes alive per phase, the peak marked.
  const StepTimeline t = step_timeline(req.model, c.setup);
  std::fprintf(out, "\nStep timeline per GPU, GiB with overhead (the runtime's phases; the formulas above give each "
                    "category's own peak, the peak phase is what must fit):\n");
  for (size_t k = 0; k < t.phases.size(); ++k) {
    const TimelinePhase& p = t.phases[k];
    std::string parts;
    for (MemCategory cat : all_mem_categories())
      if (p.alive[cat] > 0 && cat != MemCategory::overhead)
        parts += std::string(parts.empty() ? "" : ", ") + mem_category_name(cat) + " " + format_gib(double(p.alive[cat]));
    std::fprintf(out, "  %-24s %8.2f%s  (%s)\n", p.name.c_str(), double(p.alive.total()) / double(kGiB), k == t.peak ? " <- peak" : "",
                 parts.c_str());
  }
}

std::string absolute_path(const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  char cwd[4096];
  if (!::getcwd(cwd, sizeof(cwd))) return path;
  return path.empty() || path == "." ? std::string(cwd) : std::string(cwd) + "/" + path;
}

// Writes an --emit file, replacing only a file an earlier --emit wrote (it carries kEmittedMarker).
// --emit writes only over its own files: Error(BadInput) naming the first of `paths` that exists and
// is not one, before any is written (a half-written set would launch the user's own run.toml).
void check_emitted_targets(const std::vector<std::string>& paths, const std::string& what) {
  for (const std::string& path : paths) {
    if (!file_exists(path)) continue;
    std::string head(512, '\0');  // the marker is in the first lines: no need to read a large file whole
    std::ifstream in(path, std::ios::binary);
    head.resize(size_t(in.read(&head[0], std::streamsize(head.size())).gcount()));
    // (earlier versions marked their files with the "# planned:" line only)
    FT_CHECK_ARG(head.find(kEmittedMarker) != std::string::npos || head.find("\n# planned: ") != std::string::npos,
                 what << ": '" << path << "' exists and was not written by ftdist plan; move it away or choose another --emit-dir");
  }
}

// The absolute paths --emit's files name: this ftdist binary, the launcher beside its source tree's
// build/ (or beside it when installed), and the emitted run.toml and hostfile.
// (each quoted for the shell where it holds more than [A-Za-z0-9_./+:@%=,-])
LaunchPaths emitted_paths(const std::string& dir) {
  auto quoted = [](const std::string& path) {
    if (!path.empty() && path.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./+:@%=,-") == std::string::npos)
      return path;
    std::string q = "'";
    for (char ch : path) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    return q + "'";
  };
  const std::string abs = absolute_path(dir);
  LaunchPaths p;
  p.config = quoted(abs + "/run.toml");
  p.hostfile = quoted(abs + "/hostfile");
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return p;
  const std::string exe(buf, size_t(n)), bin = directory_of(exe);
  p.ftdist = quoted(exe);
  for (const std::string& launcher : {directory_of(bin) + "/launch/ftdist-mpirun", bin + "/ftdist-mpirun"})
    if (file_exists(launcher)) {
      p.launcher = quoted(launcher);
      break;
    }
  return p;
}

// --emit slurm | mpirun: the launch files of candidate `c` in `dir`, and the run config they train.
void emit_launch_files(const PlanRequest& req, const Candidate& c, const ModelSource& model, const std::string& emit,
                       const std::string& dir) {
  FT_CHECK_ARG(is_directory(dir), "--emit-dir: '" << dir << "' is not a directory");
  const std::string run_toml = run_config_text(req, c, model);  // refuses what ftdist train cannot run, before writing
  const std::string what = "--emit " + emit;
  const LaunchPaths paths = emitted_paths(dir);
  std::vector<std::pair<std::string, std::string>> files;  // (path, text)
  if (emit == "slurm") {
    files = {{dir + "/ftdist.sbatch", sbatch_text(req, c, paths)}, {dir + "/run.toml", run_toml}};
  } else {
    files = {{dir + "/hostfile", hostfile_text(c)},
             {dir + "/launch.sh", "#!/bin/bash\n" + std::string(kEmittedMarker) + "\n" + mpirun_command(req, c, paths) + "\n"},
             {dir + "/run.toml", run_toml}};
  }
  std::vector<std::string> targets;
  for (const auto& f : files) targets.push_back(f.first);
  check_emitted_targets(targets, what);
  for (const auto& [path, text] : files) write_text_file_atomic(path, text, what);
  std::fflush(stdout);  // (the plan printed before the note, where both go to one pipe)
  if (emit == "slurm")
    std::fprintf(stderr, "wrote %s/ftdist.sbatch and %s/run.toml (set data.train, then: sbatch %s/ftdist.sbatch)\n", dir.c_str(),
                 dir.c_str(), dir.c_str());
  else
    std::fprintf(stderr, "wrote %s/hostfile, %s/launch.sh and %s/run.toml (set data.train, then: bash %s/launch.sh)\n", dir.c_str(),
                 dir.c_str(), dir.c_str(), dir.c_str());
}

}  // namespace

// The steps: options, the request (model, hardware, setup, workload), the search, the report,
// the formulas, the verdict, the launch files.
int plan_main(int argc, char** argv) {
  cxxopts::Options options("ftdist plan",
                           "Per-GPU memory, GPU count, sharding stage, time and cost of a full-parameter fine-tuning job.");
  add_plan_options(options);
  cxxopts::ParseResult args = parse_options(options, argc, argv);
  if (print_help_if_asked(options, args)) return 0;

  PlanRequest req;
  FT_CHECK_ARG(args.count("model") + args.count("model-config") == 1,
               "ftdist plan: give exactly one of --model NAME (see `ftdist models`) or --model-config PATH");
  req.model = args.count("model") ? preset_model(args["model"].as<std::string>())
                                  : model_from_hf_config(args["model-config"].as<std::string>());
  if (!req.model.dropout.empty())  // (the plan holds either way: dropout changes no buffer it counts)
    std::fprintf(stderr, "ftdist plan: warning: %s; ftdist train trains without dropout and refuses the config until it is 0.0\n",
                 req.model.dropout.c_str());
  const GpuCatalog catalog = GpuCatalog::load_default(args["gpu-catalog"].as<std::string>());
  const std::string cluster_name = read_hardware(args, catalog, req);
  read_setup(args, req);
  const double examples = read_workload(args, req);
  const std::string emit = args.count("emit") ? args["emit"].as<std::string>() : "";
  FT_CHECK_ARG(emit.empty() || emit == "slurm" || emit == "mpirun", "--emit: expected slurm or mpirun, got '" << emit << "'");
  FT_CHECK_ARG(emit.empty() || req.total_tokens > 0, "--emit writes the planned number of steps: give the workload, --examples N or --tokens N");
  if (!emit.empty()) {  // said now, not after the search
    const std::string dir = args["emit-dir"].as<std::string>();
    FT_CHECK_ARG(is_directory(dir), "--emit-dir: '" << dir << "' is not a directory");
  }

  if (args.count("report")) {  // said now, not after the search
    const std::string path = args["report"].as<std::string>();
    const std::string dir = directory_of(path);
    FT_CHECK_ARG(!path.empty() && path.back() != '/' && is_directory(dir),
                 "--report: cannot write '" << path << "': " << (is_directory(dir) ? "give a file name" : "no directory '" + dir + "'"));
  }
  const PlanResult result = search(req);
  const std::vector<AlternativeRow> alts = alternatives(args, req, result);

  PlanReport report{req, result, alts, plan_inputs(req, args.count("cluster") > 0, cluster_name, examples), catalog.origin(), ""};
  if (result.recommended >= 0) report.launch_line = mpirun_command(req, result.candidates[result.recommended]);
  if (args.count("json")) std::printf("%s\n", plan_json(report).dump(2).c_str());
  else std::printf("%s", plan_table(report).c_str());
  if (args.count("explain")) print_formulas(req, result, args.count("json") ? stderr : stdout);
  if (args.count("report")) {  // (also when nothing fits: the page shows the closest)
    const std::string path = args["report"].as<std::string>();
    write_text_file_atomic(path, plan_report_html(report), "--report");
    std::fprintf(args.count("json") ? stderr : stdout, "wrote %s\n", path.c_str());
  }

  // Nothing fits (exit 3); or the fixed choices admit no layout at all, which is bad input (exit 2).
  if (result.recommended < 0)
    FT_CHECK(false, least_memory_candidate(result) < 0 ? ErrorKind::BadInput : ErrorKind::DoesNotFit,
             what_would_fit(req, result, catalog, alts));
  const Candidate& best = result.candidates[result.recommended];
  constexpr int64_t kFewSteps = 10;  // (fewer optimizer steps than a warmup and a schedule need)
  if (req.total_tokens > 0 && best.time.steps < kFewSteps)
    std::fprintf(stderr, "ftdist plan: warning: the recommendation trains the workload in %lld optimizer step%s of %lld sequences (%s); "
                 "%s\n", static_cast<long long>(best.time.steps), best.time.steps == 1 ? "" : "s",
                 static_cast<long long>(best.setup.micro_batch * best.grad_accum * best.gpus),
                 req.global_batch > 0 ? "--global-batch" : "micro-batch x grad-accum x GPUs",
                 req.global_batch > 0 ? "a smaller --global-batch makes more steps" : "for more, smaller steps give --global-batch N");
  if (!emit.empty()) {
    ModelSource model{ModelSource::Preset, args.count("model") ? args["model"].as<std::string>() : ""};
    if (args.count("model-config")) {
      model.value = absolute_path(args["model-config"].as<std::string>());  // run.toml works from any directory
      model.kind = is_directory(model.value) ? ModelSource::Directory : ModelSource::ConfigFile;
      // A directory without weights (a config downloaded alone) is a config to initialize from:
      // model.path would be refused by the trainer.
      if (model.kind == ModelSource::Directory && !file_exists(model.value + "/model.safetensors") &&
          !file_exists(model.value + "/model.safetensors.index.json")) {
        model.kind = ModelSource::ConfigFile;
        model.value += "/config.json";
      }
    }
    emit_launch_files(req, best, model, emit, args["emit-dir"].as<std::string>());
  }
  return 0;
}

}  // namespace ftdist::cli
