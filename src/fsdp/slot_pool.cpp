#include "slot_pool.h"

#include <algorithm>

#include "ftdist/core/check.h"

namespace ftdist::fsdp {

SlotPool::SlotPool(std::string name, int count, int64_t bytes, at::Device device) : name_(std::move(name)), bytes_(bytes) {
  FT_CHECK(count >= 0 && bytes >= 0, ErrorKind::Internal, "slot pool " << name_ << ": " << count << " slots of " << bytes << " bytes");
  for (int i = 0; i < count; ++i) slots_.push_back(at::empty({bytes}, at::TensorOptions().dtype(at::kByte).device(device)));
  taken_.assign(size_t(count), false);
}

int SlotPool::acquire(int64_t bytes) {
  auto it = std::find(taken_.begin(), taken_.end(), false);
  if (it == taken_.end() || bytes > bytes_) {
    ++overflows_;
    return -1;
  }
  *it = true;
  return int(it - taken_.begin());
}

void SlotPool::release(int slot) {
  FT_CHECK(slot >= 0 && slot < count() && taken_[size_t(slot)], ErrorKind::Internal,
           "slot pool " << name_ << ": releasing slot " << slot << ", which is not taken");
  taken_[size_t(slot)] = false;
}

}  // namespace ftdist::fsdp
