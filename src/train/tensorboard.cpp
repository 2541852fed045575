// TensorBoard event files: TFRecord framing with masked CRC32C, Event protobufs encoded by hand.
#include "ftdist/train/tensorboard.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>

#include "ftdist/core/check.h"
#include "ftdist/core/text_file.h"

namespace ftdist::train {
namespace {

std::array<uint32_t, 256> crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;  // reflected Castagnoli polynomial
    t[i] = c;
  }
  return t;
}

// Protobuf wire format: varints, tags, length-delimited fields, fixed 32/64-bit fields (little-endian).
void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += char(uint8_t(v) | 0x80);
    v >>= 7;
  }
  out += char(uint8_t(v));
}
void tag(std::string& out, int field, int wire) { varint(out, uint64_t(field) << 3 | uint64_t(wire)); }
void bytes_field(std::string& out, int field, const std::string& value) {
  tag(out, field, 2);
  varint(out, value.size());
  out += value;
}
template <typename T>
void fixed_field(std::string& out, int field, T value) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "fixed32 or fixed64");
  tag(out, field, sizeof(T) == 8 ? 1 : 5);
  char b[sizeof(T)];
  std::memcpy(b, &value, sizeof(T));  // little-endian hosts (x86-64, aarch64)
  out.append(b, sizeof(T));
}

std::string event(int64_t step) {
  std::string e;
  fixed_field(e, 1, std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  tag(e, 2, 0);
  varint(e, uint64_t(step));
  return e;
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  static const std::array<uint32_t, 256> table = crc_table();
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  make_directories(dir, "output.tensorboard");
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  path_ = dir + "/events.out.tfevents." + std::to_string(secs) + "." + host_name();
  out_.open(path_, std::ios::binary | std::ios::app);
  FT_CHECK_ARG(out_.good(), "output.tensorboard: cannot write '" << path_ << "'");
  std::string first = event(0);
  bytes_field(first, 3, "brain.Event:2");
  record(first);
}

void TensorBoardWriter::scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  std::string summary;
  for (const auto& [name, v] : values) {
    std::string value;
    bytes_field(value, 1, name);
    fixed_field(value, 2, float(v));
    bytes_field(summary, 1, value);
  }
  std::string e = event(step);
  bytes_field(e, 5, summary);
  record(e);
}

void TensorBoardWriter::record(const std::string& payload) {
  const uint64_t len = payload.size();
  char header[8];
  std::memcpy(header, &len, 8);
  const uint32_t len_crc = masked_crc32c(header, 8), data_crc = masked_crc32c(payload.data(), payload.size());
  out_.write(header, 8);
  out_.write(reinterpret_cast<const char*>(&len_crc), 4);
  out_.write(payload.data(), std::streamsize(payload.size()));
  out_.write(reinterpret_cast<const char*>(&data_crc), 4);
  out_.flush();
  FT_CHECK_ARG(out_.good(), "output.tensorboard: writing '" << path_ << "' failed (disk full?)");
}

}  // namespace ftdist::train
