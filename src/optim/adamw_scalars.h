// The per-step scalars of AdamW and 8-bit AdamW: computed in double and rounded once to float (as
// torch::optim::AdamW's Scalars are). Private to optim/.
#pragma once

#include <cmath>
#include <cstdint>

#include "ftdist/optim/optimizer.h"

namespace ftdist::optim {

struct AdamWScalars {
  float decay, beta1, omb1, beta2, omb2, bc2_sqrt, step_size, eps;
};

inline AdamWScalars adamw_scalars(const AdamWConfig& c, double lr, int64_t step, bool decay) {
  AdamWScalars s;
  s.decay = float(decay ? 1.0 - lr * c.weight_decay : 1.0);
  s.beta1 = float(c.beta1);
  s.omb1 = float(1.0 - c.beta1);
  s.beta2 = float(c.beta2);
  s.omb2 = float(1.0 - c.beta2);
  s.bc2_sqrt = float(std::sqrt(1.0 - std::pow(c.beta2, double(step))));
  s.step_size = float(lr / (1.0 - std::pow(c.beta1, double(step))));
  s.eps = float(c.eps);
  return s;
}

void check_adamw_config(const AdamWConfig& c);  // Error(BadInput) naming the bad hyperparameter

}  // namespace ftdist::optim
