#include "ftdist/data/tokenizer.h"

#include <sentencepiece_processor.h>

#include "ftdist/core/check.h"
#include "ftdist/core/json.h"
#include "ftdist/core/text_file.h"
#include "ftdist/data/chat_format.h"
#include "ftdist/data/documents.h"
#include "bpe_tokenizer.h"

namespace ftdist::data {
namespace {

class ByteTokenizer : public Tokenizer {
 public:
  std::vector<int64_t> encode(const std::string& text) const override { return byte_tokenize(text); }
  std::vector<TokenAt> encode_at(const std::string& text) const override {
    std::vector<TokenAt> out;
    for (size_t i = 0; i < text.size(); ++i) out.push_back({int64_t(static_cast<unsigned char>(text[i])), i});
    return out;
  }
  int64_t piece_id(const std::string&) const override { return -1; }
  int64_t vocab_size() const override { return kByteVocab; }
  int64_t bos() const override { return kByteBos; }
  int64_t eos() const override { return kByteEos; }
  std::string name() const override { return "the byte-level tokenizer"; }
};

class SentencePieceTokenizer : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::string& path, const std::string& what) : path_(path) {
    FT_CHECK_ARG(file_exists(path), what << ": '" << path << "' does not exist (expected a SentencePiece tokenizer.model)");
    const auto status = sp_.Load(path);
    FT_CHECK_ARG(status.ok(), what << ": '" << path << "' is not a SentencePiece model (" << status.ToString() << ")");
  }
  std::vector<int64_t> encode(const std::string& text) const override {
    std::vector<int> pieces;
    const auto status = sp_.Encode(text, &pieces);
    FT_CHECK_ARG(status.ok(), path_ << ": cannot encode text (" << status.ToString() << ")");
    std::vector<int64_t> out;
    out.reserve(pieces.size() + 2);
    if (sp_.bos_id() >= 0) out.push_back(sp_.bos_id());
    out.insert(out.end(), pieces.begin(), pieces.end());
    if (sp_.eos_id() >= 0) out.push_back(sp_.eos_id());
    return out;
  }
  std::vector<TokenAt> encode_at(const std::string& text) const override {
    const sentencepiece::ImmutableSentencePieceText spt = sp_.EncodeAsImmutableProto(text);
    std::vector<TokenAt> out;
    out.reserve(spt.pieces_size());
    for (const auto& p : spt.pieces()) out.push_back({int64_t(p.id()), size_t(p.begin()), size_t(p.end())});
    // A character split into byte-fallback pieces: SentencePiece gives all but the last an empty
    // range at its start; each stands for the whole character, as in Transformers (a completion that
    // starts with it trains every one of its bytes).
    for (size_t i = out.size(); i-- > 1;)
      if (out[i - 1].end == out[i - 1].start && out[i - 1].start == out[i].start) out[i - 1].end = out[i].end;
    return out;
  }
  int64_t piece_id(const std::string& piece) const override {
    const int id = sp_.PieceToId(piece);
    return id == sp_.unk_id() && piece != sp_.IdToPiece(sp_.unk_id()) ? -1 : id;
  }
  int64_t vocab_size() const override { return sp_.GetPieceSize(); }
  int64_t bos() const override { return sp_.bos_id(); }
  int64_t eos() const override { return sp_.eos_id(); }
  std::string name() const override { return "the SentencePiece tokenizer " + path_; }
  bool marks_word_start() const override { return true; }

 private:
  std::string path_;
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

std::unique_ptr<Tokenizer> byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

namespace {
// The tokenizer file of `path`: itself, or a model directory's tokenizer.model, else its tokenizer.json.
std::string model_file_of(const std::string& path) {
  if (!is_directory(path)) return path;
  for (const char* name : {"tokenizer.model", "tokenizer.json", kByteTokenizerFile})
    if (file_exists(path + "/" + name)) return path + "/" + name;
  return path + "/tokenizer.model";
}
bool is_byte_tokenizer_file(const std::string& file) {
  const std::string name = kByteTokenizerFile;
  return file.size() >= name.size() && file.compare(file.size() - name.size(), name.size(), name) == 0 &&
         (file.size() == name.size() || file[file.size() - name.size() - 1] == '/');
}
bool is_json(const std::string& file) { return file.size() >= 5 && file.compare(file.size() - 5, 5, ".json") == 0; }
std::string config_file_of(const std::string& model) { return directory_of(model) + "/tokenizer_config.json"; }
}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path, const std::string& what) {
  if (path.empty()) return byte_tokenizer();
  const std::string model = model_file_of(path);
  if (is_byte_tokenizer_file(model)) {
    const nlohmann::json j = parse_json(read_text_file(model, what), model);
    FT_CHECK_ARG(j.is_object() && j.value("tokenizer", "") == "byte-level",
                 what << ": " << model << ": expected {\"tokenizer\": \"byte-level\"}, got " << json_excerpt(j));
    return byte_tokenizer();
  }
  FT_CHECK_ARG(!is_directory(path) || file_exists(model),
               what << ": '" << path << "' holds neither a tokenizer.model (SentencePiece) nor a tokenizer.json");
  FT_CHECK_ARG(file_exists(model), what << ": '" << path << "' does not exist (expected a SentencePiece tokenizer.model, a "
                                           "byte-level BPE tokenizer.json, or a model directory holding one)");
  std::unique_ptr<Tokenizer> tok =
      is_json(model) ? load_bpe_tokenizer(model, what) : std::unique_ptr<Tokenizer>(std::make_unique<SentencePieceTokenizer>(model, what));
  const std::string config = config_file_of(model);
  if (file_exists(config)) {
    tok->chat_ = load_chat_format(config, *tok);
  }
  return tok;
}

namespace {
// A tokenizer that could not be loaded: each use raises the error loading it raised.
class UnreadableTokenizer : public Tokenizer {
 public:
  explicit UnreadableTokenizer(const Error& e) : error_(e) {}
  std::vector<int64_t> encode(const std::string&) const override { throw error_; }
  std::vector<TokenAt> encode_at(const std::string&) const override { throw error_; }
  int64_t piece_id(const std::string&) const override { throw error_; }
  int64_t vocab_size() const override { throw error_; }
  int64_t bos() const override { throw error_; }
  int64_t eos() const override { throw error_; }
  std::string name() const override { throw error_; }

 private:
  Error error_;
};
}  // namespace

void write_byte_tokenizer_file(const std::string& dir) {
  write_text_file_atomic(dir + "/" + kByteTokenizerFile, "{\"tokenizer\": \"byte-level\"}\n", "tokenizer");
}

std::unique_ptr<Tokenizer> missing_tokenizer(const std::string& dir, const std::string& setting) {
  return std::make_unique<UnreadableTokenizer>(Error(
      ErrorKind::BadInput, "text lines need a tokenizer, and the model directory '" + dir + "' holds none (tokenizer.json, " +
                               "tokenizer.model, or for a model of ftdist's byte-level tokenizer " + kByteTokenizerFile +
                               " holding {\"tokenizer\": \"byte-level\"}): set " + setting + ", or give the data as token ids"));
}

std::unique_ptr<Tokenizer> load_tokenizer_when_used(const std::string& path, const std::string& what) {
  try {
    return load_tokenizer(path, what);
  } catch (const Error& e) {
    return std::make_unique<UnreadableTokenizer>(e);
  }
}

std::string tokenizer_file_of(const std::string& dir) {
  const std::string file = model_file_of(dir);
  return is_directory(dir) && file_exists(file) ? file : "";
}

std::vector<std::string> tokenizer_files(const std::string& path) {
  if (path.empty()) return {};
  const std::string model = model_file_of(path), config = config_file_of(model);
  std::vector<std::string> out;
  for (const std::string& f : {model, config, chat_template_file_of(config)})
    if (file_exists(f)) out.push_back(f);
  const std::string more = additional_chat_templates_dir_of(config);
  for (const std::string& f : list_directory(more))
    if (file_exists(more + "/" + f)) out.push_back(more + "/" + f);
  return out;
}

}  // namespace ftdist::data
