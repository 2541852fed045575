// A byte-level BPE tokenizer.json (Llama-3, Qwen2, GPT-2 families), read and applied as Hugging
// Face tokenizers applies it: the added tokens split out first (with their lstrip / rstrip /
// single_word), the normalizer (none or NFC), the pre-tokenizer (Split with a regex or a string,
// each split behavior, ByteLevel with or without its GPT-2 regex and prefix space), then BPE merges
// by rank on each piece's bytes (ignore_merges, unk_token, byte_fallback). The post-processor
// (TemplateProcessing, RobertaProcessing, ByteLevel) gives the tokens a text starts and ends with.
//
// A tokenizer.json built otherwise — WordPiece, Unigram, Metaspace, other normalizers, a regex
// construct split_regex.h does not read — is refused when loaded, naming the file and the key,
// with scripts/tokenize_hf.py as the way through; it is never tokenized differently.
#pragma once

#include <memory>
#include <string>

#include "ftdist/data/tokenizer.h"

namespace ftdist::data {

// Error(BadInput) naming `what` and the file when it cannot be read.
std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::string& path, const std::string& what);

}  // namespace ftdist::data
