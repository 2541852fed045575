#include "ftdist/plan/optimizer_state.h"

#include "ftdist/core/check.h"

namespace ftdist::plan {

const std::vector<OptimizerState>& optimizer_states(OptimizerKind o) {
  using D = OptimizerState::Dtype;
  static const std::vector<OptimizerState> adamw = {{"exp_avg", D::Master, 1}, {"exp_avg_sq", D::Master, 1}};
  static const std::vector<OptimizerState> adamw8 = {{"exp_avg.q8", D::U8, 1},
                                                     {"exp_avg.absmax", D::F32, kQuantBlock},
                                                     {"exp_avg_sq.q8", D::U8, 1},
                                                     {"exp_avg_sq.absmax", D::F32, kQuantBlock}};
  static const std::vector<OptimizerState> sgd = {{"momentum", D::Master, 1}};
  switch (o) {
    case OptimizerKind::AdamW: return adamw;
    case OptimizerKind::AdamW8bit: return adamw8;
    case OptimizerKind::SgdMomentum: return sgd;
  }
  return adamw;
}

int optimizer_state_index(OptimizerKind o, const std::string& name) {
  const std::vector<OptimizerState>& states = optimizer_states(o);
  for (size_t i = 0; i < states.size(); ++i)
    if (name == states[i].name) return int(i);
  return -1;
}

uint64_t optimizer_state_bytes(OptimizerKind o, Precision p, int64_t elements) {
  uint64_t b = 0;
  for (const OptimizerState& s : optimizer_states(o)) b += uint64_t(s.entries(elements)) * uint64_t(s.entry_bytes(p));
  return b;
}

int64_t shard_alignment(OptimizerKind o) { return o == OptimizerKind::AdamW8bit ? kQuantBlock : 1; }

int64_t shard_size(int64_t numel, int n, int64_t alignment) {
  FT_CHECK_ARG(n >= 1 && alignment >= 1 && numel >= 0, "shard_size: bad arguments (" << numel << ", " << n << ", " << alignment << ")");
  const int64_t s = (numel + n - 1) / n;
  return n == 1 ? s : (s + alignment - 1) / alignment * alignment;
}

}  // namespace ftdist::plan
