#include "ftdist/plan/launch_script.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <sstream>

#include "ftdist/core/check.h"
#include "ftdist/plan/limits.h"

namespace ftdist::plan {
namespace {
// parallel.checkpointing as TOML: "none", "full", or the number of layers.
std::string checkpointing_value(ActivationCheckpointing c) {
  const std::string name = activation_checkpointing_name(c);
  return c.partial() ? name : "\"" + name + "\"";
}

// `text` for a comment line of a script or TOML file: control bytes (a newline would end the comment
// and run the rest: a model's name comes from its config.json) as '?'.
std::string comment_safe(std::string text) {
  for (char& ch : text)
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
  return text;
}

// `text` as a TOML basic string: quoted, with '"', '\\' and control bytes escaped.
std::string toml_quoted(const std::string& text) {
  std::string out = "\"";
  for (char ch : text) {
    const unsigned char b = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (b < 0x20 || b == 0x7f) {
      char esc[8];
      std::snprintf(esc, sizeof(esc), "\\u%04X", unsigned(b));
      out += esc;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string settings_comment(const PlanRequest& req, const Candidate& c) {
  std::ostringstream os;
  os << kEmittedMarker << "\n# planned: " << comment_safe(req.model.name) << " on " << c.gpus << " x " << comment_safe(req.hardware[c.hardware].gpu.name) << " ("
     << c.nodes << " node" << (c.nodes > 1 ? "s" : "") << "), shard " << stage_name(c.setup.stage) << ", micro-batch "
     << c.setup.micro_batch << ", grad-accum " << c.grad_accum << ", checkpointing "
     << activation_checkpointing_text(c.setup.activation_checkpointing, req.model.layers) << ", seq-len " << c.setup.seq_len << "\n";
  return os.str();
}
// A directory name for the run: the preset, or the model directory's name.
std::string run_name(const ModelSource& model) {
  std::string v = model.value;
  while (!v.empty() && v.back() == '/') v.pop_back();
  if (model.kind == ModelSource::ConfigFile) v = v.substr(0, v.find_last_of('/') == std::string::npos ? 0 : v.find_last_of('/'));
  if (v.find_last_of('/') != std::string::npos) v = v.substr(v.find_last_of('/') + 1);
  for (char& ch : v)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' && ch != '-') ch = '-';
  return v.empty() || v == "." || v == ".." ? "run" : v;
}

}  // namespace

std::string mpirun_command(const PlanRequest&, const Candidate& c, const LaunchPaths& paths) {
  std::ostringstream os;
  os << paths.launcher << " -np " << c.gpus;
  if (c.nodes > 1) os << " --hostfile " << paths.hostfile;
  os << " " << paths.ftdist << " train --config " << paths.config;
  return os.str();
}

std::string hostfile_text(const Candidate& c) {
  std::ostringstream os;
  os << kEmittedMarker << "; one line per node: replace the names with your hosts\n";
  int per_node = c.nodes > 0 ? c.gpus / c.nodes : c.gpus;
  for (int i = 0; i < c.nodes; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "node%02d", i + 1);
    os << name << " slots=" << per_node << "\n";
  }
  return os.str();
}

std::string sbatch_text(const PlanRequest& req, const Candidate& c, const LaunchPaths& paths) {
  int per_node = c.nodes > 0 ? c.gpus / c.nodes : c.gpus;
  // Whole nodes are reserved for the job alone; part of a node shares it (the plan prices the GPUs
  // it uses, not the node).
  const bool whole_nodes = per_node >= req.hardware[c.hardware].gpus_per_node;
  // (a job name is one word: a model named with spaces or quotes in its config would split the line)
  std::string job = "ftdist-" + req.model.name;
  for (char& ch : job)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.') ch = '_';
  double hours = c.time.total_s / 3600.0 * 1.2 + 0.25;  // 20% + 15 min of slack over the estimate
  // Slurm's days-hours:minutes:seconds, in 64 bits (a year-long estimate still reads as one).
  const int64_t minutes = int64_t(std::min(hours * 60.0 + 0.5, 1e15));
  const int64_t days = minutes / (24 * 60), hh = minutes / 60 % 24, mm = minutes % 60;
  char limit[64];
  std::snprintf(limit, sizeof(limit), "%lld-%02lld:%02lld:00", static_cast<long long>(days), static_cast<long long>(hh),
                static_cast<long long>(mm));
  std::ostringstream os;
  os << "#!/bin/bash\n"
     << settings_comment(req, c)
     << "#SBATCH --job-name=" << job << "\n"
     << "#SBATCH --nodes=" << c.nodes << "\n"
     << "#SBATCH --ntasks-per-node=" << per_node << "\n"
     << "#SBATCH --gpus-per-node=" << per_node << "\n"
     << "#SBATCH --time=" << limit << "\n"
     << (whole_nodes ? "#SBATCH --exclusive\n" : "# (part of a node: not --exclusive, which would bill the whole node)\n")
     << "#SBATCH --signal=TERM@300   # every rank gets SIGTERM 5 min before the time limit: it saves and stops\n"
     << "set -euo pipefail\n"
     << "# each rank binds GPU = SLURM_LOCALID; NCCL bootstraps over MPI (PMIx)\n"
     << "srun --mpi=pmix " << paths.ftdist << " train --config " << paths.config << "\n";
  return os.str();
}

std::string run_config_text(const PlanRequest& req, const Candidate& c, const ModelSource& model) {
  const RunSetup& s = c.setup;
  const int64_t steps = std::max<int64_t>(1, c.time.steps);
  FT_CHECK_ARG(steps <= kMaxSteps, "--emit: the planned workload is " << steps << " optimizer steps, more than ftdist train runs ("
                                                                    << kMaxSteps << "); plan a smaller workload, or split it into runs");
  const int64_t global_batch = s.micro_batch * c.grad_accum * c.gpus;
  FT_CHECK_ARG(global_batch <= kMaxGlobalBatch, "--emit: the plan's global batch is " << global_batch << " sequences ("
                                                    << s.micro_batch << " x " << c.grad_accum << " x " << c.gpus << " GPUs), more than ftdist train "
                                                    "takes (" << kMaxGlobalBatch << "); plan fewer GPUs or a smaller --micro-batch");
  std::ostringstream os;
  os << settings_comment(req, c) << "# Replace data.train, check [model], then: " << mpirun_command(req, c) << "\n"
     << (s.attention == Attention::Eager ? "# (planned with eager attention; ftdist train uses flash attention on GPUs, which holds less)\n" : "")
     << "\n[model]\n";
  switch (model.kind) {
    case ModelSource::Directory: os << "path = " << toml_quoted(model.value) << "   # a Hugging Face model directory: its weights are fine-tuned\n"; break;
    case ModelSource::ConfigFile:
      os << "config = " << toml_quoted(model.value) << "   # random init from this config.json; to fine-tune, path = \"<Hugging Face model directory>\"\n";
      break;
    default: os << "preset = " << toml_quoted(model.value) << "   # random init; to fine-tune, path = \"<Hugging Face model directory>\"\n"; break;
  }
  os << "\n[data]\ntrain = \"REPLACE-WITH-YOUR-TRAINING-DATA.jsonl\"   # JSONL ({\"text\": ...} or token ids) or a .ftok file\n"
     << "seq_len = " << s.seq_len << "\n"
     << "packing = \"" << (s.packed_documents ? "documents" : "stream") << "\"   # as planned (--packing); \"auto\" decides by the data\n\n[train]\n"
     << "steps = " << steps << "   # the planned workload: " << req.total_tokens << " tokens\n"
     << "micro_batch = " << s.micro_batch << "\nglobal_batch = " << global_batch << "   # micro_batch x " << c.grad_accum
     << " accumulation steps x " << c.gpus << " ranks\n"
     << "optimizer = \"" << optimizer_name(s.optimizer) << "\"\n"
     << "lr = 2e-5   # typical for full fine-tuning: tune it\nmin_lr = 2e-6\n"
     << "warmup_steps = " << std::min<int64_t>(steps - 1, std::max<int64_t>(0, steps / 20)) << "\n"
     << "loss_chunk = " << s.loss_chunk << "   # tokens per loss chunk, as planned (0: all logits at once)\n"
     << "peak_tflops = " << (s.precision == Precision::Fp32 ? req.hardware[c.hardware].gpu.fp32_tflops : req.hardware[c.hardware].gpu.bf16_tflops)
     << "   # " << req.hardware[c.hardware].gpu.name << "'s " << (s.precision == Precision::Fp32 ? "fp32" : "bf16")
     << " peak, the mfu metric's\n\n[parallel]\n"
     << "device = \"auto\"\nshard = \"" << stage_name(s.stage) << "\"\n";
  if (s.stage == Stage::Hybrid) os << "shard_group = " << s.shard_group << "\n";
  os << "precision = \"" << precision_name(s.precision) << "\"\nreduce_dtype = \"" << float_type_name(s.reduce_dtype) << "\"\n"
     << "checkpointing = " << checkpointing_value(s.activation_checkpointing) << "\n"
     << (s.precision == Precision::Bf16Mixed && s.grad_accum_dtype == FloatType::Bf16 ? "grad_accum_dtype = \"bf16\"\n" : "")
     << "prefetch = " << s.prefetch << "\n" << (s.no_sync ? "no_sync = true\n" : "")
     << (s.offload_optimizer ? "offload = \"optimizer\"   # master weights and optimizer states in host memory\n" : "")
     << "\n[checkpoint]\n"
     << "every = " << std::max<int64_t>(1, steps / 10) << "\nresume = true\n\n[output]\n"
     << "dir = \"runs/" << run_name(model) << "\"\n";
  return os.str();
}

}  // namespace ftdist::plan
