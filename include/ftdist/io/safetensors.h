// safetensors: a reader over mmap that validates the whole header before anything is read, and a
// streaming writer. Format: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..}},
// then the data; offsets are relative to the end of the header.
//
//   SafetensorsFile f("model.safetensors");                   // throws Error(BadInput) on a bad file
//   f.read_range("lm_head.weight", first, count, out);        // elements [first, first+count), converted
//   SafetensorsWriter w("out.safetensors", {{"w", at::kBFloat16, {4, 8}}}, {{"format", "pt"}});
//   w.write("w", tensor); w.finish();                          // atomic: temp file, fsync, rename
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ftdist::io {

struct TensorInfo {
  std::string name;
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data section
  uint64_t end = 0;
  int64_t numel() const;
};

// "F32" <-> at::kFloat etc. Supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL.
at::ScalarType safetensors_dtype(const std::string& name, const std::string& where);
std::string safetensors_dtype_name(at::ScalarType type);

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;  // Error(BadInput) naming file and tensor

  // Copies elements [first, first + count) of `name` (row-major) into `out` (contiguous, `count`
  // elements, any dtype: converted). Touches only those bytes of the file.
  void read_range(const std::string& name, int64_t first, int64_t count, const at::Tensor& out) const;
  // The whole tensor, in its stored dtype, as a CPU tensor that owns its memory.
  at::Tensor read(const std::string& name) const;
  // Drops the mapped pages read so far from the process's resident memory (they stay in the page
  // cache); reads afterwards fault them in again.
  void release_pages() const;

 private:
  void parse_header(uint64_t header_len);
  std::string path_;
  int fd_ = -1;
  const uint8_t* map_ = nullptr;
  uint64_t size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data section
  uint64_t data_size_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

class SafetensorsWriter {
 public:
  struct Entry {
    std::string name;
    at::ScalarType dtype;
    std::vector<int64_t> shape;
  };
  // Writes the header into `path`.tmp at once; tensors must then be written in the order given.
  SafetensorsWriter(const std::string& path, std::vector<Entry> entries,
                    const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsWriter();  // without finish(): removes the temporary file (no half-written output)
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // The next tensor, in declaration order; converted to the declared dtype; any device.
  void write(const std::string& name, const at::Tensor& tensor);
  // The next elements of tensor `name` (row-major), so that a tensor can be written in pieces that
  // are converted one at a time; the tensor is complete once all its elements are written.
  void write_part(const std::string& name, const at::Tensor& piece);
  void finish();  // checks every tensor was written, fsyncs, renames into place

 private:
  std::string path_, tmp_;
  std::vector<Entry> entries_;
  size_t next_ = 0;
  int64_t part_ = 0;  // elements of entries_[next_] written so far
  std::FILE* file_ = nullptr;
  bool finished_ = false;
};

// Convenience: all tensors at once, in the order given.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace ftdist::io
