#include "ftdist/train/resolve.h"

#include "ftdist/comm/device_binding.h"
#include "ftdist/core/bytes.h"
#include "ftdist/core/check.h"
#include "ftdist/core/log.h"
#include "ftdist/data/documents.h"
#include "ftdist/data/token_file.h"
#include "ftdist/data/tokenizer.h"
#include "ftdist/plan/memory_model.h"

#include <algorithm>
#include <limits>

namespace ftdist::train {

namespace {
// data.packing = "auto": whole examples for data with a loss mask (a masked .ftok; JSONL with a
// prompt/completion or chat messages line, or input_ids data where any line's labels mask a token,
// as the .ftok made of it is masked), a stream for plain text.
// The training and the evaluation data each decide their own: an eval set's loss does not depend on
// the training data's format.
// A JSONL file is searched whole (masked examples after text lines, labels that mask a token) on
// rank 0 only, which tells the others.
std::string resolved_packing(const std::string& packing, const std::string& path, comm::Communicator& world) {
  if (packing != "auto") return packing;
  if (data::is_token_file_path(path))
    return data::TokenFile(path, std::numeric_limits<int32_t>::max()).masked() ? "documents" : "stream";
  at::Tensor masked = at::zeros({1}, at::kLong);
  if (world.rank() == 0) {
    switch (data::jsonl_kind(path)) {
      case data::JsonlKind::kMaskedText: masked.fill_(1); break;
      case data::JsonlKind::kTokenIds: masked.fill_(int64_t(data::jsonl_labels_mask(path))); break;
      case data::JsonlKind::kText: masked.fill_(int64_t(data::jsonl_masked_text_lines(path))); break;
      default: break;  // (missing, empty, or malformed: opening the data says so)
    }
  }
  if (world.size() > 1) {
    at::Tensor on = masked.to(world.device());
    world.broadcast(on, 0);
    masked = on.cpu();
  }
  return masked.item<int64_t>() != 0 ? "documents" : "stream";
}
}  // namespace

ResolvedRun resolve_run(const RunConfig& config, const plan::ModelSpec& spec, comm::Communicator& world, int64_t saved_global_batch) {
  ResolvedRun run;
  run.config = config;
  RunConfig& c = run.config;
  FT_CHECK_ARG(c.device != "cuda" || comm::cuda_device_present(),
               c.origin << ": parallel.device = \"cuda\", but no CUDA device is present (or ftdist was built without "
                           "CUDA); use \"cpu\" or \"auto\"");
  c.device = resolved_device(c);
  c.precision = resolved_precision(c);
  c.eval_packing = c.eval_data.empty() ? "" : resolved_packing(c.packing, c.eval_data, world);
  c.packing = resolved_packing(c.packing, c.train_data, world);
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
  if (c.global_batch == 0 && saved_global_batch > 0 && saved_global_batch != run.global_batch &&
      saved_global_batch % (c.micro_batch * n) == 0) {
    run.global_batch = saved_global_batch;
    if (world.rank() == 0)
      FT_LOG_INFO("train.global_batch = 0: keeping the resumed checkpoint's global batch of " << saved_global_batch << " sequences ("
                  << saved_global_batch / (c.micro_batch * n) << " micro-batch(es) of " << c.micro_batch << " on each of " << n << " rank(s))");
  }
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
