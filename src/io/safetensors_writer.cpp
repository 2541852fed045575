#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "ftdist/core/check.h"
#include "ftdist/io/safetensors.h"
#include "ftdist/plan/model_spec.h"

namespace ftdist::io {

SafetensorsWriter::SafetensorsWriter(const std::string& path, std::vector<Entry> entries,
                                     const std::map<std::string, std::string>& metadata)
    : path_(path), tmp_(path + ".tmp"), entries_(std::move(entries)) {
  // Keys keep the given order (ordered_json), so offsets grow in the order tensors are written.
  nlohmann::ordered_json h;
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const Entry& e : entries_) {
    FT_CHECK_ARG(!h.contains(e.name) && e.name != "__metadata__", path << ": duplicate tensor name \"" << e.name << "\"");
    for (int64_t d : e.shape)
      FT_CHECK_ARG(d >= 0, path << ": tensor \"" << e.name << "\" has a negative dimension");
    uint64_t bytes = uint64_t(plan::shape_numel(e.shape)) * c10::elementSize(e.dtype);
    h[e.name] = {{"dtype", safetensors_dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  file_ = std::fopen(tmp_.c_str(), "wb");
  FT_CHECK_ARG(file_ != nullptr, tmp_ << ": cannot create (" << std::strerror(errno) << ")");
  uint8_t len[8];
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(n >> (8 * i));
  bool ok = std::fwrite(len, 1, 8, file_) == 8 && std::fwrite(header.data(), 1, header.size(), file_) == header.size();
  FT_CHECK_ARG(ok, tmp_ << ": write failed (" << std::strerror(errno) << ")");
}

SafetensorsWriter::~SafetensorsWriter() {
  if (file_) std::fclose(file_);
  if (!finished_) std::remove(tmp_.c_str());
}

void SafetensorsWriter::write(const std::string& name, const at::Tensor& tensor) {
  FT_CHECK_ARG(part_ == 0, path_ << ": tensor \"" << entries_[next_].name << "\" is partly written; \"" << name
                                 << "\" cannot start before it is complete");
  if (next_ < entries_.size() && entries_[next_].name == name)  // (otherwise write_part() names the problem)
    FT_CHECK_ARG(tensor.numel() == plan::shape_numel(entries_[next_].shape), path_ << ": tensor \"" << name << "\" has " << tensor.numel()
                                                                        << " elements, declared " << plan::shape_numel(entries_[next_].shape));
  write_part(name, tensor.reshape({-1}));
}

void SafetensorsWriter::write_part(const std::string& name, const at::Tensor& piece) {
  FT_CHECK_ARG(next_ < entries_.size(), path_ << ": tensor \"" << name << "\" was not declared");
  const Entry& e = entries_[next_];
  FT_CHECK_ARG(e.name == name, path_ << ": tensors must be written in declaration order: expected \"" << e.name
                                     << "\", got \"" << name << "\"");
  const int64_t numel = plan::shape_numel(e.shape);
  FT_CHECK_ARG(part_ + piece.numel() <= numel, path_ << ": tensor \"" << name << "\" gets " << part_ + piece.numel()
                                                    << " elements, declared " << numel);
  at::Tensor cpu = piece.to(at::kCPU, e.dtype).contiguous();
  size_t bytes = size_t(cpu.numel()) * cpu.element_size();
  FT_CHECK_ARG(bytes == 0 || std::fwrite(cpu.data_ptr(), 1, bytes, file_) == bytes,
               tmp_ << ": write failed (" << std::strerror(errno) << ")");
  part_ += piece.numel();
  if (part_ == numel) {
    part_ = 0;
    ++next_;
  }
}

void SafetensorsWriter::finish() {
  FT_CHECK_ARG(next_ == entries_.size(), path_ << ": " << entries_.size() - next_ << " declared tensors were not written");
  bool ok = std::fflush(file_) == 0 && ::fsync(fileno(file_)) == 0;
  ok = std::fclose(file_) == 0 && ok;
  file_ = nullptr;
  FT_CHECK_ARG(ok, tmp_ << ": flush failed (" << std::strerror(errno) << ")");
  FT_CHECK_ARG(std::rename(tmp_.c_str(), path_.c_str()) == 0,
               "cannot rename " << tmp_ << " to " << path_ << " (" << std::strerror(errno) << ")");
  finished_ = true;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<SafetensorsWriter::Entry> entries;
  for (const auto& [name, t] : tensors)
    entries.push_back({name, t.scalar_type(), std::vector<int64_t>(t.sizes().begin(), t.sizes().end())});
  SafetensorsWriter w(path, std::move(entries), metadata);
  for (const auto& [name, t] : tensors) w.write(name, t);
  w.finish();
}

}  // namespace ftdist::io
