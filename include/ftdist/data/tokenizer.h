// Tokenizers for JSONL "text" and "prompt"/"completion" documents: the built-in byte-level one
// (token = byte, BOS 256, EOS 257) or a SentencePiece `tokenizer.model` (Llama-2, Mistral).
// Either returns BOS text EOS (where the model defines BOS/EOS).
//
//   std::unique_ptr<Tokenizer> tok = load_tokenizer(cfg.tokenizer, "data.tokenizer");  // "" = bytes
//   std::vector<int64_t> ids = tok->encode("Hello");
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ftdist::data {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;  // BOS text EOS
  virtual int64_t vocab_size() const = 0;
  virtual int64_t bos() const = 0;  // -1 when the tokenizer has none
  virtual int64_t eos() const = 0;
  virtual std::string name() const = 0;  // for messages
};

std::unique_ptr<Tokenizer> byte_tokenizer();
// "" -> the byte-level tokenizer; a SentencePiece model file otherwise. Error(BadInput) naming
// `what` and the path when it cannot be loaded.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path, const std::string& what);

}  // namespace ftdist::data
