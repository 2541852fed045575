// The tokenized cache: a JSONL data set tokenized once into a token file (.ftok) inside a cache
// directory (the run's output directory, say), reused while the input and the tokenizer are unchanged.
//
//   const data::TokenCacheSource src{"train.jsonl", cfg.tokenizer, vocab};
//   const bool reuse = data::tokenized_cache_is_current(src, dir);
//   log(reuse ? "reusing the tokenized train.jsonl" : "tokenizing train.jsonl");
//   std::string ftok = data::tokenized_cache(src, tok.get(), dir, "data.train");
//   data::PackedSamples samples(std::make_shared<const data::TokenFile>(ftok, vocab), seq_len);
//
// Files, for an input ".../train.jsonl":
//   <cache_dir>/train.<hash>.ftok        the documents, written by TokenFileWriter (streaming, atomic)
//   <cache_dir>/train.<hash>.ftok.json   the sidecar: the key it was made with, written last (atomic)
// <hash> is a short hash of the input's absolute path, the tokenizer's path (or "bytes"), the
// vocabulary, which chat turns train and the cache format, so a train and an eval input never share
// a file; a changed input rewrites its own file. The key in the sidecar also records the input's size
// and mtime (ns), and a hash of the contents of every file the tokenizer reads (tokenizer_files():
// the model, tokenizer_config.json, chat_template.jinja), so a tokenizer or template edited in place
// is seen whatever its mtime: the cache is reused only when every field matches and the .ftok has
// the size the sidecar records, so a killed write (no sidecar yet, or an old one) is never reused.
// The sidecar also records which file the input was (its ctime and inode) and a hash of its bytes:
// another file under the key (an edit that kept the size and mtime, as cp -p leaves it) is reused
// only when its bytes hash the same (a copy staged anew each job), and then recorded as current.
//
// The functions do no cross-process coordination: with several ranks, one writes while the
// others wait, then they open tokenized_cache_path().
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "ftdist/data/documents.h"

namespace ftdist::data {

class Tokenizer;

// What a cached token file is made from.
struct TokenCacheSource {
  std::string jsonl_path;
  std::string tokenizer_path;   // the file the tokenizer was loaded from; "" for the byte-level tokenizer
  int64_t vocab = 0;            // ids must stay below it
  bool chat_all_turns = false;  // chat messages: every token trains, not only the assistant turns
};

// Where the cache for this input lives (whether or not it exists yet).
std::string tokenized_cache_path(const TokenCacheSource& source, const std::string& cache_dir);

// True when tokenized_cache() would reuse the file (a few stat calls, the sidecar, and a read of the
// tokenizer's files). False
// also when the input cannot be read (tokenized_cache() then reports it).
bool tokenized_cache_is_current(const TokenCacheSource& source, const std::string& cache_dir);

// Returns the path of a current .ftok made from `source`, creating `cache_dir` and (re)writing
// the file when it is not current: documents stream from for_each_jsonl_document() (messages name
// `what` and path:line; `progress` as there) into a TokenFileWriter, never holding the corpus.
// A file stores ids and a loss mask, so a document whose "labels" are neither its ids nor -100 is
// refused (Error(BadInput) naming path:line) rather than trained on differently. `tick`, when given,
// is called every MiB while the finished file is copied into place (after the last document).
// *reused (when given): whether the file was current already (a fresh copy of the same bytes is
// then recorded in the sidecar, so the next run does not hash it again).
std::string tokenized_cache(const TokenCacheSource& source, const Tokenizer* tokenizer, const std::string& cache_dir,
                            const std::string& what, const ReadProgress& progress = {},
                            const std::function<void()>& tick = {}, bool* reused = nullptr);

}  // namespace ftdist::data
