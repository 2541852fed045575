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
//   40      8 * (D + 1)     document start offsets, in tokens (first 0, last T)
//   ...     4 * T           tokens
//   ...     T (if flagged)  loss mask: 1 = predicted, 0 = not (label -100)
//
//   write_token_file("data.ftok", docs, vocab);   read_token_file("data.ftok", model_vocab);
#pragma once

#include <string>
#include <vector>

#include "ftdist/data/documents.h"

namespace ftdist::data {

// Atomic (temporary file + rename). `progress` reports documents written, when given.
void write_token_file(const std::string& path, const std::vector<Document>& docs, int64_t vocab);
// Validates the header, sizes and every token against min(file vocabulary, `vocab`).
std::vector<Document> read_token_file(const std::string& path, int64_t vocab);

// A data path: *.ftok is a token file, anything else JSONL (text tokenized by `tokenizer`; null:
// byte-level).
std::vector<Document> read_documents(const std::string& path, int64_t vocab, const std::string& what,
                                     const Tokenizer* tokenizer = nullptr);

}  // namespace ftdist::data
