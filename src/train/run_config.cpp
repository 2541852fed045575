#include "ftdist/train/run_config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <sstream>

#include "ftdist/core/check.h"
#include "ftdist/core/log.h"
#include "ftdist/core/hash.h"
#include "ftdist/core/suggest.h"
#include "ftdist/core/text_file.h"
#include "ftdist/core/toml_util.h"
#include "ftdist/core/bytes.h"
#include "ftdist/comm/communicator.h"
#include "ftdist/io/checkpoint.h"
#include "ftdist/plan/gpu_catalog.h"
#include "ftdist/plan/limits.h"

namespace ftdist::train {
namespace {

// `path` from the root, as the working directory makes it (`path` itself if that fails).
std::string absolute_dir(const std::string& path) {
  std::error_code ec;
  const std::filesystem::path a = std::filesystem::absolute(path, ec);
  return ec ? path : a.lexically_normal().string();
}

// One run-config key, declared once: what parsing, the unknown-key suggestions, the resolved
// config's JSON, `ftdist train --help-config` and docs/run-config.md's key reference read.
struct Key {
  const char* section;
  const char* key;
  const char* type;     // as the reference shows it: integer, number, string, bool, bytes, choice
  const char* allowed;  // choices, "a | b | c" ("" for free values)
  const char* doc;      // one or two sentences: what it does, what the default means
  // Reads the key's value from its [section] (present) into the config; `where` is "file [section]".
  std::function<void(const toml::table& section, RunConfig& c, const std::string& where)> read;
  std::function<nlohmann::ordered_json(const RunConfig& c)> write;  // the value, as the resolved JSON holds it
  const char* default_doc = nullptr;  // the default as the reference shows it, when not write(RunConfig{})
};

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

Key text(const char* section, const char* key, std::string RunConfig::*m, const char* doc, const char* default_doc = nullptr) {
  return {section, key, "string", "", doc,
          [=](const toml::table& t, RunConfig& c, const std::string& where) { c.*m = toml_get<std::string>(t, key, where); },
          [=](const RunConfig& c) { return nlohmann::ordered_json(c.*m); }, default_doc};
}

Key flag(const char* section, const char* key, bool RunConfig::*m, const char* doc) {
  return {section, key, "bool", "", doc,
          [=](const toml::table& t, RunConfig& c, const std::string& where) { c.*m = toml_get<bool>(t, key, where); },
          [=](const RunConfig& c) { return nlohmann::ordered_json(c.*m); }};
}

// An integer >= min (and <= max when max > min).
template <typename T>
Key integer(const char* section, const char* key, T RunConfig::*m, int64_t min, int64_t max, const char* doc) {
  return {section, key, "integer", "", doc,
          [=](const toml::table& t, RunConfig& c, const std::string& where) {
            const int64_t v = toml_get<int64_t>(t, key, where);
            FT_CHECK_ARG(v >= min, where << ": \"" << key << "\" must be >= " << min << ", got " << v);
            FT_CHECK_ARG(max <= min || v <= max, where << ": \"" << key << "\" must be <= " << max << ", got " << v);
            c.*m = T(v);
          },
          [=](const RunConfig& c) { return nlohmann::ordered_json(c.*m); }};
}

// A finite number >= min (no bound when min is -inf).
Key number(const char* section, const char* key, double RunConfig::*m, double min, const char* doc) {
  return {section, key, "number", "", doc,
          [=](const toml::table& t, RunConfig& c, const std::string& where) {
            const double v = toml_get<double>(t, key, where);
            FT_CHECK_ARG(std::isfinite(v), where << ": \"" << key << "\" must be a finite number, got " << v);
            FT_CHECK_ARG(v >= min, where << ": \"" << key << "\" must be >= " << min << ", got " << v);
            c.*m = v;
          },
          [=](const RunConfig& c) { return nlohmann::ordered_json(c.*m); }};
}

// One of `allowed` (strings), stored as the string.
Key choice(const char* section, const char* key, std::string RunConfig::*m, std::vector<std::string> allowed,
           const char* allowed_doc, const char* doc) {
  return {section, key, "choice", allowed_doc, doc,
          [=](const toml::table& t, RunConfig& c, const std::string& where) {
            const std::string v = toml_get<std::string>(t, key, where);
            std::vector<std::string> q;
            for (const std::string& a : allowed) q.push_back(quoted(a));
            FT_CHECK_ARG(std::find(allowed.begin(), allowed.end(), v) != allowed.end(),
                         where << ": \"" << key << "\" must be " << join_or(q) << ", got \"" << v << "\"");
            c.*m = v;
          },
          [=](const RunConfig& c) { return nlohmann::ordered_json(c.*m); }};
}

// A named value of an enum: `from_name` parses (and names the choices in its error), `name` writes.
template <typename E, typename From, typename Name>
Key named(const char* section, const char* key, E RunConfig::*m, const char* allowed_doc, From from_name, Name name,
          const char* doc) {
  return {section, key, "choice", allowed_doc, doc,
          [=](const toml::table& t, RunConfig& c, const std::string& where) {
            const std::string v = toml_get<std::string>(t, key, where);
            try {
              c.*m = from_name(v);
            } catch (const Error& e) {
              std::string why = e.message();  // without the command-line flag's name the parser gives
              if (why.rfind("--", 0) == 0 && why.find(": ") != std::string::npos) why = why.substr(why.find(": ") + 2);
              FT_CHECK(false, e.kind(), where << ": \"" << key << "\": " << why);
            }
          },
          [=](const RunConfig& c) { return nlohmann::ordered_json(name(c.*m)); }};
}

// parallel.checkpointing: "none", "full", or a number of layers (an integer, or its digits as a string).
void read_checkpointing(const toml::table& t, RunConfig& c, const std::string& where) {
  const toml::node& v = *t.get("checkpointing");
  if (auto k = v.value_exact<int64_t>()) {
    FT_CHECK_ARG(*k >= 0, where << ": \"checkpointing\" must be \"none\", \"full\" or a number of layers >= 0, got " << *k);
    c.activation_checkpointing = plan::ActivationCheckpointing::first(*k);
  } else if (auto name = v.value_exact<std::string>()) {
    try {
      c.activation_checkpointing = plan::activation_checkpointing_from_name(*name);
    } catch (const Error&) {
      FT_CHECK_ARG(false, where << ": \"checkpointing\" must be \"none\", \"full\" or a number of layers, got \"" << *name << "\"");
    }
  } else {
    FT_CHECK_ARG(false, where << ": \"checkpointing\" must be \"none\", \"full\" or a number of layers");
  }
}

void read_memory_limit(const toml::table& t, RunConfig& c, const std::string& where) {
  const toml::node& limit = *t.get("memory_limit");
  if (auto bytes = limit.value<int64_t>()) {
    FT_CHECK_ARG(*bytes >= 0, where << ": \"memory_limit\" must be >= 0 bytes, got " << *bytes);
    c.memory_limit = uint64_t(*bytes);
  } else if (auto real = limit.value<double>()) {
    FT_CHECK_ARG(*real >= 0 && *real <= double(plan::kMaxBytes), where << ": \"memory_limit\" must be 0.." << plan::kMaxBytes << " bytes, got " << *real);
    c.memory_limit = uint64_t(*real);
  } else if (auto text = limit.value<std::string>()) {
    c.memory_limit = parse_bytes(*text, where + " memory_limit");
  } else {
    FT_CHECK_ARG(false, where << ": \"memory_limit\" must be bytes, as a number or a string such as \"24GiB\"");
  }
  FT_CHECK_ARG(c.memory_limit <= plan::kMaxBytes, where << ": \"memory_limit\" (" << c.memory_limit << " bytes) must be at most "
                                                        << plan::kMaxBytes << " bytes (1 EiB)");
}

void read_precision(const toml::table& t, RunConfig& c, const std::string& where) {
  const std::string v = toml_get<std::string>(t, "precision", where);
  c.precision.reset();
  if (v == "auto") return;
  try {
    c.precision = plan::precision_from_name(v);
  } catch (const Error&) {
    FT_CHECK_ARG(false, where << ": \"precision\" must be auto, fp32, bf16-mixed or bf16-pure, got \"" << v << "\"");
  }
}

void read_nonfinite(const toml::table& t, RunConfig& c, const std::string& where) {
  const std::string v = toml_get<std::string>(t, "nonfinite", where);
  FT_CHECK_ARG(v == "skip" || v == "abort",
               where << ": \"nonfinite\" must be skip (skip the step and report it) or abort, got \"" << v << "\"");
  c.abort_on_nonfinite = v == "abort";
}

// The keys, section by section, in the order the resolved JSON and the reference list them. The
// trajectory hash reads the [model], [data] and [train] values in this order: keep it.
// long: one declarative table, a key per entry with its documentation; splitting it would scatter them.
const std::vector<Key>& keys() {
  using C = RunConfig;
  static const std::vector<Key> table = {
      text("model", "path", &C::model_path, "A Hugging Face model directory (config.json, *.safetensors, tokenizer files) to fine-tune, or an ftdist checkpoint (a step directory, or a checkpoint root: its newest) whose master weights start a new run with fresh optimizer states. Give exactly one of path, preset, config."),
      text("model", "preset", &C::model_preset, "A bundled architecture by name (`ftdist models` lists them), randomly initialized from train.seed."),
      text("model", "config", &C::model_config, "A Hugging Face config.json: that architecture, randomly initialized from train.seed."),
      text("data", "train", &C::train_data, "Training data: a JSONL file of {\"text\": ...} documents (tokenized once into <output.dir>/data/) or a .ftok token file (`ftdist prepare-data`).", "(required)"),
      text("data", "eval", &C::eval_data, "Evaluation data, in the same formats, evaluated every train.eval_every steps (\"\": none)."),
      text("data", "tokenizer", &C::tokenizer, "The tokenizer of JSONL text: a SentencePiece tokenizer.model, a byte-level BPE tokenizer.json (Llama-3, Qwen2), or a model directory holding either, its tokenizer_config.json giving the chat template (\"\": model.path's; without model.path byte-level, one token per byte, which checkpoints and the export record in ftdist-tokenizer.json)."),
      integer("data", "seq_len", &C::seq_len, plan::kMinSeqLen, plan::kMaxSeqLen, "Tokens per training sequence; documents are packed into sequences of this length."),
      choice("data", "packing", &C::packing, {"auto", "documents", "stream"}, "auto | documents | stream",
             "documents: whole examples per sequence (best-fit decreasing, the rest padded and not counted), attention and "
             "positions per example; stream: documents concatenated and cut every seq_len tokens (pre-training text); auto: "
             "documents when the data has a loss mask (prompt/completion, chat messages), else stream, decided for data.train and data.eval each."),
      choice("data", "long_examples", &C::long_examples, {"truncate", "drop"}, "truncate | drop",
             "packing documents: an example longer than seq_len is cut to its first seq_len tokens, or left out (counted in the log)."),
      choice("data", "train_on", &C::train_on, {"assistant", "all"}, "assistant | all",
             "JSONL chat messages: assistant trains the assistant turns and the end-of-turn text that closes each; all trains "
             "every token (as `ftdist prepare-data --train-on`)."),
      integer("train", "steps", &C::steps, 1, plan::kMaxSteps, "Optimizer steps to run (a resumed run continues up to this step)."),
      integer("train", "micro_batch", &C::micro_batch, 1, plan::kMaxMicroBatch, "Sequences per rank per forward/backward."),
      integer("train", "global_batch", &C::global_batch, 0, plan::kMaxGlobalBatch, "Sequences per optimizer step over all ranks, a multiple of micro_batch x ranks (gradient accumulation makes up the rest); 0: micro_batch x ranks."),
      number("train", "lr", &C::lr, -std::numeric_limits<double>::infinity(), "Peak learning rate (> 0)."),
      number("train", "min_lr", &C::min_lr, -std::numeric_limits<double>::infinity(), "The learning rate the cosine and linear schedules decay to (0 <= min_lr <= lr)."),
      integer("train", "warmup_steps", &C::warmup_steps, 0, plan::kMaxSteps, "Steps of linear warmup: step k of w runs at k/w x lr."),
      named("train", "schedule", &C::schedule, "constant | cosine | linear", optim::schedule_kind_from_name, optim::schedule_kind_name,
            "The learning-rate schedule after warmup."),
      named("train", "optimizer", &C::optimizer, "adamw | adamw-8bit | sgd-momentum", plan::optimizer_from_name, plan::optimizer_name,
            "adamw (fp32 moments); adamw-8bit (moments quantized blockwise to one byte: 2 bytes of state per parameter instead of 8); "
            "sgd-momentum (one momentum buffer)."),
      number("train", "weight_decay", &C::weight_decay, 0, "Weight decay of matrices (never of norms and biases): decoupled in AdamW, L2 added to the gradient in SGD."),
      number("train", "beta1", &C::beta1, 0, "adamw, adamw-8bit: the first moment's decay, in [0, 1)."),
      number("train", "beta2", &C::beta2, 0, "adamw, adamw-8bit: the second moment's decay, in [0, 1)."),
      number("train", "eps", &C::eps, 0, "adamw, adamw-8bit: added to the denominator (> 0)."),
      number("train", "momentum", &C::momentum, 0, "sgd-momentum: the momentum factor, in [0, 1)."),
      number("train", "grad_clip", &C::grad_clip, 0, "Clip the global gradient norm to this; 0 disables clipping."),
      integer("train", "seed", &C::seed, 0, 0, "Seed of the data order and of random initialization."),
      integer("train", "eval_every", &C::eval_every, 0, plan::kMaxSteps, "Evaluate on data.eval every this many steps and at the last step (0: never)."),
      integer("train", "log_every", &C::log_every, 1, plan::kMaxSteps, "Print a progress line every this many steps (metrics.jsonl gets every step)."),
      integer("train", "loss_chunk", &C::loss_chunk, -1, plan::kMaxLossChunk,
              "lm_head and the cross-entropy over chunks of this many tokens, so fp32 logits exist for one chunk at a time (the same "
              "loss and gradients); 0: all at once; -1 (auto): chunks for vocabularies of 64k and more (ftdist plan shows the size)."),
      {"train", "nonfinite", "choice", "skip | abort",
       "A step whose loss or gradient norm is not finite: skip (no update; reported in metrics.jsonl) or abort (exit 1).", read_nonfinite,
       [](const C& c) { return nlohmann::ordered_json(c.abort_on_nonfinite ? "abort" : "skip"); }},
      integer("train", "nonfinite_limit", &C::nonfinite_limit, 0, plan::kMaxSteps,
              "nonfinite = skip: this many skipped non-finite steps in a row stop the run (exit 1; a skipped step leaves the weights "
              "as they were, so the same weights usually fail again); 0: no limit."),
      number("train", "peak_tflops", &C::peak_tflops, 0, "Peak TFLOP/s per rank for the mfu metric (0: unknown, mfu is null; parallel.gpu sets it)."),
      choice("parallel", "device", &C::device, {"auto", "cpu", "cuda"}, "auto | cpu | cuda",
             "Where ranks compute: auto is a GPU per rank (NCCL collectives) when this machine has one, else the CPU (MPI collectives)."),
      named("parallel", "shard", &C::shard, "full | grad-op | optimizer | none | hybrid (ZeRO names zero3, zero2, zero1, ddp accepted)",
            plan::stage_from_name, plan::stage_name, "The sharding stage: what is sharded across ranks (docs/architecture.md#stages)."),
      integer("parallel", "shard_group", &C::shard_group, 0, plan::kMaxRanks, "hybrid only: ranks per shard group (full sharding inside a group, gradient shards all-reduced across groups); 0: the ranks of one node. Must divide the world size."),
      {"parallel", "precision", "choice", "auto | fp32 | bf16-mixed | bf16-pure",
       "auto: bf16-mixed on a GPU (the planner's default), fp32 on the CPU (whose bf16 matrix products are slower than fp32 without "
       "AMX or AVX-512 BF16); fp32; bf16-mixed (bf16 compute, fp32 master weights and optimizer states); bf16-pure (bf16 everywhere).",
       read_precision,
       [](const C& c) { return nlohmann::ordered_json(c.precision ? plan::precision_name(*c.precision) : "auto"); }},
      named("parallel", "reduce_dtype", &C::reduce_dtype, "fp32 | bf16",
            [](const std::string& n) { return plan::float_type_from_name(n, "reduce_dtype"); }, plan::float_type_name,
            "The dtype gradients are reduce-scattered (all-reduced) in."),
      named("parallel", "grad_accum_dtype", &C::grad_accum_dtype, "fp32 | bf16",
            [](const std::string& n) { return plan::float_type_from_name(n, "grad_accum_dtype"); }, plan::float_type_name,
            "bf16-mixed only: the dtype of the gradient shard gradients accumulate in; bf16 halves its memory and rounds each addition."),
      {"parallel", "checkpointing", "choice", "none | full | K",
       "Activation checkpointing: the decoder layers that keep only their input in forward and run it again in "
       "backward (one more forward each): none, full (every layer) or K, the first K layers. parallel.auto picks the "
       "smallest K that fits.",
       read_checkpointing,
       [](const C& c) {
         const plan::ActivationCheckpointing k = c.activation_checkpointing;
         return k.partial() ? nlohmann::ordered_json(k.layers) : nlohmann::ordered_json(plan::activation_checkpointing_name(k));
       }},
      integer("parallel", "prefetch", &C::prefetch, 1, plan::kMaxPrefetch, "Units gathered at once: the one computing plus those gathered ahead of it."),
      flag("parallel", "no_sync", &C::no_sync, "Gradient accumulation: keep each unit's unsharded gradient until the step's last micro-batch and reduce once (fewer collectives, more memory)."),
      {"parallel", "offload", "choice", "none | optimizer",
       "optimizer: keep the fp32 master weights and the optimizer states in host memory (pinned on a GPU) and run the "
       "optimizer step on the host (ZeRO-Offload): the device keeps only parameters, gradients and activations. "
       "ftdist plan --offload prices it.",
       [](const toml::table& t, C& c, const std::string& where) {
         const std::string v = toml_get<std::string>(t, "offload", where);
         FT_CHECK_ARG(v == "none" || v == "optimizer", where << ": \"offload\" must be \"none\" or \"optimizer\", got \"" << v << "\"");
         c.offload_optimizer = v == "optimizer";
       },
       [](const C& c) { return nlohmann::ordered_json(c.offload_optimizer ? "optimizer" : "none"); }},
      flag("parallel", "auto", &C::auto_parallel, "Let the planner choose shard, micro_batch and checkpointing for the launched world size and memory budget."),
      {"parallel", "memory_limit", "bytes", "", "Bytes each rank must fit into, as a number or \"24GiB\" (0: the GPU's memory; on the CPU MemAvailable / ranks on the node).",
       read_memory_limit, [](const C& c) { return nlohmann::ordered_json(c.memory_limit); }},
      text("parallel", "gpu", &C::gpu, "A catalog GPU (`ftdist gpus`); train.peak_tflops defaults to its bf16 peak."),
      text("checkpoint", "dir", &C::checkpoint_dir, "Where checkpoints go.", "\"\" (<output.dir>/checkpoints)"),
      integer("checkpoint", "every", &C::checkpoint_every, 0, plan::kMaxSteps, "Save a checkpoint every this many steps, at the end and on SIGTERM/SIGINT; 0: no checkpoints."),
      integer("checkpoint", "keep", &C::checkpoint_keep, 0, 1000000, "Checkpoints kept (the oldest are removed); 0 keeps all."),
      flag("checkpoint", "resume", &C::resume, "Continue from <checkpoint.dir>/latest when there is one (on any world size and stage)."),
      text("output", "dir", &C::output_dir, "The run's directory: metrics, memory.json, tokenized data, checkpoints, the export."),
      text("output", "metrics", &C::metrics, "The metrics log's file name in output.dir (JSON lines, one per step): a plain name, not a path, an input or one of the run's own entries."),
      flag("output", "export", &C::export_hf, "Write a Hugging Face directory <output.dir>/hf (safetensors) at the end."),
      flag("output", "tensorboard", &C::tensorboard, "Write TensorBoard event files (every number of metrics.jsonl, each step) under <output.dir>/tb: tensorboard --logdir <output.dir>/tb."),
      choice("output", "export_dtype", &C::export_dtype, {"bf16", "fp32"}, "bf16 | fp32", "The dtype of the exported weights."),
  };
  return table;
}

std::vector<std::string> section_names() {
  std::vector<std::string> out;
  for (const Key& k : keys())
    if (std::find(out.begin(), out.end(), k.section) == out.end()) out.push_back(k.section);
  return out;
}

std::vector<std::string> key_names(const std::string& section) {
  std::vector<std::string> out;
  for (const Key& k : keys())
    if (section == k.section) out.push_back(k.key);
  return out;
}

// "section.key=value": the value is read as TOML (numbers, booleans, quoted strings), else as a string.
void apply_override(toml::table& root, const std::string& text) {
  const auto eq = text.find('='), dot = text.find('.');
  FT_CHECK_ARG(eq != std::string::npos && dot != std::string::npos && dot < eq,
               "--set: expected section.key=value, got '" << text << "'");
  const std::string section = text.substr(0, dot), key = text.substr(dot + 1, eq - dot - 1), value = text.substr(eq + 1);
  // (said of --set, not of the config file the key never was in)
  const std::vector<std::string> sections = section_names(), names = key_names(section);
  const auto close_section = closest_names(section, sections);
  FT_CHECK_ARG(std::find(sections.begin(), sections.end(), section) != sections.end(),
               "--set " << excerpt(text) << ": unknown section [" << excerpt(section) << "]"
                        << (close_section.empty() ? "" : "; did you mean [" + close_section[0] + "]?"));
  const auto close_key = closest_names(key, names);
  FT_CHECK_ARG(std::find(names.begin(), names.end(), key) != names.end(),
               "--set " << excerpt(text) << ": unknown key " << section << "." << excerpt(key)
                        << (close_key.empty() ? "" : "; did you mean " + section + "." + close_key[0] + "?"));
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value);
  } catch (const toml::parse_error&) {
    parsed = toml::parse("v = \"\"");
    parsed.insert_or_assign("v", value);
  }
  if (!root.contains(section)) root.insert(section, toml::table{});
  toml::table* t = root[section].as_table();
  FT_CHECK_ARG(t != nullptr, "--set " << text << ": [" << section << "] is not a table");
  t->insert_or_assign(key, *parsed.get("v"));
}

// Unknown sections and keys are errors, with the closest names.
void check_known(const toml::table& root, const std::string& path) {
  const std::vector<std::string> sections = section_names();
  for (const auto& [section, node] : root) {
    const std::string s(section.str());
    if (!node.is_table()) {  // a key before any [section]: name the section it belongs to
      std::string owner;
      for (const std::string& sec : sections) {
        const std::vector<std::string> names = key_names(sec);
        if (owner.empty() && std::find(names.begin(), names.end(), s) != names.end()) owner = sec;
      }
      FT_CHECK_ARG(false, path << ": \"" << s << "\" is outside any [section]; keys go under their section"
                               << (owner.empty() ? std::string(" (sections: ") + join_or(sections) + ")"
                                                 : ": [" + owner + "] " + s + " = ..."));
    }
    const auto close = closest_names(s, sections);
    FT_CHECK_ARG(std::find(sections.begin(), sections.end(), s) != sections.end(),
                 path << ": unknown section [" << s << "]" << (close.empty() ? "" : "; did you mean [" + close[0] + "]?"));
    const toml::table* t = node.as_table();
    FT_CHECK_ARG(t != nullptr, path << ": [" << s << "] must be a table");
    const std::vector<std::string> names = key_names(s);
    for (const auto& [key, _] : *t) {
      const std::string k(key.str());
      const auto near = closest_names(k, names);
      FT_CHECK_ARG(std::find(names.begin(), names.end(), k) != names.end(),
                   path << ": unknown key " << s << "." << k << (near.empty() ? "" : "; did you mean " + s + "." + near[0] + "?"));
    }
  }
}

// What a run writes into output.dir besides the metrics log (run_log.cpp, trainer.cpp,
// training_data.cpp, model_source.cpp, `ftdist report`): names output.metrics may not take.
constexpr const char* kRunDirEntries[] = {"run_config.json", "memory.json", "report.html", "tb", "checkpoints", "hf", "data"};

// output.metrics is a plain file name in output.dir, and none of the run's other entries.
void check_metrics_name(const RunConfig& c, const std::string& path) {
  const std::string& m = c.metrics;
  FT_CHECK_ARG(!m.empty() && m != "." && m != ".." && m.find('/') == std::string::npos && m.find('\0') == std::string::npos,
               path << " [output]: \"metrics\" must be a plain file name in output.dir (no '/'), got \"" << m << "\"");
  for (const char* reserved : kRunDirEntries)
    FT_CHECK_ARG(m != reserved, path << " [output]: \"metrics\" = \"" << m << "\" is a name the run itself writes in output.dir; "
                                            "choose another file name");
}

// What the run writes never lands on what it reads: the metrics log, run_config.json and
// memory.json are no input; the export it replaces (<output.dir>/hf) holds no input and no
// checkpoint.dir. Checked on the paths as given (made absolute, symbolic links resolved where they
// exist) before anything is created.
void check_outputs_spare_inputs(const RunConfig& c, const std::string& path) {
  namespace fs = std::filesystem;
  auto resolved = [](const std::string& p) {
    std::error_code ec;
    const fs::path r = fs::weakly_canonical(fs::absolute(p, ec), ec);
    return ec ? fs::path(p).lexically_normal() : r;
  };
  auto within = [](const fs::path& p, const fs::path& dir) {  // p is dir or below it
    const fs::path rel = p.lexically_relative(dir);
    return !rel.empty() && *rel.begin() != "..";
  };
  const fs::path out = resolved(c.output_dir), export_dir = out / "hf";
  const std::pair<const char*, const std::string*> inputs[] = {
      {"data.train", &c.train_data}, {"data.eval", &c.eval_data}, {"data.tokenizer", &c.tokenizer},
      {"model.path", &c.model_path}, {"model.config", &c.model_config}};
  for (const auto& [key, input] : inputs) {
    if (input->empty()) continue;
    const fs::path p = resolved(*input);
    for (const std::string& written : {c.metrics, std::string("run_config.json"), std::string("memory.json")})
      FT_CHECK_ARG(p != out / written, path << ": " << key << " '" << *input << "' is the file the run writes as " << (out / written).string()
                                            << " (output.dir's " << written << "); move it, or choose another output.dir");
    FT_CHECK_ARG(!c.export_hf || !within(p, export_dir),
                 path << ": " << key << " '" << *input << "' is in " << export_dir.string() << ", which output.export replaces at the "
                      << "end of the run; copy it elsewhere, or choose another output.dir");
  }
  FT_CHECK_ARG(!c.export_hf || !within(resolved(c.checkpoint_root()), export_dir),
               path << ": checkpoint.dir '" << c.checkpoint_root() << "' is in " << export_dir.string()
                    << ", which output.export replaces at the end of the run; choose another checkpoint.dir");
}

// What one key alone cannot check: keys that go together, and names looked up in catalogs.
void check_together(RunConfig& c, const std::string& path) {
  FT_CHECK_ARG(int(!c.model_path.empty()) + int(!c.model_preset.empty()) + int(!c.model_config.empty()) == 1,
               path << " [model]: give exactly one of path (a Hugging Face directory), preset or config");
  FT_CHECK_ARG(!c.train_data.empty(), path << " [data]: \"train\" (a JSONL file) is required");
  FT_CHECK_ARG(!c.output_dir.empty(), path << " [output]: \"dir\" must name the run's directory, got \"\"");
  check_metrics_name(c, path);
  check_outputs_spare_inputs(c, path);
  FT_CHECK_ARG(c.eval_every == 0 || !c.eval_data.empty(),
               path << " [train]: \"eval_every\" = " << c.eval_every << " needs data.eval (a JSONL or .ftok file to evaluate on); "
                       "set it, or eval_every = 0");
  FT_CHECK_ARG(c.shard_group == 0 || c.shard == plan::Stage::Hybrid,
               path << " [parallel]: \"shard_group\" (" << c.shard_group << ") applies to shard = \"hybrid\" only; shard is \""
                    << plan::stage_name(c.shard) << "\"");
  FT_CHECK_ARG(c.grad_accum_dtype == plan::FloatType::Fp32 || c.precision == plan::Precision::Bf16Mixed,
               path << " [parallel]: \"grad_accum_dtype\" = \"bf16\" applies to precision = \"bf16-mixed\" only; precision is \""
                    << (c.precision ? plan::precision_name(*c.precision) : "auto") << "\"");
  if (!c.gpu.empty()) {
    const plan::GpuCatalog catalog = plan::GpuCatalog::load_default();  // (held: find() refers into it)
    try {
      const plan::GpuSpec& g = catalog.find(c.gpu, path + " [parallel]: \"gpu\"");  // unknown names: error with suggestions
      c.gpu = g.name;
      // the mfu metric's peak: fp32 runs without tensor cores (TF32 stays off)
      if (c.peak_tflops == 0) c.peak_tflops = c.precision == plan::Precision::Fp32 ? g.fp32_tflops : g.bf16_tflops;
    } catch (const Error& e) {
      FT_CHECK_ARG(false, e.message() << "; or give train.peak_tflops for a GPU the catalog does not hold");
    }
  }
  for (auto [key, v] : {std::pair<const char*, double>{"beta1", c.beta1}, {"beta2", c.beta2}, {"momentum", c.momentum}})
    FT_CHECK_ARG(v < 1, path << " [train]: \"" << key << "\" must be in [0, 1), got " << v);
  // (the optimizers divide by eps in fp32: one that rounds to 0 or a denormal there makes 0 / 0 of an
  // element without gradient history)
  FT_CHECK_ARG(c.eps > 0 && float(c.eps) >= std::numeric_limits<float>::min(),
               path << " [train]: \"eps\" must be > 0 and at least " << std::numeric_limits<float>::min()
                    << " (the least normal fp32), got " << c.eps);
  // The schedule's own checks (optim::LrSchedule::validate), in the config's key names.
  FT_CHECK_ARG(c.lr > 0, path << " [train]: \"lr\" must be a positive number, got " << c.lr);
  FT_CHECK_ARG(c.min_lr >= 0 && c.min_lr <= c.lr,
               path << " [train]: \"min_lr\" must be in [0, lr = " << c.lr << "], got " << c.min_lr);
  FT_CHECK_ARG(c.schedule == optim::LrSchedule::Kind::Constant || c.steps > c.warmup_steps,
               path << " [train]: \"steps\" (" << c.steps << ") must exceed \"warmup_steps\" (" << c.warmup_steps << ") for the "
                    << optim::schedule_kind_name(c.schedule) << " schedule; lower warmup_steps or use schedule = \"constant\"");
  optim::LrSchedule{c.schedule, c.lr, c.warmup_steps, c.steps, c.min_lr}.validate();
}

std::string markdown_cell(std::string s) {
  for (size_t i = 0; (i = s.find('|', i)) != std::string::npos; i += 2) s.replace(i, 1, "\\|");
  return s;
}

}  // namespace

namespace {
// Whether `key` ("train.momentum") is a hyper-parameter of `optimizer` (or of every optimizer).
bool optimizer_uses_key(plan::OptimizerKind optimizer, const std::string& key) {
  const bool sgd = optimizer == plan::OptimizerKind::SgdMomentum;
  if (key == "train.momentum") return sgd;
  if (key == "train.beta1" || key == "train.beta2" || key == "train.eps") return !sgd;
  return true;
}
}  // namespace

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  toml::table root = parse_toml_file(path, "--config");
  for (const auto& o : overrides) apply_override(root, o);
  check_known(root, path);
  RunConfig c;
  c.origin = path;
  for (const Key& k : keys()) {
    const toml::table* t = root[k.section].as_table();
    if (t != nullptr && t->get(k.key) != nullptr) k.read(*t, c, path + " [" + k.section + "]");
  }
  check_together(c, path);
  // model.path naming a checkpoint root: its newest checkpoint (whose files, tokenizer included, are read)
  if (!c.model_path.empty()) c.model_path = io::checkpoint_dir_of(c.model_path);
  // Another optimizer's hyper-parameters are ignored (and not part of the trajectory): said once.
  if (const toml::table* t = root["train"].as_table(); t != nullptr && log::rank() <= 0)
    for (const char* key : {"beta1", "beta2", "eps", "momentum"})
      if (t->get(key) != nullptr && !optimizer_uses_key(c.optimizer, std::string("train.") + key))
        FT_LOG_WARN(path << " [train]: \"" << key << "\" does not apply to train.optimizer = \"" << plan::optimizer_name(c.optimizer)
                         << "\"; it is ignored");
  return c;
}

std::vector<ConfigKeyDoc> run_config_key_docs() {
  const nlohmann::ordered_json defaults = run_config_json(RunConfig{});
  std::vector<ConfigKeyDoc> out;
  for (const Key& k : keys())
    out.push_back({k.section, k.key, k.type, k.allowed, k.doc,
                   k.default_doc ? k.default_doc : defaults[k.section][k.key].dump()});
  return out;
}

std::string run_config_reference() {
  std::ostringstream os;
  std::string section;
  for (const ConfigKeyDoc& k : run_config_key_docs()) {
    if (k.section != section) {
      section = k.section;
      os << (os.tellp() > 0 ? "\n" : "") << "### [" << section << "]\n\n| key | type | default | meaning |\n| --- | --- | --- | --- |\n";
    }
    const std::string type = k.allowed.empty() ? k.type : k.allowed;
    os << "| `" << k.key << "` | " << markdown_cell(type) << " | `" << markdown_cell(k.default_value) << "` | "
       << markdown_cell(k.doc) << " |\n";
  }
  return os.str();
}

std::string resolved_device(const RunConfig& c) {
  if (c.device != "auto") return c.device;
  return comm::cuda_device_present() ? "cuda" : "cpu";
}

plan::Precision resolved_precision(const RunConfig& c) {
  if (c.precision) return *c.precision;
  return resolved_device(c) == "cuda" ? plan::Precision::Bf16Mixed : plan::Precision::Fp32;
}

plan::Attention runtime_attention(const RunConfig& c) {
  return resolved_device(c) == "cuda" ? plan::Attention::Flash : plan::Attention::Eager;
}

fsdp::FsdpConfig fsdp_config(const RunConfig& c) {
  fsdp::FsdpConfig fc;
  fc.device = resolved_device(c) == "cuda" ? at::Device(at::kCUDA) : at::Device(at::kCPU);  // index: the communicator's
  fc.stage = c.shard;
  fc.precision = resolved_precision(c);
  fc.reduce_dtype = c.reduce_dtype;
  fc.grad_accum_dtype = c.grad_accum_dtype;
  fc.activation_checkpointing = c.activation_checkpointing;
  fc.prefetch = int(c.prefetch);
  fc.shard_group = int(c.shard_group);
  fc.no_sync = c.no_sync;
  fc.loss_chunk = std::max<int64_t>(c.loss_chunk, 0);  // (auto is resolved before the runtime starts)
  fc.offload_optimizer = c.offload_optimizer;
  fc.optimizer.kind = c.optimizer;
  fc.optimizer.adamw = {c.beta1, c.beta2, c.eps, c.weight_decay};
  fc.optimizer.sgd = {c.momentum, c.weight_decay};
  fc.max_grad_norm = c.grad_clip;
  fc.skip_nonfinite = !c.abort_on_nonfinite;
  return fc;
}

nlohmann::ordered_json run_config_json(const RunConfig& c) {
  nlohmann::ordered_json j;
  for (const Key& k : keys()) j[k.section][k.key] = k.write(c);
  j["checkpoint"]["dir"] = absolute_dir(c.checkpoint_root());  // where they go, resolved (`ftdist report` from anywhere)
  return j;
}

namespace {
// [data] and [train] keys that do not change what is trained: a resumed run may go on for longer,
// log or evaluate at other steps or on other data, split the same global batch into other
// micro-batches or the loss into other chunks. The global batch itself is compared resolved (the
// trainer's resume warnings): train.global_batch = 0 stands for different batches on different ranks.
const char* const kNotTrajectory[] = {"data.eval",        "train.steps",        "train.eval_every",  "train.log_every",
                                      "train.peak_tflops", "train.nonfinite_limit", "train.micro_batch", "train.global_batch",
                                      "train.loss_chunk"};
bool shapes_trajectory(const std::string& section, const std::string& key, plan::OptimizerKind optimizer) {
  if (section != "model" && section != "data" && section != "train") return false;
  const std::string name = section + "." + key;
  return optimizer_uses_key(optimizer, name) &&
         std::none_of(std::begin(kNotTrajectory), std::end(kNotTrajectory), [&](const char* n) { return name == n; });
}
}  // namespace

std::string trajectory_hash(const RunConfig& c) {
  const nlohmann::ordered_json j = run_config_json(c);
  nlohmann::ordered_json shaping;
  for (const char* section : {"model", "data", "train"})
    for (auto k = j[section].begin(); k != j[section].end(); ++k)
      if (shapes_trajectory(section, k.key(), c.optimizer)) shaping[section][k.key()] = k.value();
  return hex64(fnv1a64(shaping.dump()));
}

std::vector<std::string> trajectory_changes(const nlohmann::ordered_json& saved, const RunConfig& now) {
  nlohmann::ordered_json before = run_config_json(RunConfig{});  // (a key newer than the checkpoint: its default)
  for (auto s = saved.begin(); s != saved.end(); ++s)
    if (s->is_object())
      for (auto k = s->begin(); k != s->end(); ++k) before[s.key()][k.key()] = k.value();
  std::vector<std::string> out;
  for (const std::string& key : changed_keys(before, run_config_json(now))) {
    const size_t dot = key.find('.');
    if (shapes_trajectory(key.substr(0, dot), key.substr(dot + 1), now.optimizer)) out.push_back(key);
  }
  return out;
}

std::vector<std::string> changed_keys(const nlohmann::ordered_json& before, const nlohmann::ordered_json& now) {
  std::vector<std::string> out;
  for (auto s = now.begin(); s != now.end(); ++s)
    for (auto k = s->begin(); k != s->end(); ++k)
      if (!before.contains(s.key()) || !before[s.key()].contains(k.key()) || before[s.key()][k.key()] != k.value())
        out.push_back(s.key() + "." + k.key());
  return out;
}

}  // namespace ftdist::train
