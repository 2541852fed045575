// Token documents from JSONL, one JSON object per line:
//   {"input_ids": [...], "labels": [...]}   labels optional (default: the ids), -100 = not counted
//   {"text": "..."}                          tokenized (byte-level, or SentencePiece: tokenizer.h)
//   {"prompt": "...", "completion": "..."}   loss on the completion only
//   {"messages": [{"role", "content"}, ...]} rendered with the tokenizer's chat template
//                                            (chat_format.h), loss on the assistant turns
// "input_ids" wins over the others on its line (the tokenized form beside its text); a line with two
// of text, prompt/completion and messages is refused. Every id is checked against the vocabulary;
// errors name file:line.
//
//   std::vector<Document> docs = read_jsonl("train.jsonl", vocab);                 // all in memory
//   for_each_jsonl_document("train.jsonl", vocab, "data.train", tok.get(),
//                           [&](Document&& d) { writer.add(d); });                 // one at a time
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ftdist::data {

struct Document {
  std::vector<int64_t> ids;
  std::vector<int64_t> labels;  // same length; -100 where the token is not predicted
  int64_t line = 0;             // where it came from
};

// The byte-level tokenizer: token = byte value (0..255), then BOS 256 and EOS 257.
constexpr int64_t kByteBos = 256, kByteEos = 257, kByteVocab = 258;
std::vector<int64_t> byte_tokenize(const std::string& text);

class Tokenizer;

// Reads every line of `path`. `vocab` bounds the ids; text is tokenized by `tokenizer` (null: the
// byte-level tokenizer, which needs vocab >= 258).
// `progress`, when given, is called after each line with the bytes read so far, the file's size
// and the documents read.
using ReadProgress = std::function<void(uint64_t bytes, uint64_t total, size_t documents)>;
std::vector<Document> read_jsonl(const std::string& path, int64_t vocab, const std::string& what = "--data",
                                 const Tokenizer* tokenizer = nullptr, const ReadProgress& progress = {});

// The same, streaming: parses line by line and hands each document to `fn` as it is read (blank
// lines skipped), holding one line at a time. The same checks and messages as read_jsonl (including
// "<what>: '<path>' holds no documents" at the end). Returns the number of documents.
// `chat_all_turns`: conversations (`messages`) train on every token, not the assistant turns only.
size_t for_each_jsonl_document(const std::string& path, int64_t vocab, const std::string& what,
                               const Tokenizer* tokenizer, const std::function<void(Document&&)>& fn,
                               const ReadProgress& progress = {}, bool chat_all_turns = false);

// What a JSONL file holds, judged by its first non-blank line as parse_line reads it: token ids
// ("input_ids", whatever else the line holds), plain text ("text"), text whose prompt is masked
// ("prompt"/"completion", "messages"), or kUnknown (no such file, no line, or a line that is no JSON
// object: opening the data names it).
enum class JsonlKind { kUnknown, kTokenIds, kText, kMaskedText };
JsonlKind jsonl_kind(const std::string& path);
// Whether any line holds a prompt/completion or chat example (text data with masked examples after
// its first line): every line is searched, only those that mention "messages" or "prompt" parsed.
bool jsonl_masked_text_lines(const std::string& path);

// Whether any line's "labels" holds -100 (only lines containing "-100" are parsed).
bool jsonl_labels_mask(const std::string& path);

}  // namespace ftdist::data
