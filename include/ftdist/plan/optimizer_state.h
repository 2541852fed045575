// The state each optimizer keeps per parameter element, as one table that the memory model
// (bytes), the runtime (optim/, the buffers it allocates) and checkpoints (the tensors a step
// directory holds per unit) all read (docs/runtime.md#optimizer).
//
//   optimizer   state          dtype    entries over E elements
//   adamw       exp_avg        master   E        (fp32; bf16 in bf16-pure)
//               exp_avg_sq     master   E
//   adamw-8bit  exp_avg.q8     uint8    E        codes of the signed dynamic map
//               exp_avg.absmax fp32     ceil(E / 2048)   one scale per block
//               exp_avg_sq.q8  uint8    E        codes of the unsigned dynamic map
//               exp_avg_sq.absmax fp32  ceil(E / 2048)
//   sgd-momentum momentum      master   E
//
// Quantization blocks are counted from a unit's first element, so that a block never straddles two
// ranks: with adamw-8bit a rank's shard S is a multiple of the block (shard_size()), and every world
// size cuts the same blocks (checkpoints reshard exactly).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ftdist/plan/run_setup.h"

namespace ftdist::plan {

// Elements per 8-bit AdamW quantization block (one fp32 absmax each; bitsandbytes' block size).
constexpr int64_t kQuantBlock = 2048;

struct OptimizerState {
  enum class Dtype { Master, U8, F32 };  // Master: the master's dtype (fp32; bf16 in bf16-pure)
  const char* name;    // checkpoint tensor "<unit>/<name>"
  Dtype dtype;
  int64_t block;       // elements per entry: 1 (per element) or kQuantBlock (per block)
  int64_t entries(int64_t elements) const { return (elements + block - 1) / block; }
  int entry_bytes(Precision p) const {
    return dtype == Dtype::U8 ? 1 : dtype == Dtype::F32 ? 4 : (p == Precision::Bf16Pure ? 2 : 4);
  }
};

// The states of `o`, in the order checkpoints write them.
const std::vector<OptimizerState>& optimizer_states(OptimizerKind o);
// The position of state `name` in optimizer_states(o), or -1 when `o` has no such state.
int optimizer_state_index(OptimizerKind o, const std::string& name);
// Bytes of `o`'s states over `elements` consecutive elements that start on a block boundary.
uint64_t optimizer_state_bytes(OptimizerKind o, Precision p, int64_t elements);
// Elements a rank's shard of a unit is a multiple of: kQuantBlock for adamw-8bit, else 1.
int64_t shard_alignment(OptimizerKind o);
// S: a rank's elements of a unit of `numel` over `n` ranks, ceil(numel / n) rounded up to
// `alignment` when n > 1 (one rank holds the unit as it is). The unit's flat buffer is padded to n x S.
int64_t shard_size(int64_t numel, int n, int64_t alignment);

}  // namespace ftdist::plan
