#include "ftdist/data/token_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <utility>
#include <vector>

#include "ftdist/core/check.h"
#include "ftdist/core/suggest.h"
#include "ftdist/core/mapped_file.h"
#include "ftdist/core/text_file.h"

namespace ftdist::data {
namespace {

// The file is little-endian and read in place: uint32 tokens and uint64 offsets are used as they lie.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the .ftok reader maps little-endian data in place");

constexpr char kMagic[8] = {'F', 'T', 'D', 'T', 'O', 'K', '0', '1'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeader = 40;
constexpr uint64_t kMaxCount = 1ull << 40;

template <typename T>
T load(const uint8_t* at) {
  T v;
  std::memcpy(&v, at, sizeof(T));
  return v;
}

template <typename T>
void store(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

// Maps `path` read-only; returns its size (0: nothing mapped).
size_t map_file(const std::string& path, void** map) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  FT_CHECK_ARG(fd >= 0, path << ": cannot read (" << std::strerror(errno) << ")");
  struct stat st {};
  const bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  const size_t size = regular ? size_t(st.st_size) : 0;
  *map = size >= kHeader ? ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0) : nullptr;
  const int err = errno;
  ::close(fd);
  FT_CHECK_ARG(regular, path << ": cannot read (not a regular file)");
  FT_CHECK_ARG(*map != MAP_FAILED, path << ": cannot map the file into memory (" << std::strerror(err) << ")");
  register_mapped_file(*map, size, path);  // truncated while mapped: a message naming it, not a silent SIGBUS
  return size;
}

}  // namespace

// ---- TokenFile ------------------------------------------------------------------------------------

TokenFile::TokenFile(const std::string& path, int64_t vocab) : path_(path) {
  map_bytes_ = map_file(path, &map_);
  try {
    const auto* base = static_cast<const uint8_t*>(map_);
    FT_CHECK_ARG(base != nullptr && std::memcmp(base, kMagic, 8) == 0,
                 path << ": not an ftdist token file (bad magic or shorter than the " << kHeader << "-byte header)");
    FT_CHECK_ARG(load<uint32_t>(base + 8) == kVersion, path << ": token file version " << load<uint32_t>(base + 8)
                                                            << " is not supported (expected " << kVersion << ")");
    vocab_ = load<uint32_t>(base + 12);
    const uint64_t n_docs = load<uint64_t>(base + 16), n_tokens = load<uint64_t>(base + 24);
    const uint32_t flags = load<uint32_t>(base + 32), reserved = load<uint32_t>(base + 36);
    const bool masked = (flags & 1u) != 0;
    FT_CHECK_ARG(flags <= 1u && reserved == 0, path << ": header flags " << flags << " and reserved field " << reserved
                                                    << " are not this version's (flags 0 or 1, reserved 0): corrupt");
    FT_CHECK_ARG(vocab_ > 0, path << ": the header's vocabulary size is 0: corrupt");
    FT_CHECK_ARG(vocab_ <= vocab, path << ": written for a vocabulary of " << vocab_ << ", the model has " << vocab);
    FT_CHECK_ARG(n_docs < kMaxCount && n_tokens < kMaxCount,
                 path << ": the header describes " << n_docs << " documents and " << n_tokens << " tokens: corrupt");
    const uint64_t want = kHeader + 8 * (n_docs + 1) + 4 * n_tokens + (masked ? n_tokens : 0);
    FT_CHECK_ARG(map_bytes_ == want,
                 path << ": the header describes " << n_docs << " documents and " << n_tokens << " tokens (" << want
                      << " bytes) but the file has " << map_bytes_ << " bytes (truncated or corrupt)");
    docs_ = int64_t(n_docs), tokens_ = int64_t(n_tokens);
    offsets_ = reinterpret_cast<const uint64_t*>(base + kHeader);
    tokens_ptr_ = reinterpret_cast<const uint32_t*>(base + kHeader + 8 * (n_docs + 1));
    mask_ = masked ? reinterpret_cast<const uint8_t*>(tokens_ptr_ + n_tokens) : nullptr;
    validate_offsets();
  } catch (...) {
    unmap();
    throw;
  }
}

void TokenFile::validate_offsets() const {
  uint64_t prev = offsets_[0];
  FT_CHECK_ARG(prev == 0, path_ << ": the first document offset must be 0");
  for (int64_t d = 0; d < docs_; ++d) {
    const uint64_t end = offsets_[d + 1];
    FT_CHECK_ARG(end >= prev && end <= uint64_t(tokens_), path_ << ": document " << d << " has offsets " << prev << ".."
                                                                << end << " outside the " << tokens_ << " tokens");
    FT_CHECK_ARG(end > prev, path_ << ": document " << d << " is empty");
    prev = end;
  }
  FT_CHECK_ARG(prev == uint64_t(tokens_), path_ << ": the last document offset must be the token count " << tokens_);
  FT_CHECK_ARG(docs_ > 0, path_ << ": no documents");
}

TokenFile::~TokenFile() { unmap(); }

TokenFile::TokenFile(TokenFile&& other) noexcept { *this = std::move(other); }

TokenFile& TokenFile::operator=(TokenFile&& other) noexcept {
  if (this != &other) {
    unmap();
    path_ = std::move(other.path_);
    map_ = std::exchange(other.map_, nullptr);
    map_bytes_ = std::exchange(other.map_bytes_, 0);
    vocab_ = std::exchange(other.vocab_, 0);
    docs_ = std::exchange(other.docs_, 0);
    tokens_ = std::exchange(other.tokens_, 0);
    offsets_ = std::exchange(other.offsets_, nullptr);
    tokens_ptr_ = std::exchange(other.tokens_ptr_, nullptr);
    mask_ = std::exchange(other.mask_, nullptr);
  }
  return *this;
}

void TokenFile::unmap() noexcept {
  if (map_ != nullptr) {
    unregister_mapped_file(map_);
    ::munmap(map_, map_bytes_);
  }
  map_ = nullptr;
}

int64_t TokenFile::doc_of(int64_t t) const {
  return int64_t(std::upper_bound(offsets_, offsets_ + docs_ + 1, uint64_t(t)) - offsets_) - 1;
}

int64_t TokenFile::first_token_out_of_vocab(int64_t begin, int64_t end) const {
  FT_CHECK(0 <= begin && begin <= end && end <= tokens_, ErrorKind::Internal,
           path_ << ": token range [" << begin << ", " << end << ") outside [0, " << tokens_ << ")");
  const uint32_t limit = uint32_t(vocab_);
  // The scan must not leave the file resident: each 16 MiB leaves the mapping once scanned, and the
  // pages it brought into the page cache leave that too (read sequentially, the kernel caches a file
  // in large folios, and a sample read later would then map a whole folio, up to 2 MiB, per fault);
  // what was cached before the scan stays.
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);  // (for posix_fadvise; -1: skip that)
  const auto [range_first, range_bytes] = page_range(tokens_ptr_ + begin, tokens_ptr_ + end);
  const std::vector<bool> cached = fd >= 0 ? cached_pages(fd, range_first, range_bytes) : std::vector<bool>();
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  constexpr int64_t kChunk = int64_t(1) << 22;
  int64_t found = -1;
  for (int64_t c = begin; c < end && found < 0; c += kChunk) {
    const int64_t stop = std::min(end, c + kChunk);
    uint32_t top = 0;  // the chunk's largest id first (a loop that vectorizes), then where
    for (int64_t t = c; t < stop; ++t) top = std::max(top, tokens_ptr_[t]);
    if (top >= limit)
      for (int64_t t = c; t < stop && found < 0; ++t)
        if (tokens_ptr_[t] >= limit) found = t;
    const auto [first, bytes] = page_range(tokens_ptr_ + c, tokens_ptr_ + stop);
    ::madvise(reinterpret_cast<void*>(first), bytes, MADV_DONTNEED);
    if (fd < 0) continue;
    // each run of pages that were not cached before the scan, out of the page cache
    const size_t p0 = (first - range_first) / page, p1 = p0 + (bytes + page - 1) / page;
    for (size_t p = p0; p < p1;) {
      size_t q = p;
      while (q < p1 && !cached[q]) ++q;
      if (q > p) ::posix_fadvise(fd, off_t(range_first + p * page - uintptr_t(map_)), off_t((q - p) * page), POSIX_FADV_DONTNEED);
      p = q + 1;
    }
  }
  if (fd >= 0) ::close(fd);
  return found;
}

int64_t TokenFile::trained_targets(int64_t begin, int64_t end) const {
  FT_CHECK(0 <= begin && begin <= end && end <= tokens_, ErrorKind::Internal,
           path_ << ": token range [" << begin << ", " << end << ") outside [0, " << tokens_ << ")");
  if (begin == end) return 0;
  int64_t n = end - begin;
  if (mask_ != nullptr) {
    n = 0;
    uint8_t top = 0;
    for (int64_t t = begin; t < end; ++t) {
      n += mask_[t] != 0;
      top = std::max(top, mask_[t]);
    }
    if (top > 1) {
      const int64_t t = std::find_if(mask_ + begin, mask_ + end, [](uint8_t m) { return m > 1; }) - mask_;
      const int64_t d = doc_of(t);
      FT_CHECK_ARG(false, path_ << ": document " << d << ", token " << t - doc_begin(d) << ": the loss mask byte is "
                                << int(mask_[t]) << " (0 or 1 expected): corrupt");
    }
    const auto [first, bytes] = page_range(mask_ + begin, mask_ + end);
    ::madvise(reinterpret_cast<void*>(first), bytes, MADV_DONTNEED);
  }
  for (int64_t d = doc_of(begin); d < docs_ && doc_begin(d) < end; ++d)  // the documents' first tokens
    if (doc_begin(d) >= begin && doc_size(d) > 0 && (mask_ == nullptr || mask_[doc_begin(d)] != 0)) --n;
  return n;
}

std::pair<uintptr_t, size_t> TokenFile::page_range(const void* from, const void* to) const {
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  const uintptr_t first = uintptr_t(from) / page * page, last = (uintptr_t(to) + page - 1) / page * page;
  return {first, size_t(std::min(last, uintptr_t(map_) + map_bytes_) - first)};
}

std::vector<bool> TokenFile::cached_pages(int fd, uintptr_t first, size_t bytes) const {
  const size_t page = size_t(::sysconf(_SC_PAGESIZE));
  std::vector<bool> cached((bytes + page - 1) / page, false);
  // mincore tells the truth about a file's pages only to its owner or a process that may write it
  // (for anyone else it says every page is cached): where it may not, none counts as cached.
  struct stat st {};
  if (::fstat(fd, &st) != 0 || (st.st_uid != ::geteuid() && ::access(path_.c_str(), W_OK) != 0)) return cached;
  std::vector<unsigned char> resident(cached.size());
  if (bytes == 0 || ::mincore(reinterpret_cast<void*>(first), bytes, resident.data()) != 0) return cached;
  for (size_t i = 0; i < cached.size(); ++i) cached[i] = (resident[i] & 1) != 0;
  return cached;
}

void TokenFile::token_out_of_vocab(int64_t t, int64_t d) const {
  FT_CHECK_ARG(false, path_ << ": token " << tokens_ptr_[t] << " (document " << d << ") at position "
                            << t - doc_begin(d) << " of the document is outside the vocabulary [0, " << vocab_ << ")");
  std::abort();  // not reached
}

void TokenFile::release_pages() const {
  if (map_ != nullptr) ::madvise(map_, map_bytes_, MADV_DONTNEED);
}

// ---- TokenFileWriter ------------------------------------------------------------------------------

namespace {

std::FILE* open_for_writing(const std::string& path, const std::string& file) {
  std::FILE* f = std::fopen(file.c_str(), "wb");
  FT_CHECK_ARG(f != nullptr, path << ": cannot write '" << file << "' (" << std::strerror(errno) << ")");
  return f;
}

void write_bytes(std::FILE* f, const void* data, size_t bytes, const std::string& path) {
  FT_CHECK_ARG(bytes == 0 || std::fwrite(data, 1, bytes, f) == bytes,
               path << ": write failed (" << std::strerror(errno) << ")");
}

// Closes `*f` (null afterwards), reporting a failed flush: the last buffered bytes are written here.
void close_checked(std::FILE** f, const std::string& path) {
  const bool ok = std::fflush(*f) == 0;
  const int err = errno;
  std::fclose(*f);
  *f = nullptr;
  FT_CHECK_ARG(ok, path << ": write failed (" << std::strerror(err) << ")");
}

void append_file(std::FILE* out, const std::string& from, const std::string& path, const std::function<void()>& tick) {
  std::FILE* in = std::fopen(from.c_str(), "rb");
  FT_CHECK_ARG(in != nullptr, path << ": cannot read back '" << from << "' (" << std::strerror(errno) << ")");
  std::vector<char> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), in)) > 0) {
    if (std::fwrite(buf.data(), 1, n, out) != n) break;
    if (tick) tick();
  }
  const bool ok = !std::ferror(in) && !std::ferror(out);
  std::fclose(in);
  FT_CHECK_ARG(ok, path << ": copying '" << from << "' failed (" << std::strerror(errno) << ")");
}

}  // namespace

TokenFileWriter::TokenFileWriter(const std::string& path, int64_t vocab) : path_(path), vocab_(vocab) {
  FT_CHECK_ARG(vocab > 0 && vocab <= int64_t(UINT32_MAX),
               path << ": vocabulary size " << vocab << " does not fit uint32");
  lock_ = std::make_unique<OutputLock>(path_, path_);  // (before any temporary: another writer's are not ours)
  try {
    tokens_ = open_for_writing(path_, path_ + ".tmp-tokens");
    mask_ = open_for_writing(path_, path_ + ".tmp-mask");
  } catch (...) {
    remove_temporaries();
    throw;
  }
}

TokenFileWriter::~TokenFileWriter() {
  if (!finished_) remove_temporaries();
}

void TokenFileWriter::remove_temporaries() noexcept {
  for (std::FILE** f : {&tokens_, &mask_})
    if (*f != nullptr) std::fclose(std::exchange(*f, nullptr));
  for (const char* suffix : {".tmp-tokens", ".tmp-mask", ".tmp"}) std::remove((path_ + suffix).c_str());
}

void TokenFileWriter::add(const Document& d, const std::string& source) {
  FT_CHECK(!finished_, ErrorKind::Internal, path_ << ": add() after finish()");
  const std::string& from = source.empty() ? path_ : source;
  FT_CHECK_ARG(d.labels.size() == d.ids.size(), from << ":" << d.line << ": the document has " << d.labels.size()
                                                     << " labels for " << d.ids.size() << " ids");
  FT_CHECK_ARG(!d.ids.empty(), from << ":" << d.line << ": the document is empty");
  const size_t n = d.ids.size();
  buf_.resize(4 * n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t t = d.ids[i];
    FT_CHECK_ARG(t >= 0 && t < vocab_, from << ":" << d.line << ": token " << t << " is outside the vocabulary [0, "
                                            << vocab_ << ")");
    FT_CHECK_ARG(d.labels[i] == t || d.labels[i] == -100,
                 from << ":" << d.line << ": \"labels\" differ from \"input_ids\" at position " << i << " (label "
                      << d.labels[i] << ", id " << t << "); a token file stores only a loss mask, so each label must be "
                      << "its id or -100 (labels are not shifted: the trainer shifts them)");
    const uint32_t v = uint32_t(t);
    std::memcpy(buf_.data() + 4 * i, &v, 4);
  }
  write_bytes(tokens_, buf_.data(), buf_.size(), path_);
  const bool has_masked = std::find(d.labels.begin(), d.labels.end(), -100) != d.labels.end();
  if (has_masked && !masked_) {  // the first masked token: every earlier token was predicted
    masked_ = true;
    const std::vector<char> ones(1 << 16, 1);
    for (uint64_t left = offsets_.back(); left > 0; left -= std::min<uint64_t>(left, ones.size()))
      write_bytes(mask_, ones.data(), std::min<uint64_t>(left, ones.size()), path_);
  }
  if (masked_) {
    buf_.resize(n);
    for (size_t i = 0; i < n; ++i) buf_[i] = d.labels[i] == -100 ? 0 : 1;
    write_bytes(mask_, buf_.data(), n, path_);
  }
  offsets_.push_back(offsets_.back() + n);
}

void TokenFileWriter::finish(const std::function<void()>& tick) {
  FT_CHECK(!finished_, ErrorKind::Internal, path_ << ": finish() called twice");
  assemble(tick);
  const std::string tmp = path_ + ".tmp";
  FT_CHECK_ARG(std::rename(tmp.c_str(), path_.c_str()) == 0,
               path_ << ": cannot rename the temporary file into place (" << std::strerror(errno) << ")");
  finished_ = true;
  remove_temporaries();
  fsync_directory(directory_of(path_), path_);
}

// <path>.tmp = header + offsets + tokens (+ mask), flushed to disk.
void TokenFileWriter::assemble(const std::function<void()>& tick) {
  close_checked(&tokens_, path_);
  close_checked(&mask_, path_);
  std::string head(kMagic, 8);
  store<uint32_t>(head, kVersion);
  store<uint32_t>(head, uint32_t(vocab_));
  store<uint64_t>(head, uint64_t(num_documents()));
  store<uint64_t>(head, uint64_t(num_tokens()));
  store<uint32_t>(head, masked_ ? 1u : 0u);
  store<uint32_t>(head, 0u);
  std::FILE* out = open_for_writing(path_, path_ + ".tmp");
  try {
    write_bytes(out, head.data(), head.size(), path_);
    write_bytes(out, offsets_.data(), 8 * offsets_.size(), path_);
    append_file(out, path_ + ".tmp-tokens", path_, tick);
    if (masked_) append_file(out, path_ + ".tmp-mask", path_, tick);
    FT_CHECK_ARG(std::fflush(out) == 0 && ::fsync(fileno(out)) == 0,
                 path_ << ": write failed (" << std::strerror(errno) << ")");
  } catch (...) {
    std::fclose(out);
    throw;
  }
  close_checked(&out, path_);
}

// ---- whole-file helpers ---------------------------------------------------------------------------

void write_token_file(const std::string& path, const std::vector<Document>& docs, int64_t vocab) {
  TokenFileWriter writer(path, vocab);
  for (const Document& d : docs) writer.add(d);
  writer.finish();
}

std::vector<Document> read_token_file(const std::string& path, int64_t vocab) {
  const TokenFile file(path, vocab);
  std::vector<Document> docs(size_t(file.num_documents()));
  for (int64_t d = 0; d < file.num_documents(); ++d) {
    Document& doc = docs[size_t(d)];
    doc.line = d + 1;
    for (int64_t t = file.doc_begin(d); t < file.doc_begin(d + 1); ++t) {
      file.check_token(t, d);
      const int64_t id = file.tokens()[t];
      doc.ids.push_back(id);
      doc.labels.push_back(file.masked() && file.mask()[t] == 0 ? -100 : id);
    }
  }
  return docs;
}

bool is_token_file_path(const std::string& path) { return ends_with(to_lower(path), ".ftok"); }

std::vector<Document> read_documents(const std::string& path, int64_t vocab, const std::string& what,
                                     const Tokenizer* tokenizer) {
  return is_token_file_path(path) ? read_token_file(path, vocab) : read_jsonl(path, vocab, what, tokenizer);
}

}  // namespace ftdist::data
