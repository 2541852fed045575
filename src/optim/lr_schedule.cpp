#include "ftdist/optim/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "ftdist/core/check.h"

namespace ftdist::optim {

LrSchedule::Kind schedule_kind_from_name(const std::string& n) {
  if (n == "constant") return LrSchedule::Kind::Constant;
  if (n == "cosine") return LrSchedule::Kind::Cosine;
  if (n == "linear") return LrSchedule::Kind::Linear;
  FT_CHECK_ARG(false, "unknown learning-rate schedule '" << n << "' (expected constant, cosine or linear)");
  return LrSchedule::Kind::Constant;
}

const char* schedule_kind_name(LrSchedule::Kind kind) {
  switch (kind) {
    case LrSchedule::Kind::Constant: return "constant";
    case LrSchedule::Kind::Cosine: return "cosine";
    case LrSchedule::Kind::Linear: return "linear";
  }
  return "?";
}

void LrSchedule::validate() const {
  FT_CHECK_ARG(lr > 0 && std::isfinite(lr), "lr must be a positive number, got " << lr);
  FT_CHECK_ARG(min_lr >= 0 && min_lr <= lr, "min_lr must be in [0, lr], got " << min_lr);
  FT_CHECK_ARG(warmup_steps >= 0, "warmup_steps must be >= 0, got " << warmup_steps);
  if (kind != Kind::Constant)
    FT_CHECK_ARG(total_steps > warmup_steps, "total_steps (" << total_steps << ") must exceed warmup_steps ("
                                                             << warmup_steps << ") for a decaying schedule");
}

double LrSchedule::lr_at(int64_t step) const {
  FT_CHECK_ARG(step >= 1, "schedule steps count from 1, got " << step);
  if (step <= warmup_steps) return lr * double(step) / double(warmup_steps);
  if (kind == Kind::Constant) return lr;
  if (step >= total_steps) return min_lr;
  const double progress = double(step - warmup_steps) / double(total_steps - warmup_steps);
  const double shape = kind == Kind::Cosine ? 0.5 * (1.0 + std::cos(M_PI * progress)) : 1.0 - progress;
  return min_lr + (lr - min_lr) * shape;
}

}  // namespace ftdist::optim
