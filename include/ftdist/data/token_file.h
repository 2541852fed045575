// The packed token file (.ftok): documents of uint32 tokens with an optional per-token loss mask,
// little-endian, for data sets too big to re-tokenize at every run.
//
//   offset  size            field
//   0       8               magic "FTDTOK01"
//   8       4               version (1)
//   12      4               vocabulary size (every token is below it)
//   16      8               number of documents D
//   24      8               number of tokens T
//   32      4               flags: bit 0 = a loss mask follows the tokens
//   36      4               reserved (0)
//   40      8 * (D + 1)     document start offsets, in tokens (first 0, strictly increasing, last T)
//   ...     4 * T           tokens
//   ...     T (if flagged)  loss mask: 1 = predicted, 0 = not (label -100)
//
// Writing streams (memory O(documents), not O(tokens)); reading maps the file, so only the pages a
// rank touches become resident:
//
//   data::TokenFileWriter w("data.ftok", vocab);
//   for (const data::Document& d : docs) w.add(d);
//   w.finish();                                        // atomic: nothing at "data.ftok" before this
//
//   auto file = std::make_shared<const data::TokenFile>("data.ftok", model_vocab);
//   const uint32_t* ids = file->tokens() + file->doc_begin(3);   // document 3, doc_size(3) ids
//
// The whole-file helpers below (write_token_file, read_token_file) are built on these two.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ftdist/core/dir_lock.h"
#include "ftdist/data/documents.h"

namespace ftdist::data {

// A read-only memory mapping of a .ftok file. The constructor validates the header (magic,
// version), the sizes against the file length, the file's vocabulary against the model's `vocab`,
// and the document offsets table (reading only its 8 * (D + 1) bytes). Token ids are NOT read at
// open: check_token() validates them where they are used (PackedSamples does, per sample), and
// first_token_out_of_vocab() scans a range of them (training scans the whole file at start).
// Errors are Error(BadInput) naming the path.
class TokenFile {
 public:
  TokenFile(const std::string& path, int64_t vocab);
  ~TokenFile();
  TokenFile(TokenFile&& other) noexcept;
  TokenFile& operator=(TokenFile&& other) noexcept;
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;

  int64_t num_documents() const { return docs_; }
  int64_t num_tokens() const { return tokens_; }
  int64_t vocab() const { return vocab_; }  // the file's vocabulary (<= the model's)
  bool masked() const { return mask_ != nullptr; }
  const std::string& path() const { return path_; }

  // Start of document d in tokens, for d in [0, D]; doc_begin(D) == T.
  int64_t doc_begin(int64_t d) const { return int64_t(offsets_[d]); }
  int64_t doc_size(int64_t d) const { return int64_t(offsets_[d + 1] - offsets_[d]); }
  // The document holding token t (0 <= t < T): a binary search over the offsets, O(log D).
  int64_t doc_of(int64_t t) const;

  // Buffers inside the mapping: tokens() holds T uint32 ids (document d is [doc_begin(d),
  // doc_begin(d + 1))); mask() holds T bytes (1 = predicted, 0 = label -100), or is null when the
  // file has no mask (every token predicted).
  const uint32_t* tokens() const { return tokens_ptr_; }
  const uint8_t* mask() const { return mask_; }

  // Throws Error(BadInput) naming the file, the document, the token's position in it and the
  // vocabulary when the token at stream position t (in document d) is not below vocab().
  void check_token(int64_t t, int64_t d) const {
    if (tokens_ptr_[t] >= uint32_t(vocab_)) token_out_of_vocab(t, d);
  }

  // The first stream position in [begin, end) (0 <= begin <= end <= T) whose token is not below
  // vocab(), or -1 when there is none: one pass over those tokens, in order, handing each 16 MiB
  // back once scanned (resident memory does not grow with the file, and the page cache keeps only
  // what it held before). A run checks its
  // data with it before the first step, so a bad token is an error at start, not when a sample
  // reaches it hours later.
  int64_t first_token_out_of_vocab(int64_t begin, int64_t end) const;
  // The prediction targets among stream positions [begin, end): the tokens whose mask byte is 1
  // (every token without a mask) that are not the first of their document (a document's first token
  // is never predicted). Error(BadInput) naming the file and position for a mask byte other than 0
  // or 1. A run counts the whole file before the first step: data that trains nothing is an error.
  int64_t trained_targets(int64_t begin, int64_t end) const;

  // Hands the pages read so far back to the kernel (madvise MADV_DONTNEED): resident memory drops;
  // later reads fault them in again from the page cache or the disk.
  void release_pages() const;

 private:
  [[noreturn]] void token_out_of_vocab(int64_t t, int64_t d) const;
  // The whole pages of the mapping holding [from, to): (first page's address, bytes).
  std::pair<uintptr_t, size_t> page_range(const void* from, const void* to) const;
  // Per page of [first, first + bytes): whether it is in the page cache (mincore; none where the
  // kernel does not tell this process).
  std::vector<bool> cached_pages(int fd, uintptr_t first, size_t bytes) const;
  void validate_offsets() const;
  void unmap() noexcept;

  std::string path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  int64_t vocab_ = 0, docs_ = 0, tokens_ = 0;
  const uint64_t* offsets_ = nullptr;  // D + 1 entries
  const uint32_t* tokens_ptr_ = nullptr;
  const uint8_t* mask_ = nullptr;
};

// Writes a .ftok one document at a time. Tokens and mask bytes go to temporary files next to
// `path` (<path>.tmp-tokens, <path>.tmp-mask) and only the offsets stay in memory; finish()
// assembles <path>.tmp (the mask section only when some label is -100), fsyncs it and renames it
// to `path`. Destroyed without finish() (an exception, say), it removes every temporary file and
// leaves `path` as it was. One writer of `path` at a time (OutputLock): a second is refused, as the
// two would share the temporary files.
class TokenFileWriter {
 public:
  TokenFileWriter(const std::string& path, int64_t vocab);
  ~TokenFileWriter();
  TokenFileWriter(const TokenFileWriter&) = delete;
  TokenFileWriter& operator=(const TokenFileWriter&) = delete;

  // Error(BadInput) naming `source` (the data the document was read from; the path when "") and
  // d.line when an id is outside [0, vocab), the document is empty, labels and ids differ in
  // length, or a label is neither its id nor -100: the file stores the ids and a loss mask, not
  // separate labels, so such a document (shifted labels, say) would train on other targets.
  void add(const Document& d, const std::string& source = "");
  // `tick`, when given, is called after every MiB copied into place (a long finish on a large
  // corpus can keep waiting peers informed).
  void finish(const std::function<void()>& tick = {});

  int64_t num_documents() const { return int64_t(offsets_.size()) - 1; }
  int64_t num_tokens() const { return int64_t(offsets_.back()); }

 private:
  void assemble(const std::function<void()>& tick);
  void remove_temporaries() noexcept;

  std::string path_;
  int64_t vocab_;
  std::unique_ptr<OutputLock> lock_;
  std::FILE* tokens_ = nullptr;
  std::FILE* mask_ = nullptr;
  std::vector<uint64_t> offsets_{0};
  bool masked_ = false, finished_ = false;
  std::vector<char> buf_;
};

// Atomic (temporary file + fsync + rename), through TokenFileWriter.
void write_token_file(const std::string& path, const std::vector<Document>& docs, int64_t vocab);
// Reads every document into memory, checking every token against the file's vocabulary (which
// must be <= `vocab`). Document lines are 1, 2, ... (the document's index + 1).
std::vector<Document> read_token_file(const std::string& path, int64_t vocab);

// Whether a data path names a token file (*.ftok); anything else is JSONL.
bool is_token_file_path(const std::string& path);

// A data path: *.ftok is a token file, anything else JSONL (text tokenized by `tokenizer`; null:
// byte-level).
std::vector<Document> read_documents(const std::string& path, int64_t vocab, const std::string& what,
                                     const Tokenizer* tokenizer = nullptr);

}  // namespace ftdist::data
