// Learning-rate schedules: pure functions of the step, so resuming needs only the step.
//   LrSchedule s{LrSchedule::Kind::Cosine, 3e-4, /*warmup*/ 100, /*total*/ 1000, /*min*/ 3e-5};
//   s.lr_at(1) == 3e-6;  s.lr_at(100) == 3e-4;  s.lr_at(1000) == 3e-5
#pragma once

#include <cstdint>
#include <string>

namespace ftdist::optim {

struct LrSchedule {
  enum class Kind { Constant, Cosine, Linear };
  Kind kind = Kind::Constant;
  double lr = 1e-4;          // peak
  int64_t warmup_steps = 0;  // linear from lr / warmup at step 1 to lr at step warmup
  int64_t total_steps = 0;   // decay reaches min_lr here (Cosine, Linear)
  double min_lr = 0.0;

  // Steps count from 1. Constant: lr after warmup. Cosine/Linear: lr at the end of warmup down to
  // min_lr at total_steps, min_lr after.
  double lr_at(int64_t step) const;
  void validate() const;  // Error(BadInput) naming the bad field
};

LrSchedule::Kind schedule_kind_from_name(const std::string& name);  // constant | cosine | linear
const char* schedule_kind_name(LrSchedule::Kind kind);

}  // namespace ftdist::optim
