// Alternatives users weigh against full-parameter fine-tuning, priced for comparison only (ftdist
// trains full-parameter): LoRA on a frozen bf16 base and QLoRA on a frozen 4-bit NF4 base, on one GPU.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ftdist/plan/model_spec.h"
#include "ftdist/plan/run_setup.h"

namespace ftdist::plan {

struct AdapterOptions {
  int rank = 16;
  // Any of q, k, v, o, gate, up, down.
  std::vector<std::string> targets = {"q", "k", "v", "o", "gate", "up", "down"};
};

struct AlternativeRow {
  std::string method;        // "lora" | "qlora"
  int rank = 0;
  int64_t micro_batch = 1;     // the setup's (--micro-batch, else 1)
  int64_t trainable_params = 0;
  uint64_t base_bytes = 0;     // frozen weights
  uint64_t adapter_bytes = 0;  // adapter weights, gradients and AdamW states (fp32: 16 B/param)
  uint64_t activations = 0;
  uint64_t logits = 0;
  uint64_t overhead = 0;
  uint64_t total = 0;
  bool fits = false;
};

// `setup` supplies micro-batch, sequence length, activation checkpointing, attention and overheads.
std::vector<AlternativeRow> adapter_alternatives(const ModelSpec& model, const RunSetup& setup,
                                                 const AdapterOptions& options, uint64_t usable_bytes);

// Trainable parameters of LoRA adapters of `rank` on `targets`, over all layers.
int64_t lora_params(const ModelSpec& model, const AdapterOptions& options);

}  // namespace ftdist::plan
