// Tokenizers for JSONL "text" and "prompt"/"completion" documents: the built-in byte-level one
// (token = byte, BOS 256, EOS 257), a SentencePiece `tokenizer.model` (Llama-2, Mistral, Phi-3), or
// a byte-level BPE `tokenizer.json` (Llama-3, Qwen2; data/bpe_tokenizer.h). Each returns BOS text
// EOS (where the model defines BOS/EOS).
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
struct SpecialToken;

// A token, the byte of the text it starts at and, where the tokenizer knows it, the byte after its
// last (0 otherwise). A byte-level BPE token may end inside a character, or hold a byte the text
// does not (a prefix space), so its end can lie past the next token's start.
struct TokenAt {
  int64_t id;
  size_t start;
  size_t end = 0;
};

// Where token i of `tokens` (of a text of `size` bytes) ends for a loss mask: at the next token's
// start (the whitespace before a word belongs to the word's piece), or at its own end where that is
// later.
inline size_t token_end(const std::vector<TokenAt>& tokens, size_t i, size_t size) {
  const size_t next = i + 1 < tokens.size() ? tokens[i + 1].start : size;
  return tokens[i].end > next ? tokens[i].end : next;
}

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
  // True for a tokenizer.json: its own post-processor (bos()) says whether a text starts with BOS,
  // whatever tokenizer_config.json's add_bos_token says (as in Transformers 5).
  virtual bool post_processed() const { return false; }
  // A tokenizer.json post-processor's tokens before and after a text ("<|begin_of_text|> $A"); empty
  // for the others, whose BOS / EOS come from bos() / eos() and tokenizer_config.json.
  virtual std::vector<int64_t> opening() const { return {}; }
  virtual std::vector<int64_t> closing() const { return {}; }
  // tokenizer_config.json's special tokens (added_tokens_decoder, then the named ones: bos_token ...
  // mask_token, other "*_token" keys, extra_special_tokens) that a tokenizer.json does not hold as
  // added tokens already, made added tokens of it as Transformers adds them to its tokenizer: a piece
  // of the vocabulary keeps its id, a new token takes the next free id. Fills in the id of each
  // token given with id -1; `config`: the tokenizer_config.json, for errors.
  virtual void add_special_tokens(std::vector<SpecialToken>&, const std::string& /*config*/) {}
  // True for SentencePiece: a text's first word takes the word-start marker (tokenizer_config.json's
  // "legacy" decides whether text after a special token does too).
  virtual bool marks_word_start() const { return false; }
  // The special tokens and chat template of the model directory the tokenizer came from
  // (data/chat_format.h); null without a tokenizer_config.json.
  const ChatFormat* chat() const { return chat_.get(); }
  std::shared_ptr<const ChatFormat> chat_;
};

std::unique_ptr<Tokenizer> byte_tokenizer();
// The file that says a model directory's tokenizer is the byte-level one: {"tokenizer":
// "byte-level"}. A run whose text the byte-level tokenizer read writes it into its checkpoints and
// export (Hugging Face has no such tokenizer), so that text read with that model later is read so.
constexpr const char* kByteTokenizerFile = "ftdist-tokenizer.json";
void write_byte_tokenizer_file(const std::string& dir);
// The tokenizer of a model directory `dir` that holds none: every use raises Error(BadInput) saying
// so, `setting` naming how to give one (data of token ids never uses it). Text is not read as bytes:
// the model's vocabulary is not.
std::unique_ptr<Tokenizer> missing_tokenizer(const std::string& dir, const std::string& setting);
// "" -> the byte-level tokenizer; a SentencePiece model file or a tokenizer.json (by its name's
// ".json"), or a model directory holding tokenizer.model (preferred), tokenizer.json or
// ftdist-tokenizer.json, otherwise.
// Beside the model file, a tokenizer_config.json gives the tokenizer its
// special tokens and chat template (`messages` data). Error(BadInput) naming `what` and the
// path when it cannot be loaded.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path, const std::string& what);
// load_tokenizer(path, what), except that where the tokenizer cannot be read, what comes back is a
// tokenizer whose every use raises that error: data of token ids (input_ids lines, .ftok files)
// never needs a model directory's tokenizer, and a tokenizer.json ftdist does not read must not stop
// it.
std::unique_ptr<Tokenizer> load_tokenizer_when_used(const std::string& path, const std::string& what);
// The tokenizer file a model directory holds, as load_tokenizer(dir) reads it: tokenizer.model,
// else tokenizer.json, else ftdist-tokenizer.json; "" when it has none.
std::string tokenizer_file_of(const std::string& dir);
// The files load_tokenizer(path) reads that exist: the model file, then tokenizer_config.json,
// chat_template.jinja and additional_chat_templates/* beside it; empty for "" (the byte-level tokenizer). The token cache keys on
// their contents.
std::vector<std::string> tokenizer_files(const std::string& path);

}  // namespace ftdist::data
