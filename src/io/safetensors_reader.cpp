#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>

#include "ftdist/core/json.h"
#include "ftdist/core/check.h"
#include "ftdist/core/mapped_file.h"
#include "ftdist/io/safetensors.h"

namespace ftdist::io {

namespace {
constexpr uint64_t kMaxHeader = 100ull << 20;  // the format's own limit is 100 MB
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

at::ScalarType safetensors_dtype(const std::string& n, const std::string& where) {
  if (n == "F64") return at::kDouble;
  if (n == "F32") return at::kFloat;
  if (n == "F16") return at::kHalf;
  if (n == "BF16") return at::kBFloat16;
  if (n == "I64") return at::kLong;
  if (n == "I32") return at::kInt;
  if (n == "I16") return at::kShort;
  if (n == "I8") return at::kChar;
  if (n == "U8") return at::kByte;
  if (n == "BOOL") return at::kBool;
  FT_CHECK_ARG(false, where << ": unsupported dtype \"" << n << "\" (F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
  return at::kFloat;
}

std::string safetensors_dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kDouble: return "F64";
    case at::kFloat: return "F32";
    case at::kHalf: return "F16";
    case at::kBFloat16: return "BF16";
    case at::kLong: return "I64";
    case at::kInt: return "I32";
    case at::kShort: return "I16";
    case at::kChar: return "I8";
    case at::kByte: return "U8";
    case at::kBool: return "BOOL";
    default: FT_CHECK_ARG(false, "safetensors cannot store dtype " << c10::toString(t));
  }
  return "";
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  FT_CHECK_ARG(fd_ >= 0, path << ": cannot open (" << std::strerror(errno) << ")");
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd_);
    fd_ = -1;
    FT_CHECK_ARG(false, path << ": not a regular file");
  }
  size_ = static_cast<uint64_t>(st.st_size);
  try {
    FT_CHECK_ARG(size_ >= 8, path << ": truncated safetensors file (" << size_ << " bytes, the header length alone is 8)");
    void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    FT_CHECK_ARG(m != MAP_FAILED, path << ": cannot mmap (" << std::strerror(errno) << ")");
    map_ = static_cast<const uint8_t*>(m);
    register_mapped_file(map_, size_, path);  // truncated while mapped: a message naming it, not a silent SIGBUS
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | map_[i];  // little endian
    parse_header(header_len);
  } catch (...) {
    if (map_) {
      unregister_mapped_file(map_);
      ::munmap(const_cast<uint8_t*>(map_), size_);
    }
    ::close(fd_);
    map_ = nullptr;
    fd_ = -1;
    throw;
  }
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept
    : path_(std::move(o.path_)), fd_(o.fd_), map_(o.map_), size_(o.size_), data_(o.data_), data_size_(o.data_size_),
      tensors_(std::move(o.tensors_)), index_(std::move(o.index_)), metadata_(std::move(o.metadata_)) {
  o.fd_ = -1;
  o.map_ = nullptr;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) {
    unregister_mapped_file(map_);
    ::munmap(const_cast<uint8_t*>(map_), size_);
  }
  if (fd_ >= 0) ::close(fd_);
}

void SafetensorsFile::parse_header(uint64_t header_len) {
  FT_CHECK_ARG(header_len <= kMaxHeader, path_ << ": header length " << header_len << " is not sane (limit "
                                               << kMaxHeader << "); not a safetensors file?");
  FT_CHECK_ARG(header_len <= size_ - 8, path_ << ": truncated: the header says " << header_len << " bytes, the file has "
                                              << size_ - 8 << " after the length");
  data_ = map_ + 8 + header_len;
  data_size_ = size_ - 8 - header_len;
  const nlohmann::json h = parse_json(reinterpret_cast<const char*>(map_ + 8), reinterpret_cast<const char*>(map_ + 8 + header_len), path_ + ": the header");
  FT_CHECK_ARG(h.is_object(), path_ << ": the header must be a JSON object");
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const std::string where = path_ + ": tensor \"" + name + "\"";
    if (name == "__metadata__") {
      FT_CHECK_ARG(it->is_object(), path_ << ": __metadata__ must be an object of strings");
      for (auto m = it->begin(); m != it->end(); ++m) {
        FT_CHECK_ARG(m->is_string(), path_ << ": __metadata__[\"" << m.key() << "\"] must be a string");
        metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    FT_CHECK_ARG(it->is_object() && it->contains("dtype") && it->contains("shape") && it->contains("data_offsets"),
                 where << ": expected {\"dtype\", \"shape\", \"data_offsets\"}");
    const auto& jd = it->at("dtype");
    const auto& js = it->at("shape");
    const auto& jo = it->at("data_offsets");
    FT_CHECK_ARG(jd.is_string(), where << ": dtype must be a string");
    FT_CHECK_ARG(js.is_array(), where << ": shape must be an array");
    FT_CHECK_ARG(jo.is_array() && jo.size() == 2 && jo[0].is_number_unsigned() && jo[1].is_number_unsigned(),
                 where << ": data_offsets must be [begin, end]");
    TensorInfo t;
    t.name = name;
    t.dtype = safetensors_dtype(jd.get<std::string>(), where);
    for (const auto& d : js) {
      FT_CHECK_ARG(d.is_number_unsigned() && d.get<uint64_t>() <= uint64_t(INT64_MAX),
                   where << ": shape entries must be non-negative integers below 2^63");
      t.shape.push_back(d.get<int64_t>());
    }
    // The element count times the element size, refused where it would wrap in 64 bits (a wrapped
    // product could match data_offsets).
    const bool empty = std::find(t.shape.begin(), t.shape.end(), 0) != t.shape.end();
    uint64_t want = empty ? 0 : c10::elementSize(t.dtype);
    for (int64_t d : t.shape) {
      FT_CHECK_ARG(empty || want <= UINT64_MAX / uint64_t(d),
                   where << ": shape " << c10::IntArrayRef(t.shape) << " of " << jd.get<std::string>()
                         << " holds 2^64 bytes or more");
      want *= uint64_t(d);
    }
    t.begin = jo[0].get<uint64_t>();
    t.end = jo[1].get<uint64_t>();
    FT_CHECK_ARG(t.begin <= t.end, where << ": data_offsets begin " << t.begin << " > end " << t.end);
    FT_CHECK_ARG(t.end <= data_size_, where << ": data_offsets end " << t.end << " is past the data ("
                                            << data_size_ << " bytes): truncated file?");
    FT_CHECK_ARG(t.end - t.begin == want, where << ": " << jd.get<std::string>() << " x shape holds " << want
                                                << " bytes but data_offsets span " << t.end - t.begin);
    index_[name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
  // Non-overlapping, and the data section is entirely indexed (no holes), as the format requires.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t pos = 0;
  for (const TensorInfo* t : by_offset) {
    FT_CHECK_ARG(t->begin >= pos, path_ << ": tensor \"" << t->name << "\" overlaps the previous tensor (offset "
                                        << t->begin << " < " << pos << ")");
    FT_CHECK_ARG(t->begin == pos, path_ << ": a hole in the data before tensor \"" << t->name << "\" (bytes " << pos
                                        << ".." << t->begin << " belong to no tensor)");
    pos = t->end;
  }
  FT_CHECK_ARG(pos == data_size_, path_ << ": " << data_size_ - pos << " trailing bytes after the last tensor");
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  FT_CHECK_ARG(it != index_.end(), path_ << ": no tensor named \"" << name << "\"");
  return tensors_[it->second];
}

void SafetensorsFile::read_range(const std::string& name, int64_t first, int64_t count, const at::Tensor& out) const {
  const TensorInfo& t = info(name);
  FT_CHECK_ARG(first >= 0 && count >= 0 && first + count <= t.numel(),
               path_ << ": range [" << first << ", " << first + count << ") is outside tensor \"" << name << "\" of "
                     << t.numel() << " elements");
  FT_CHECK_ARG(out.is_contiguous() && out.numel() == count,
               "read_range: the output must be contiguous with " << count << " elements, got " << out.numel());
  if (count == 0) return;
  const size_t elem = c10::elementSize(t.dtype);
  void* src = const_cast<uint8_t*>(data_ + t.begin + uint64_t(first) * elem);
  // A view of the mapped bytes (never written): copy_ converts dtype and moves it to out's device.
  at::Tensor view = at::from_blob(src, {count}, at::TensorOptions().dtype(t.dtype));
  out.view({count}).copy_(view);
}

at::Tensor SafetensorsFile::read(const std::string& name) const {
  const TensorInfo& t = info(name);
  at::Tensor out = at::empty(t.shape, at::TensorOptions().dtype(t.dtype));
  read_range(name, 0, t.numel(), out);
  return out;
}

void SafetensorsFile::release_pages() const {
  if (map_) ::madvise(const_cast<uint8_t*>(map_), size_, MADV_DONTNEED);
}

}  // namespace ftdist::io
