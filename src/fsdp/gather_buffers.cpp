#include "gather_buffers.h"

#include <algorithm>

#include "ftdist/core/check.h"

namespace ftdist::fsdp {

GatherBuffers::GatherBuffers(std::string name, int count, int64_t bytes, at::Device device) : name_(std::move(name)), bytes_(bytes) {
  FT_CHECK(count >= 0 && bytes >= 0, ErrorKind::Internal, "gather buffers " << name_ << ": " << count << " buffers of " << bytes << " bytes");
  for (int i = 0; i < count; ++i) buffers_.push_back(at::empty({bytes}, at::TensorOptions().dtype(at::kByte).device(device)));
  taken_.assign(size_t(count), false);
}

int GatherBuffers::acquire(int64_t bytes) {
  auto it = std::find(taken_.begin(), taken_.end(), false);
  if (it == taken_.end() || bytes > bytes_) {
    ++overflows_;
    return -1;
  }
  *it = true;
  return int(it - taken_.begin());
}

void GatherBuffers::release(int buffer) {
  FT_CHECK(buffer >= 0 && buffer < count() && taken_[size_t(buffer)], ErrorKind::Internal,
           "gather buffers " << name_ << ": releasing buffer " << buffer << ", which is not taken");
  taken_[size_t(buffer)] = false;
}

}  // namespace ftdist::fsdp
