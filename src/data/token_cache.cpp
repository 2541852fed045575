#include "ftdist/data/token_cache.h"

#include <sys/stat.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <fstream>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "ftdist/core/check.h"
#include "ftdist/core/hash.h"
#include "ftdist/core/json.h"
#include "ftdist/core/text_file.h"
#include "ftdist/data/token_file.h"
#include "ftdist/data/tokenizer.h"

namespace ftdist::data {
namespace {

// Bumped whenever what the cache stores for the same input changes.
constexpr int kCacheFormat = 1;

std::string absolute(const std::string& path, const std::string& what) {
  char buf[PATH_MAX];
  FT_CHECK_ARG(::realpath(path.c_str(), buf) != nullptr,
               what << ": cannot read '" << path << "' (" << std::strerror(errno) << ")");
  return buf;
}

// {"path", "size", "mtime_ns"} of a file: the cache key's input.
nlohmann::json stamp(const std::string& path, const std::string& what) {
  const std::string abs = absolute(path, what);
  struct stat st {};
  FT_CHECK_ARG(::stat(abs.c_str(), &st) == 0,
               what << ": cannot read '" << path << "' (" << std::strerror(errno) << ")");
  const int64_t mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + int64_t(st.st_mtim.tv_nsec);
  return {{"path", abs}, {"size", uint64_t(st.st_size)}, {"mtime_ns", mtime_ns}};
}

// {"ctime_ns", "inode"}: which file that is. The status change time only the kernel sets, so an
// edit that kept the size and mtime (cp -p, rsync -t) changes it; so does a fresh copy of the same
// bytes (data staged to a node's disk each job), which the content hash then recognizes.
nlohmann::json identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return nullptr;
  return {{"ctime_ns", int64_t(st.st_ctim.tv_sec) * 1000000000 + int64_t(st.st_ctim.tv_nsec)}, {"inode", uint64_t(st.st_ino)}};
}

// FNV-1a over the whole file, streamed (hex; "" when it cannot be read).
std::string content_hash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  uint64_t h = kFnv1a64Start;
  std::vector<char> buf(size_t(1) << 20);
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    h = fnv1a64(buf.data(), size_t(in.gcount()), h);
  }
  return hex64(h);
}

// The tokenizer by what it is made of: each file it reads (the model, its tokenizer_config.json and
// chat template) by path and a hash of its bytes, so a file replaced or edited in place with its
// size and mtime kept (cp -p, rsync -t) is still a different tokenizer.
nlohmann::json tokenizer_stamp(const std::string& path, const std::string& what) {
  if (path.empty()) return "bytes";
  nlohmann::json files = nlohmann::json::array();
  for (const std::string& f : tokenizer_files(path))
    files.push_back({{"path", absolute(f, what)}, {"fnv1a64", fnv1a64(read_text_file(f, what))}});
  return {{"path", absolute(path, what)}, {"files", files}};
}

// Every chat turn trained is recorded only when asked for, so caches written before data.train_on
// existed (the assistant turns) stay current.
nlohmann::json cache_key(const TokenCacheSource& src, const std::string& what) {
  nlohmann::json key = {{"format", kCacheFormat},
                        {"input", stamp(src.jsonl_path, what)},
                        {"tokenizer", tokenizer_stamp(src.tokenizer_path, what + " tokenizer")},
                        {"vocab", src.vocab}};
  if (src.chat_all_turns) key["chat_turns"] = "all";
  return key;
}

std::string short_hash(const std::string& text) {  // FNV-1a, 48 bits as 12 hex digits
  char out[13];
  std::snprintf(out, sizeof(out), "%012llx", static_cast<unsigned long long>(fnv1a64(text) & 0xffffffffffffull));
  return out;
}

std::string stem_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  const size_t dot = name.rfind('.');
  return dot == std::string::npos || dot == 0 ? name : name.substr(0, dot);
}

std::string sidecar_of(const std::string& ftok) { return ftok + ".json"; }

uint64_t size_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? uint64_t(st.st_size) : UINT64_MAX;
}

// Whether `ftok` was made from this input: the same key (path, size, mtime, tokenizer, ...) and the
// same file, or another file (another ctime or inode) with the same bytes. *same_file: whether the
// sidecar's identity is the input's (else a reuse should record the new one).
bool is_current(const std::string& ftok, const nlohmann::json& key, const std::string& input, bool* same_file = nullptr) {
  if (!file_exists(ftok) || !file_exists(sidecar_of(ftok))) return false;
  try {
    const nlohmann::json side = parse_json(read_text_file(sidecar_of(ftok), "the token cache"), sidecar_of(ftok));
    if (side.at("key") != key || side.at("ftok_bytes").get<uint64_t>() != size_of(ftok)) return false;
    const bool same = side.value("input_identity", nlohmann::json()) == identity(input);
    if (same_file) *same_file = same;
    return same || (side.contains("input_fnv1a64") && side["input_fnv1a64"] == content_hash(input));
  } catch (const std::exception&) {  // unreadable or not ours: rewrite it
    return false;
  }
}

void write_sidecar(const std::string& ftok, const nlohmann::json& key, const std::string& input, const std::string& input_hash,
                   int64_t documents, int64_t tokens, const std::string& what) {
  const nlohmann::json side = {{"key", key},
                               {"input_identity", identity(input)},
                               {"input_fnv1a64", input_hash},
                               {"ftok_bytes", size_of(ftok)},
                               {"documents", documents},
                               {"tokens", tokens}};
  write_text_file_atomic(sidecar_of(ftok), side.dump(2) + "\n", what + " cache");
}

}  // namespace

std::string tokenized_cache_path(const TokenCacheSource& src, const std::string& cache_dir) {
  const std::string tok = src.tokenizer_path.empty() ? "bytes" : absolute(src.tokenizer_path, "tokenizer");
  const std::string id = "format " + std::to_string(kCacheFormat) + "\n" + absolute(src.jsonl_path, "data") + "\n" + tok +
                         "\n" + std::to_string(src.vocab) + (src.chat_all_turns ? "\nchat turns: all" : "");
  return cache_dir + "/" + stem_of(src.jsonl_path) + "." + short_hash(id) + ".ftok";
}

bool tokenized_cache_is_current(const TokenCacheSource& src, const std::string& cache_dir) {
  try {
    return is_current(tokenized_cache_path(src, cache_dir), cache_key(src, "data"), src.jsonl_path);
  } catch (const Error&) {
    return false;
  }
}

std::string tokenized_cache(const TokenCacheSource& src, const Tokenizer* tokenizer, const std::string& cache_dir,
                            const std::string& what, const ReadProgress& progress, const std::function<void()>& tick,
                            bool* reused) {
  // The key is taken before reading: an input modified meanwhile is re-tokenized next time.
  const nlohmann::json key = cache_key(src, what);
  const std::string ftok = tokenized_cache_path(src, cache_dir);
  bool same_file = true;
  const bool current = is_current(ftok, key, src.jsonl_path, &same_file);
  if (reused) *reused = current;
  if (current) {
    if (!same_file) {  // a copy of the same bytes: recorded, so that the next run need not hash it again
      const nlohmann::json side = parse_json(read_text_file(sidecar_of(ftok), "the token cache"), sidecar_of(ftok));
      write_sidecar(ftok, key, src.jsonl_path, side.value("input_fnv1a64", ""), side.value("documents", int64_t(0)),
                    side.value("tokens", int64_t(0)), what);
    }
    return ftok;
  }
  make_directories(cache_dir, what + " cache");
  std::remove(sidecar_of(ftok).c_str());  // from here on the old file is not current
  const std::string input_hash = content_hash(src.jsonl_path);  // (read before the tokens, as the key)
  TokenFileWriter writer(ftok, src.vocab);
  for_each_jsonl_document(
      src.jsonl_path, src.vocab, what, tokenizer,
      [&](Document&& d) { writer.add(d, src.jsonl_path); },
      progress, src.chat_all_turns);
  writer.finish(tick);
  write_sidecar(ftok, key, src.jsonl_path, input_hash, int64_t(writer.num_documents()), int64_t(writer.num_tokens()), what);
  fsync_directory(cache_dir, what + " cache");
  return ftok;
}

}  // namespace ftdist::data
