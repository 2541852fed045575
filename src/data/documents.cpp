#include "ftdist/data/documents.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ftdist/core/check.h"
#include "ftdist/data/chat_format.h"
#include "ftdist/core/json.h"
#include "ftdist/core/text_file.h"
#include "ftdist/data/tokenizer.h"

namespace ftdist::data {

std::vector<int64_t> byte_tokenize(const std::string& text) {
  std::vector<int64_t> out;
  out.reserve(text.size() + 2);
  out.push_back(kByteBos);
  for (unsigned char ch : text) out.push_back(int64_t(ch));
  out.push_back(kByteEos);
  return out;
}

namespace {
std::vector<int64_t> read_ids(const nlohmann::json& j, const char* key, const std::string& where, int64_t vocab,
                              bool allow_ignore) {
  FT_CHECK_ARG(j.at(key).is_array(), where << ": \"" << key << "\" must be an array of integers");
  std::vector<int64_t> out;
  for (const auto& v : j.at(key)) {
    FT_CHECK_ARG(v.is_number_integer(), where << ": \"" << key << "\" must hold integers, found " << json_excerpt(v));
    int64_t t = v.get<int64_t>();
    FT_CHECK_ARG((t >= 0 && t < vocab) || (allow_ignore && t == -100),
                 where << ": token " << t << " in \"" << key << "\" is outside the vocabulary [0, " << vocab << ")"
                       << (allow_ignore ? " (and is not -100)" : ""));
    out.push_back(t);
  }
  return out;
}

std::string get_text(const nlohmann::json& j, const char* key, const std::string& where) {
  FT_CHECK_ARG(j.at(key).is_string(), where << ": \"" << key << "\" must be a string");
  return j.at(key).get<std::string>();
}

void need_vocab(const Tokenizer& tok, int64_t vocab, const std::string& where) {
  FT_CHECK_ARG(vocab >= tok.vocab_size(), where << ": text is tokenized by " << tok.name() << " (ids up to "
                                                << tok.vocab_size() - 1 << ") but the model's vocabulary has " << vocab
                                                << " entries");
}

// One sequence: BOS prompt completion EOS (the prompt's EOS and the completion's BOS dropped); the
// loss is on the completion only.
// BOS prompt completion EOS, tokenized as one text (as TRL does), so that the completion is not
// tokenized as a text of its own start (SentencePiece would give it a word-start "▁" the joined text
// does not have). A token is trained when its bytes reach into the completion; BOS is not, EOS is
// (appended unless the completion ends with it).
void prompt_completion(const nlohmann::json& j, const std::string& where, const Tokenizer& tokenizer, Document& d) {
  const std::string prompt = get_text(j, "prompt", where), text = prompt + get_text(j, "completion", where);
  const std::vector<TokenAt> tokens = encode_text(tokenizer, text);
  auto add = [&](int64_t id, bool trained) {
    d.ids.push_back(id);
    d.labels.push_back(trained ? id : -100);
  };
  for (int64_t id : text_start(tokenizer)) add(id, false);
  for (size_t i = 0; i < tokens.size(); ++i)
    add(tokens[i].id, token_end(tokens, i, text.size()) > prompt.size());
  for (int64_t id : text_end(tokenizer, d.ids)) add(id, true);
}

// "attention_mask" beside "input_ids" (as padded, tokenized data sets carry it): all ones is the same
// document; a 0 marks padding, which ftdist would otherwise attend to and train on (it packs and
// masks examples itself), so it is refused rather than ignored.
void check_attention_mask(const nlohmann::json& j, const std::string& where, size_t n) {
  if (!j.contains("attention_mask")) return;
  const nlohmann::json& m = j["attention_mask"];
  FT_CHECK_ARG(m.is_array() && m.size() == n, where << ": \"attention_mask\" must be a list of " << n << " 0s and 1s, as \"input_ids\"");
  for (size_t i = 0; i < n; ++i) {
    FT_CHECK_ARG(m[i].is_number_integer() && (m[i] == 0 || m[i] == 1),
                 where << ": \"attention_mask\" must hold 0s and 1s, got " << json_excerpt(m[i]) << " at position " << i);
    FT_CHECK_ARG(m[i] == 1, where << ": \"attention_mask\" is 0 at position " << i << " (padding): ftdist packs examples itself and "
                                  "attends to every token of a line; remove the padding from \"input_ids\" (and \"labels\")");
  }
}

// One non-blank line of JSONL -> a document (errors name `where`, i.e. path:line).
Document parse_line(const std::string& text, const std::string& where, int64_t line, int64_t vocab,
                    const Tokenizer& tokenizer, bool chat_all_turns) {
  const nlohmann::json j = parse_json(text, where);
  FT_CHECK_ARG(j.is_object(), where << ": expected a JSON object");
  // One kind of text per line: "text", "prompt"/"completion" and "messages" side by side are
  // refused, not read as whichever comes first. "input_ids" is the tokenized form and wins over
  // them (data sets keep their text beside it); a lone "prompt" beside "messages", as chat data sets
  // carry the first user turn, is no second kind.
  std::vector<std::string> kinds;
  for (const char* key : {"text", "messages"})
    if (j.contains(key)) kinds.push_back(std::string("\"") + key + "\"");
  if (j.contains("prompt") && j.contains("completion")) kinds.push_back("\"prompt\"/\"completion\"");
  FT_CHECK_ARG(j.contains("input_ids") || kinds.size() <= 1,
               where << ": the line holds both " << kinds[0] << " and " << kinds[1]
                     << "; a line is one document: keep one of them");
  Document d;
  d.line = line;
  if (j.contains("input_ids")) {
    d.ids = read_ids(j, "input_ids", where, vocab, false);
    d.labels = j.contains("labels") ? read_ids(j, "labels", where, vocab, true) : d.ids;
    FT_CHECK_ARG(d.labels.size() == d.ids.size(), where << ": \"labels\" has " << d.labels.size()
                                                         << " entries, \"input_ids\" " << d.ids.size());
    check_attention_mask(j, where, d.ids.size());
  } else if (j.contains("text")) {
    need_vocab(tokenizer, vocab, where);
    d.ids = text_start(tokenizer);
    for (const TokenAt& t : encode_text(tokenizer, get_text(j, "text", where))) d.ids.push_back(t.id);
    for (int64_t id : text_end(tokenizer, d.ids)) d.ids.push_back(id);
    d.labels = d.ids;
  } else if (j.contains("prompt") && j.contains("completion") && !(j["prompt"].is_array() && j["completion"].is_array())) {
    need_vocab(tokenizer, vocab, where);
    prompt_completion(j, where, tokenizer, d);
  } else if (j.contains("messages") || (j.contains("prompt") && j.contains("completion"))) {  // rendered with the chat template
    need_vocab(tokenizer, vocab, where);
    // (parsed again with its keys in order: a template's tojson and dict loops follow them)
    size_t first_trained = 0;  // (TRL's conversational prompt/completion: the prompt's messages are context)
    const nlohmann::ordered_json conversation = conversation_of(parse_ordered_json(text, where), &first_trained);
    const ChatTokens chat = chat_tokens(conversation, where, tokenizer, chat_all_turns, first_trained);
    d.ids = chat.ids;
    for (size_t i = 0; i < d.ids.size(); ++i) d.labels.push_back(chat.trained[i] ? d.ids[i] : -100);
  } else {
    FT_CHECK_ARG(false, where << ": expected \"input_ids\", \"text\", \"prompt\" and \"completion\", or \"messages\"");
  }
  FT_CHECK_ARG(!d.ids.empty(), where << ": the document is empty");
  return d;
}

// The size of a seekable file; 0 for a pipe (the stream is left as it was, readable from the start).
uint64_t file_size(std::ifstream& in) {
  in.seekg(0, std::ios::end);
  const std::streamoff end = in.tellg();
  if (!in || end < 0) {
    in.clear();
    return 0;
  }
  in.seekg(0, std::ios::beg);
  return uint64_t(end);
}

}  // namespace

size_t for_each_jsonl_document(const std::string& path, int64_t vocab, const std::string& what,
                               const Tokenizer* tokenizer, const std::function<void(Document&&)>& fn,
                               const ReadProgress& progress, bool chat_all_turns) {
  std::unique_ptr<Tokenizer> bytes;
  if (!tokenizer) tokenizer = (bytes = byte_tokenizer()).get();
  FT_CHECK_ARG(!is_directory(path), what << ": '" << path << "' is a directory (expected a JSONL file)");
  std::ifstream in(path);
  FT_CHECK_ARG(in.good(), what << ": cannot read '" << path << "'");
  const uint64_t total = progress ? file_size(in) : 0;
  std::string text;
  int64_t line = 0;
  uint64_t read = 0;
  size_t documents = 0;
  while (std::getline(in, text)) {
    ++line;
    read += text.size() + 1;
    if (progress && line > 1) progress(std::min(read, total), total, documents);
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line);
    Document d;
    try {
      d = parse_line(text, where, line, vocab, *tokenizer, chat_all_turns);
    } catch (const Error& e) {  // (a tokenizer's error, as a pattern that backtracks without end, names the line too)
      if (e.message().find(where) != std::string::npos) throw;
      throw Error(e.kind(), where + ": " + e.message(), e.call(), e.file().c_str(), e.line());
    }
    fn(std::move(d));
    ++documents;
  }
  FT_CHECK_ARG(documents > 0, what << ": '" << path << "' holds no documents");
  return documents;
}

std::vector<Document> read_jsonl(const std::string& path, int64_t vocab, const std::string& what,
                                 const Tokenizer* tokenizer, const ReadProgress& progress) {
  std::vector<Document> docs;
  for_each_jsonl_document(path, vocab, what, tokenizer, [&](Document&& d) { docs.push_back(std::move(d)); }, progress);
  return docs;
}

namespace {
// Calls `visit(line)` on every non-blank line of `path` until it returns true; whether one did.
template <class Visit>
bool any_line(const std::string& path, Visit visit) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (line.find_first_not_of(" \t\r") != std::string::npos && visit(line)) return true;
  return false;
}

// Whether `line` is a JSON object holding `key` (only a line that mentions "key" is parsed).
bool has_key(const std::string& line, const char* key) {
  if (line.find(std::string("\"") + key + "\"") == std::string::npos) return false;
  const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.contains(key);
}
}  // namespace

JsonlKind jsonl_kind(const std::string& path) {
  JsonlKind first = JsonlKind::kUnknown;
  any_line(path, [&](const std::string& line) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    first = !j.is_object()                                     ? JsonlKind::kUnknown
            : j.contains("input_ids")                          ? JsonlKind::kTokenIds
            : j.contains("messages") || j.contains("prompt")   ? JsonlKind::kMaskedText
            : j.contains("text")                               ? JsonlKind::kText
                                                               : JsonlKind::kUnknown;
    return true;
  });
  return first;
}

bool jsonl_masked_text_lines(const std::string& path) {
  return any_line(path, [](const std::string& line) { return has_key(line, "messages") || has_key(line, "prompt"); });
}

bool jsonl_labels_mask(const std::string& path) {
  return any_line(path, [](const std::string& line) {
    if (line.find("-100") == std::string::npos) return false;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return false;
    const auto labels = j.find("labels");
    return labels != j.end() && labels->is_array() &&
           std::any_of(labels->begin(), labels->end(), [](const nlohmann::json& v) { return v == -100; });
  });
}

}  // namespace ftdist::data
