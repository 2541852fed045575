#include "ftdist/plan/alternatives.h"

#include <algorithm>

#include "ftdist/core/bytes.h"
#include "ftdist/core/check.h"
#include "ftdist/plan/limits.h"
#include "ftdist/plan/memory_model.h"

namespace ftdist::plan {

int64_t lora_params(const ModelSpec& m, const AdapterOptions& o) {
  FT_CHECK_ARG(o.rank >= 1, "--lora-rank must be >= 1, got " << o.rank);
  int64_t per_layer = 0;
  for (const auto& t : o.targets) {
    int64_t in = 0, out = 0;
    if (t == "q") in = m.hidden, out = m.q_dim();
    else if (t == "k" || t == "v") in = m.hidden, out = m.kv_dim();
    else if (t == "o") in = m.q_dim(), out = m.hidden;
    else if (t == "gate" || t == "up") in = m.hidden, out = m.intermediate;
    else if (t == "down") in = m.intermediate, out = m.hidden;
    else FT_CHECK_ARG(false, "--lora-targets: unknown module '" << t << "' (expected q, k, v, o, gate, up, down)");
    per_layer += int64_t(o.rank) * (in + out);  // A: in x r, B: r x out
  }
  return per_layer * m.layers;
}

std::vector<AlternativeRow> adapter_alternatives(const ModelSpec& m, const RunSetup& setup, const AdapterOptions& o,
                                                 uint64_t usable_bytes) {
  // The frozen model's activations are those of full fine-tuning (inputs of every linear are still
  // needed for the gradient w.r.t. the activations) plus each adapter's rank-r intermediate.
  RunSetup one = setup;
  one.stage = Stage::None;
  one.shard_group = 1;
  one.replicas = 1;
  const MemoryBreakdown full = estimate_memory(m, one);
  const int64_t adapters = lora_params(m, o);
  const double tokens = double(setup.micro_batch) * double(setup.seq_len);
  const int64_t ck = setup.activation_checkpointing.count(m.layers);
  const uint64_t adapter_act = clamp_bytes(tokens * 2.0 * o.rank * double(o.targets.size()) *
                                        (m.layers - ck + (ck > 0 ? 1 : 0)));  // checkpointed layers: one recomputed at a time

  const int64_t linear_params = m.layers * (m.layer_params() - 2 * m.hidden);  // all but the norms
  const int64_t other_params = m.param_count() - linear_params;
  std::vector<AlternativeRow> rows;
  for (const char* method : {"lora", "qlora"}) {
    AlternativeRow r;
    r.method = method;
    r.rank = o.rank;
    r.micro_batch = setup.micro_batch;
    r.trainable_params = adapters;
    if (r.method == "lora") {
      r.base_bytes = uint64_t(m.param_count()) * 2;
    } else {
      // NF4: 4 bits per weight of the decoder's linear layers plus blockwise constants (64-element
      // blocks, double-quantized: about 0.127 bits per weight); embeddings, lm_head, norms in bf16.
      r.base_bytes = uint64_t(double(linear_params) * (0.5 + 0.127 / 8.0)) + uint64_t(other_params) * 2;
    }
    r.adapter_bytes = uint64_t(adapters) * 16;  // fp32 weight, fp32 grad, two fp32 AdamW moments
    r.activations = std::min(kMaxBytes, full[MemCategory::activations] + adapter_act);
    r.logits = full[MemCategory::logits];
    uint64_t rest = r.base_bytes + r.adapter_bytes + r.activations + r.logits;
    r.overhead = clamp_bytes(setup.overheads.cuda_context_gib * double(kGiB) + setup.overheads.fragmentation * double(rest));
    r.total = rest + r.overhead;
    r.fits = r.total <= usable_bytes;
    rows.push_back(r);
  }
  return rows;
}

}  // namespace ftdist::plan
