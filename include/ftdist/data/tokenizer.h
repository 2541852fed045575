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

struct ChatFormat;

// A token and the byte of the text it starts at.
struct TokenAt {
  int64_t id;
  size_t start;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;  // BOS text EOS
  // The tokens of `text` as it stands (no BOS or EOS added), each with the byte it starts at.
  virtual std::vector<TokenAt> encode_at(const std::string& text) const = 0;
  // The id of a piece given as its text (a special token such as "<s>"); -1 when there is none.
  virtual int64_t piece_id(const std::string& piece) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t bos() const = 0;  // -1 when the tokenizer has none
  virtual int64_t eos() const = 0;
  virtual std::string name() const = 0;  // for messages
  // The special tokens and chat template of the model directory the tokenizer came from
  // (data/chat_format.h); null without a tokenizer_config.json.
  const ChatFormat* chat() const { return chat_.get(); }
  std::shared_ptr<const ChatFormat> chat_;
};

std::unique_ptr<Tokenizer> byte_tokenizer();
// "" -> the byte-level tokenizer; a SentencePiece model file, or a model directory holding one as
// tokenizer.model, otherwise. Beside the model file, a tokenizer_config.json gives the tokenizer its
// special tokens and chat template (`messages` data). Error(BadInput) naming `what` and the
// path when it cannot be loaded.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path, const std::string& what);
// The files load_tokenizer(path) reads that exist: the model file, then tokenizer_config.json and
// chat_template.jinja beside it; empty for "" (the byte-level tokenizer). The token cache keys on
// their contents.
std::vector<std::string> tokenizer_files(const std::string& path);

}  // namespace ftdist::data
