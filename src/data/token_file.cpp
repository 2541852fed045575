#include "ftdist/data/token_file.h"

#include <cstdio>
#include <cstring>
#include <fstream>

#include "ftdist/core/check.h"

namespace ftdist::data {
namespace {

constexpr char kMagic[8] = {'F', 'T', 'D', 'T', 'O', 'K', '0', '1'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeader = 40;

template <typename T>
void put(std::string& out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(char((uint64_t(v) >> (8 * i)) & 0xff));
}

template <typename T>
T get(const std::string& in, size_t at) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= uint64_t(uint8_t(in[at + i])) << (8 * i);
  return T(v);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

void write_token_file(const std::string& path, const std::vector<Document>& docs, int64_t vocab) {
  FT_CHECK_ARG(vocab > 0 && vocab <= int64_t(UINT32_MAX), path << ": vocabulary size " << vocab << " does not fit uint32");
  bool masked = false;
  uint64_t tokens = 0;
  for (const Document& d : docs) {
    tokens += d.ids.size();
    for (int64_t l : d.labels) masked |= l == -100;
  }
  std::string out;
  out.append(kMagic, 8);
  put<uint32_t>(out, kVersion);
  put<uint32_t>(out, uint32_t(vocab));
  put<uint64_t>(out, docs.size());
  put<uint64_t>(out, tokens);
  put<uint32_t>(out, masked ? 1u : 0u);
  put<uint32_t>(out, 0u);
  uint64_t offset = 0;
  put<uint64_t>(out, 0);
  for (const Document& d : docs) put<uint64_t>(out, offset += d.ids.size());
  for (const Document& d : docs)
    for (int64_t t : d.ids) {
      FT_CHECK_ARG(t >= 0 && t < vocab, path << ": token " << t << " of the document from line " << d.line
                                             << " is outside the vocabulary [0, " << vocab << ")");
      put<uint32_t>(out, uint32_t(t));
    }
  if (masked)
    for (const Document& d : docs)
      for (int64_t l : d.labels) out.push_back(l == -100 ? 0 : 1);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    FT_CHECK_ARG(f.good(), path << ": cannot write '" << tmp << "'");
    f.write(out.data(), std::streamsize(out.size()));
    FT_CHECK_ARG(f.good(), path << ": write failed");
  }
  FT_CHECK_ARG(std::rename(tmp.c_str(), path.c_str()) == 0, path << ": cannot rename the temporary file into place");
}

std::vector<Document> read_token_file(const std::string& path, int64_t vocab) {
  std::ifstream f(path, std::ios::binary);
  FT_CHECK_ARG(f.good(), path << ": cannot read");
  std::string in((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  FT_CHECK_ARG(in.size() >= kHeader && std::memcmp(in.data(), kMagic, 8) == 0,
               path << ": not an ftdist token file (bad magic or shorter than the " << kHeader << "-byte header)");
  FT_CHECK_ARG(get<uint32_t>(in, 8) == kVersion, path << ": token file version " << get<uint32_t>(in, 8)
                                                      << " is not supported (expected " << kVersion << ")");
  const int64_t file_vocab = get<uint32_t>(in, 12);
  const uint64_t n_docs = get<uint64_t>(in, 16), n_tokens = get<uint64_t>(in, 24);
  const bool masked = (get<uint32_t>(in, 32) & 1u) != 0;
  FT_CHECK_ARG(file_vocab <= vocab, path << ": written for a vocabulary of " << file_vocab << ", the model has " << vocab);
  const uint64_t want = kHeader + 8 * (n_docs + 1) + 4 * n_tokens + (masked ? n_tokens : 0);
  FT_CHECK_ARG(n_docs < (1ull << 40) && n_tokens < (1ull << 40) && in.size() == want,
               path << ": the header describes " << n_docs << " documents and " << n_tokens << " tokens (" << want
                    << " bytes) but the file has " << in.size() << " bytes (truncated or corrupt)");
  const size_t offsets = kHeader, tokens = offsets + 8 * (n_docs + 1), mask = tokens + 4 * n_tokens;
  std::vector<Document> docs;
  uint64_t prev = get<uint64_t>(in, offsets);
  FT_CHECK_ARG(prev == 0, path << ": the first document offset must be 0");
  for (uint64_t d = 0; d < n_docs; ++d) {
    const uint64_t end = get<uint64_t>(in, offsets + 8 * (d + 1));
    FT_CHECK_ARG(end >= prev && end <= n_tokens, path << ": document " << d << " has offsets " << prev << ".." << end
                                                      << " outside the " << n_tokens << " tokens");
    Document doc;
    doc.line = int64_t(d + 1);
    for (uint64_t t = prev; t < end; ++t) {
      const int64_t id = get<uint32_t>(in, tokens + 4 * t);
      FT_CHECK_ARG(id < file_vocab, path << ": token " << id << " (document " << d << ") is outside the vocabulary [0, "
                                          << file_vocab << ")");
      doc.ids.push_back(id);
      doc.labels.push_back(masked && in[mask + t] == 0 ? -100 : id);
    }
    FT_CHECK_ARG(!doc.ids.empty(), path << ": document " << d << " is empty");
    docs.push_back(std::move(doc));
    prev = end;
  }
  FT_CHECK_ARG(prev == n_tokens, path << ": the last document offset must be the token count " << n_tokens);
  FT_CHECK_ARG(!docs.empty(), path << ": no documents");
  return docs;
}

std::vector<Document> read_documents(const std::string& path, int64_t vocab, const std::string& what,
                                     const Tokenizer* tokenizer) {
  return ends_with(path, ".ftok") ? read_token_file(path, vocab) : read_jsonl(path, vocab, what, tokenizer);
}

}  // namespace ftdist::data
