#include "ftdist/train/resolve.h"

#include "ftdist/comm/device_binding.h"
#include "ftdist/core/bytes.h"
#include "ftdist/core/check.h"
#include "ftdist/core/log.h"
#include "ftdist/data/token_file.h"
#include "ftdist/data/tokenizer.h"
#include "ftdist/plan/memory_model.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

namespace ftdist::train {

namespace {
// data.packing = "auto": whole examples for data with a loss mask (a masked .ftok; JSONL whose first
// line is prompt/completion or chat messages, or input_ids data where any line's labels mask a token,
// as the .ftok made of it is masked), a stream for plain text. Input_ids lines are scanned on past
// the first, parsing only those that hold "-100", until one masks a token.
std::string resolved_packing(const RunConfig& c) {
  if (c.packing != "auto") return c.packing;
  if (data::is_token_file_path(c.train_data))
    return data::TokenFile(c.train_data, std::numeric_limits<int32_t>::max()).masked() ? "documents" : "stream";
  std::ifstream in(c.train_data);
  std::string line;
  bool token_ids = false;  // the first line was input_ids: later lines may still mask
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (token_ids && line.find("-100") == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return "stream";  // (opening the data names the line)
    const auto labels = j.find("labels");
    if (labels != j.end() && labels->is_array() &&
        std::any_of(labels->begin(), labels->end(), [](const nlohmann::json& v) { return v == -100; }))
      return "documents";
    if (token_ids) continue;
    if (j.contains("prompt") || j.contains("messages")) return "documents";
    if (!j.contains("input_ids")) return "stream";
    token_ids = true;
  }
  return "stream";  // (missing, empty, or input_ids that mask nothing: opening the data says so)
}
}  // namespace

ResolvedRun resolve_run(const RunConfig& config, const plan::ModelSpec& spec, comm::Communicator& world) {
  ResolvedRun run;
  run.config = config;
  RunConfig& c = run.config;
  FT_CHECK_ARG(c.device != "cuda" || comm::cuda_device_present(),
               c.origin << ": parallel.device = \"cuda\", but no CUDA device is present (or ftdist was built without "
                           "CUDA); use \"cpu\" or \"auto\"");
  c.device = resolved_device(c);
  c.precision = resolved_precision(c);
  c.packing = resolved_packing(c);
  plan::check_activation_checkpointing(c.activation_checkpointing, spec.layers, c.origin + " parallel.checkpointing");
  FT_CHECK_ARG(spec.dropout.empty(), spec.dropout << "; ftdist trains without dropout (set it to 0.0)");
  if (spec.max_position > 0 && c.seq_len > spec.max_position && world.rank() == 0)
    FT_LOG_WARN(c.origin << ": data.seq_len (" << c.seq_len << ") exceeds the model's max_position_embeddings (" << spec.max_position
                         << "): positions beyond it were never trained");
  if (c.warmup_steps > c.steps && world.rank() == 0)
    FT_LOG_WARN(c.origin << ": train.warmup_steps (" << c.warmup_steps << ") exceeds train.steps (" << c.steps
                         << "): the learning rate never reaches train.lr (" << c.lr << ")");
  // JSONL text with a model directory that ships a tokenizer (tokenizer.model, tokenizer.json): that one.
  if (c.tokenizer.empty() && !c.model_path.empty() && !data::is_token_file_path(c.train_data)) {
    const std::string file = data::tokenizer_file_of(c.model_path);
    if (!file.empty()) {
      c.tokenizer = file;
      if (world.rank() == 0) FT_LOG_INFO("data.tokenizer: the model directory's " << file);
    }
  }
  run.world = world.size();
  run.ranks_per_node = comm::local_size();  // collective
  const int n = run.world;
  run.global_batch = c.global_batch > 0 ? c.global_batch : c.micro_batch * n;
  FT_CHECK_ARG(run.global_batch % (c.micro_batch * n) == 0,
               c.origin << ": train.global_batch (" << run.global_batch << ") must be a multiple of train.micro_batch x ranks = "
                        << c.micro_batch * n);
  run.budget = memory_budget(c);  // collective
  if (c.auto_parallel) {
    c = choose_parallel(c, spec, n, run.global_batch, run.budget);
    FT_LOG_INFO("parallel.auto: shard " << plan::stage_name(c.shard) << ", micro_batch " << c.micro_batch << ", checkpointing "
                << plan::activation_checkpointing_text(c.activation_checkpointing, spec.layers) << " for " << n << " rank(s) of "
                << format_bytes(double(run.budget.bytes)) << " (" << run.budget.source << ")");
  }
  // train.loss_chunk = -1 (auto): chunked where the logits of a micro-batch would be large (after
  // parallel.auto, which decides it with the micro-batch)
  if (c.loss_chunk < 0) c.loss_chunk = plan::default_loss_chunk(spec, c.micro_batch * c.seq_len);
  if (c.shard == plan::Stage::Hybrid) {
    c.shard_group = plan::hybrid_group_ranks(int(c.shard_group), run.ranks_per_node);
    try {
      plan::shard_group_size(c.shard, n, int(c.shard_group));  // divides the world
    } catch (const Error& e) {
      FT_CHECK_ARG(false, c.origin << ": " << e.message());
    }
    if (c.shard_group == n && n > 1 && world.rank() == 0)
      FT_LOG_WARN("shard hybrid with one shard group of all " << n << " ranks is full sharding; set parallel.shard_group "
                  "to the ranks that shard together (e.g. one node's)");
  }
  return run;
}

}  // namespace ftdist::train
