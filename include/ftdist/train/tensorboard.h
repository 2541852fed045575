// TensorBoard event files written by the trainer (docs/training.md#tensorboard): scalars only, one
// Event record per step, readable by `tensorboard --logdir <output.dir>/tb` while the run goes.
//
// The format, written here because no maintained C++ library for it is among Debian's packages
// (the record format is small and fixed): a file "events.out.tfevents.<unix seconds>.<host>" of TFRecords — uint64 length
// (little-endian), masked CRC32C of those 8 bytes, the payload, masked CRC32C of the payload
// (mask: ((crc >> 15) | (crc << 17)) + 0xa282ead8) — whose payloads are tensorflow.Event protobufs
// (wall_time = 1: double, step = 2: int64, file_version = 3: string, summary = 5: Summary { value
// = 1: Value { tag = 1: string, simple_value = 2: float } }). The first record carries
// file_version "brain.Event:2". Each record is flushed as written, so a file cut short by a killed
// run is readable up to its last whole record.
//
//   TensorBoardWriter tb(output_dir + "/tb");
//   tb.scalars(step, {{"loss", 2.3}, {"lr", 1e-4}});
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace ftdist::train {

class TensorBoardWriter {
 public:
  // Creates `dir` and a new event file in it; Error(BadInput) naming the path when it cannot.
  explicit TensorBoardWriter(const std::string& dir);
  // One event at `step` holding every (tag, value) as a float scalar.
  void scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values);
  const std::string& path() const { return path_; }

 private:
  void record(const std::string& payload);
  std::string path_;
  std::ofstream out_;
};

// CRC-32C (Castagnoli) of `n` bytes, and the TFRecord mask of a CRC (exposed for tests).
uint32_t crc32c(const void* data, size_t n);
uint32_t masked_crc32c(const void* data, size_t n);

}  // namespace ftdist::train
