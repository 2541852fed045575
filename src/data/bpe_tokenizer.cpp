// Byte-level BPE tokenizer.json (data/bpe_tokenizer.h).
#include "bpe_tokenizer.h"

#include <algorithm>
#include <array>
#include <functional>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ftdist/core/check.h"
#include "ftdist/core/json.h"
#include "ftdist/core/text_file.h"
#include "ftdist/data/chat_format.h"
#include "split_regex.h"
#include "unicode.h"

namespace ftdist::data {
namespace {

using json = nlohmann::json;

// GPT-2's byte -> character table (UTF-8): the printable bytes ! .. ~, ¡ .. ¬, ® .. ÿ stand for
// themselves, the others for U+0100 + n in byte order.
const std::array<std::string, 256>& byte_symbols() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      unicode::encode(printable ? char32_t(b) : next++, t[size_t(b)]);
    }
    return t;
  }();
  return table;
}

std::string byte_level(const std::string& bytes) {
  std::string out;
  for (unsigned char b : bytes) out += byte_symbols()[b];
  return out;
}

// The GPT-2 split ByteLevel applies with use_regex (tokenizers' own pattern).
const char* const kGpt2Pattern = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Text being pre-tokenized: its bytes and, for each, the byte of the original text it came from.
struct Piece {
  std::string text;
  std::vector<size_t> origin;
};

Piece slice(const Piece& p, size_t a, size_t b) {
  return {p.text.substr(a, b - a), std::vector<size_t>(p.origin.begin() + long(a), p.origin.begin() + long(b))};
}

// One pre-tokenizer step: a Split, or ByteLevel (the bytes-to-symbols step, with its prefix space and
// GPT-2 split).
struct Step {
  enum Kind { Split, ByteLevel } kind = Split;
  std::shared_ptr<const SplitRegex> regex;  // Split's "Regex"; ByteLevel's GPT-2 split with use_regex
  std::string literal;                      // Split's "String"
  Behavior behavior = Behavior::Isolated;
  bool invert = false, prefix_space = false;
};

using Segment = std::pair<std::pair<size_t, size_t>, bool>;  // bytes [a, b), whether the pattern matched them

// `text` cut where the step's pattern matches, as tokenizers' find_matches: the matches (an empty
// one too, a split point of its own) and the text between them, in order, covering it all.
std::vector<Segment> find_matches(const Step& s, const std::string& text) {
  std::vector<std::pair<size_t, size_t>> found;
  if (s.regex) {
    const unicode::Points p = unicode::decode(text);
    size_t from = 0, b = 0, e = 0, steps = 0, last = size_t(-1);
    while (from <= p.cps.size() && s.regex->find(p.cps, from, b, e, steps)) {
      if (b < e || b != last) found.push_back({p.starts[b], p.starts[e]});  // (no empty match where one just ended)
      last = e;
      from = e > b ? e : b + 1;
    }
  } else {
    for (size_t at = text.find(s.literal); at != std::string::npos; at = text.find(s.literal, at + s.literal.size()))
      found.push_back({at, at + s.literal.size()});
  }
  std::vector<Segment> out;
  size_t pos = 0;
  for (const auto& [b, e] : found) {
    if (b > pos) out.push_back({{pos, b}, s.invert});
    out.push_back({{b, e}, !s.invert});
    pos = e;
  }
  if (pos < text.size() || out.empty()) out.push_back({{pos, text.size()}, s.invert});
  return out;
}

// The pieces a Split step makes of `p` (tokenizers' NormalizedString::split, empty pieces dropped).
void split(const Step& s, const Piece& p, std::vector<Piece>& out) {
  std::vector<Segment> seg = find_matches(s, p.text);
  std::vector<std::pair<size_t, size_t>> keep;
  bool previous = false;
  switch (s.behavior) {
    case Behavior::Isolated:
      for (const Segment& x : seg) keep.push_back(x.first);
      break;
    case Behavior::Removed:
      for (const Segment& x : seg)
        if (!x.second) keep.push_back(x.first);
      break;
    case Behavior::Contiguous:
      for (const Segment& x : seg) {
        if (x.second == previous && !keep.empty()) keep.back().second = x.first.second;
        else keep.push_back(x.first);
        previous = x.second;
      }
      break;
    case Behavior::MergedWithPrevious:
      for (const Segment& x : seg) {
        if (x.second && !previous && !keep.empty()) keep.back().second = x.first.second;
        else keep.push_back(x.first);
        previous = x.second;
      }
      break;
    case Behavior::MergedWithNext:
      for (auto it = seg.rbegin(); it != seg.rend(); ++it) {
        if (it->second && !previous && !keep.empty()) keep.back().first = it->first.first;
        else keep.push_back(it->first);
        previous = it->second;
      }
      std::reverse(keep.begin(), keep.end());
      break;
  }
  for (const auto& [a, b] : keep)
    if (b > a) out.push_back(slice(p, a, b));
}

// An added token (tokenizer.json "added_tokens"): split out of the text before anything else.
struct Added {
  std::string text;
  int64_t id;
  bool lstrip, rstrip, single_word;
  bool normalized;  // matched in the normalized text (after the others, which match the text as given)
};

// A token of a piece: its id and the piece's bytes [begin, end) it stands for.
struct Span {
  int64_t id;
  size_t begin, end;
};

// The BPE model: merges by rank over ids, and the byte symbols' ids.
struct Bpe {
  std::unordered_map<std::string, int64_t> vocab;
  std::unordered_map<uint64_t, std::pair<uint32_t, int64_t>> merges;  // (left << 32 | right) -> rank, merged id
  std::array<int64_t, 256> byte_id{};                                 // -1: not in the vocabulary
  std::array<std::vector<int64_t>, 256> fallback;                     // byte_fallback's <0xHH> ids (empty: none)
  bool ignore_merges = false, fuse_unk = false;
  int64_t unk = -1;

  struct Sym {
    int64_t id;
    size_t start, end;  // the bytes of the piece it stands for
    long prev, next;
    bool merged_away;
  };

  // The tokens of one pre-tokenized piece (bytes), each with the bytes of the piece it spans.
  void encode(const std::string& word, std::vector<Span>& out) const {
    if (ignore_merges) {
      const auto it = vocab.find(byte_level(word));
      if (it != vocab.end()) {
        out.push_back({it->second, 0, word.size()});
        return;
      }
    }
    std::vector<Sym> syms;
    for (size_t i = 0; i < word.size(); ++i) {
      const unsigned char b = static_cast<unsigned char>(word[i]);
      auto add = [&](int64_t id) { syms.push_back({id, i, i + 1, long(syms.size()) - 1, long(syms.size()) + 1, false}); };
      if (byte_id[b] >= 0) {
        add(byte_id[b]);
      } else if (!fallback[b].empty()) {  // byte_fallback: the symbol's UTF-8 bytes as <0xHH> tokens, each for byte i
        for (int64_t id : fallback[b]) add(id);
      } else if (unk >= 0) {
        if (fuse_unk && !syms.empty() && syms.back().id == unk && syms.back().end == i) syms.back().end = i + 1;
        else add(unk);
      }  // (else dropped, as tokenizers drops a character without a token and without unk_token)
    }
    if (!syms.empty()) syms.back().next = -1;
    merge(syms);
    for (long i = syms.empty() ? -1 : 0; i >= 0; i = syms[size_t(i)].next) {
      const Sym& s = syms[size_t(i)];
      out.push_back({s.id, s.start, s.end});
    }
  }

  // Merges the pair of lowest rank (the leftmost of equal ranks) until no pair has a merge.
  void merge(std::vector<Sym>& syms) const {
    struct Cand {
      uint32_t rank;
      long pos;
      int64_t id;
      bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> queue;
    auto pair_at = [&](long pos) {
      if (pos < 0 || syms[size_t(pos)].next < 0) return;
      const auto it = merges.find(uint64_t(syms[size_t(pos)].id) << 32 | uint64_t(syms[size_t(syms[size_t(pos)].next)].id));
      if (it != merges.end()) queue.push({it->second.first, pos, it->second.second});
    };
    for (long i = 0; i < long(syms.size()); ++i) pair_at(i);
    while (!queue.empty()) {
      const Cand c = queue.top();
      queue.pop();
      Sym& left = syms[size_t(c.pos)];
      if (left.merged_away || left.next < 0) continue;  // no right neighbour any more
      Sym& right = syms[size_t(left.next)];
      const auto it = merges.find(uint64_t(left.id) << 32 | uint64_t(right.id));
      if (it == merges.end() || it->second.second != c.id) continue;  // the pair changed since
      left.id = c.id;
      left.end = right.end;
      right.merged_away = true;
      left.next = right.next;
      if (left.next >= 0) syms[size_t(left.next)].prev = c.pos;
      pair_at(left.prev);
      pair_at(c.pos);
    }
  }
};

// A word character, as tokenizers' \w (letters, marks, decimal and letter numbers, connector
// punctuation such as '_'): an added token marked single_word does not match beside one.
bool word_char(char32_t c) {
  const unicode::Category k = unicode::category(c);
  const char m = unicode::major(k);
  return m == 'L' || m == 'M' || k == unicode::Nd || k == unicode::Nl || k == unicode::Pc;
}

class BpeTokenizer : public Tokenizer {
 public:
  BpeTokenizer(const std::string& path, const std::string& what) : path_(path), where_(what + ": " + path) {
    FT_CHECK_ARG(file_exists(path), what << ": '" << path << "' does not exist (expected a tokenizer.json)");
    const json j = json::parse(read_text_file(path, what), nullptr, false);
    need(!j.is_discarded() && j.is_object(), "", "is not a JSON object");
    need(j.contains("model"), "", "has no \"model\": not a tokenizer.json");
    read_model(j["model"]);
    if (j.contains("added_tokens")) read_added(j["added_tokens"]);
    if (j.contains("normalizer")) read_normalizer(j["normalizer"]);
    need(j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null(), "pre_tokenizer",
         "is missing: a byte-level BPE tokenizer.json has a ByteLevel pre-tokenizer (a SentencePiece-style one, as "
         "Llama-2's, reads from its tokenizer.model)");
    read_pre_tokenizer(j["pre_tokenizer"], "pre_tokenizer");
    need(byte_level_, "pre_tokenizer", "has no ByteLevel step: ftdist reads byte-level BPE tokenizer.json files (Llama-3, "
         "Qwen2, GPT-2); a SentencePiece-style one, as Llama-2's, reads from its tokenizer.model");
    if (j.contains("post_processor")) read_post_processor(j["post_processor"], "post_processor");
    for (const std::vector<int64_t>* ids : {&prefix_, &suffix_})
      for (int64_t id : *ids) vocab_size_ = std::max(vocab_size_, id + 1);
  }

  std::vector<int64_t> encode(const std::string& text) const override {
    std::vector<int64_t> out(prefix_);
    for (const TokenAt& t : encode_at(text)) out.push_back(t.id);
    out.insert(out.end(), suffix_.begin(), suffix_.end());
    return out;
  }

  // The added tokens that match the text as given split it first (pass 1); each piece between them
  // is normalized and split at the normalized added tokens (pass 2), and what is left goes through
  // the pre-tokenizer and the merges.
  std::vector<TokenAt> encode_at(const std::string& text) const override {
    std::vector<TokenAt> out;
    split_added(text, false, [&](size_t a, size_t b) { encode_normalized(text.substr(a, b - a), a, out); },
                [&](const Added& t, size_t a, size_t b) { out.push_back({t.id, a, b}); });
    return out;
  }

  int64_t piece_id(const std::string& piece) const override {
    for (const Added& a : added_)
      if (a.text == piece) return a.id;
    const auto it = bpe_.vocab.find(byte_level(piece));
    return it == bpe_.vocab.end() ? -1 : it->second;
  }
  int64_t vocab_size() const override { return vocab_size_; }
  int64_t bos() const override { return prefix_.size() == 1 ? prefix_[0] : -1; }
  int64_t eos() const override { return suffix_.size() == 1 ? suffix_[0] : -1; }
  std::vector<int64_t> opening() const override { return prefix_; }
  std::vector<int64_t> closing() const override { return suffix_; }
  void add_special_tokens(std::vector<SpecialToken>& tokens, const std::string& config) override {
    std::vector<SpecialToken*> fresh, named;  // in neither the added tokens nor the vocabulary
    for (SpecialToken& t : tokens) {
      const auto have = std::find_if(added_.begin(), added_.end(), [&](const Added& a) { return a.text == t.text; });
      if (have != added_.end()) {  // (the config's added_tokens_decoder flags win, as in Transformers)
        if (t.declared) have->lstrip = t.lstrip, have->rstrip = t.rstrip;
        t.id = have->id;
        continue;
      }
      // (a piece of the vocabulary keeps its id: looked up as written, as tokenizers looks it up)
      const auto known = bpe_.vocab.find(t.text);
      if (known == bpe_.vocab.end()) {
        (t.declared ? fresh : named).push_back(&t);
        continue;
      }
      t.id = known->second;
      add(t);
    }
    // A token only the config names takes the next free id in Transformers: added_tokens_decoder ids
    // that say otherwise (a gap, or another token's id) are refused rather than trained on as a
    // different token. The named ones follow, numbered in the config's order.
    std::sort(fresh.begin(), fresh.end(), [](const SpecialToken* a, const SpecialToken* b) { return a->id < b->id; });
    for (SpecialToken* t : fresh) {
      FT_CHECK_ARG(t->id == vocab_size_, config << ": added_tokens_decoder gives \"" << t->text << "\" the id "
                                         << t->id << ", which " << path_ << " does not hold; Transformers numbers it " << vocab_size_
                                         << " (the next free id): add it to tokenizer.json's added_tokens, or tokenize with "
                                            "scripts/tokenize_hf.py");
      add(*t);
    }
    for (SpecialToken* t : named) {
      t->id = vocab_size_;
      add(*t);
    }
    std::stable_sort(added_.begin(), added_.end(), [](const Added& a, const Added& b) { return a.text.size() > b.text.size(); });
  }
  std::string name() const override { return "the tokenizer.json " + path_; }
  bool post_processed() const override { return true; }

 private:
  // A special token of tokenizer_config.json as an added token (its id set).
  void add(const SpecialToken& t) {
    added_.push_back({t.text, t.id, t.lstrip, t.rstrip, t.single_word, t.normalized});
    added_first_[static_cast<unsigned char>(t.text[0])] = true;
    vocab_size_ = std::max(vocab_size_, t.id + 1);
  }

  // `hint`: the file may be valid for Transformers, only of a kind ftdist does not read.
  void need(bool ok, const std::string& key, const std::string& what, bool hint = true) const {
    FT_CHECK_ARG(ok, where_ << ": " << (key.empty() ? "" : "\"" + key + "\" ") << what
                            << (key.empty() || !hint ? "" : "; tokenize with scripts/tokenize_hf.py instead"));
  }

  // j[name]: true or false (`fallback` where absent or null); a string ("" where absent).
  bool flag(const json& j, const char* name, bool fallback, const std::string& key) const {
    return json_flag(j, name, fallback, where_, key);
  }
  std::string text(const json& j, const char* name, const std::string& key) const {
    if (!j.is_object() || !j.contains(name) || j[name].is_null()) return "";
    need(j[name].is_string(), key + "." + name, "must be a string, got " + json_excerpt(j[name]), false);
    return j[name].get<std::string>();
  }

  int64_t id_of(const std::string& token, const std::string& key) const {
    const auto it = bpe_.vocab.find(token);
    need(it != bpe_.vocab.end(), key, "names \"" + token + "\", which is not in model.vocab");
    return it->second;
  }

  void read_model(const json& m) {
    need(m.is_object(), "model", "must be an object");
    const std::string type = m.contains("type") ? text(m, "type", "model") : m.contains("merges") ? "BPE" : "";
    need(type == "BPE", "model.type", "is \"" + type + "\": ftdist reads byte-level BPE tokenizer.json files (Llama-3, Qwen2, GPT-2)");
    need(!m.contains("dropout") || m["dropout"].is_null() || (m["dropout"].is_number() && m["dropout"].get<double>() == 0.0),
         "model.dropout", "is set: BPE dropout draws tokens at random");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
      need(!m.contains(key) || m[key].is_null() || m[key] == "", std::string("model.") + key, "is set (not a byte-level BPE)");
    need(m.contains("vocab") && m["vocab"].is_object(), "model.vocab", "must be an object of token -> id");
    for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
      need(it->is_number_integer() && it->get<int64_t>() >= 0, "model.vocab",
           "gives \"" + it.key() + "\" the id " + json_excerpt(*it) + "; expected an integer >= 0");
      bpe_.vocab[it.key()] = it->get<int64_t>();
      vocab_size_ = std::max(vocab_size_, it->get<int64_t>() + 1);
    }
    const std::string unk = text(m, "unk_token", "model");
    if (!unk.empty()) bpe_.unk = id_of(unk, "model.unk_token");
    bpe_.ignore_merges = flag(m, "ignore_merges", false, "model");
    bpe_.fuse_unk = flag(m, "fuse_unk", false, "model");
    const bool byte_fallback = flag(m, "byte_fallback", false, "model");
    read_merges(m.contains("merges") ? m["merges"] : json::array());
    for (int b = 0; b < 256; ++b) {
      const auto it = bpe_.vocab.find(byte_symbols()[size_t(b)]);
      bpe_.byte_id[size_t(b)] = it == bpe_.vocab.end() ? -1 : it->second;
      if (it != bpe_.vocab.end() || !byte_fallback) continue;
      for (unsigned char u : byte_symbols()[size_t(b)]) {  // byte_fallback: <0xHH> of each UTF-8 byte of the symbol
        char name[8];
        std::snprintf(name, sizeof(name), "<0x%02X>", u);
        const auto f = bpe_.vocab.find(name);
        if (f == bpe_.vocab.end()) {
          bpe_.fallback[size_t(b)].clear();
          break;
        }
        bpe_.fallback[size_t(b)].push_back(f->second);
      }
    }
  }

  // "merges": ["left right", ...] or [["left", "right"], ...]; the rank is the place in the list.
  void read_merges(const json& merges) {
    need(merges.is_array(), "model.merges", "must be a list");
    for (size_t k = 0; k < merges.size(); ++k) {
      const json& e = merges[k];
      std::string left, right;
      if (e.is_string()) {
        const std::string s = e.get<std::string>();
        const size_t space = s.find(' ');
        need(space != std::string::npos && s.find(' ', space + 1) == std::string::npos, "model.merges",
             "entry " + std::to_string(k) + " is \"" + s + "\"; expected two tokens separated by one space");
        left = s.substr(0, space), right = s.substr(space + 1);
      } else {
        need(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string(), "model.merges",
             "entry " + std::to_string(k) + " is " + json_excerpt(e) + "; expected \"left right\" or [\"left\", \"right\"]");
        left = e[0].get<std::string>(), right = e[1].get<std::string>();
      }
      const std::string key = "model.merges entry " + std::to_string(k);
      const int64_t a = id_of(left, key), b = id_of(right, key), merged = id_of(left + right, key);
      bpe_.merges[uint64_t(a) << 32 | uint64_t(b)] = {uint32_t(k), merged};
    }
  }

  void read_added(const json& list) {
    need(list.is_array(), "added_tokens", "must be a list");
    for (const json& t : list) {
      need(t.is_object() && t.contains("id") && t["id"].is_number_integer() && t["id"].get<int64_t>() >= 0 && t.contains("content") &&
               t["content"].is_string() && !t["content"].get<std::string>().empty(),
           "added_tokens", "holds " + json_excerpt(t) + "; expected {\"id\": integer >= 0, \"content\": non-empty string, ...}");
      // (a token the model's vocabulary already holds keeps the vocabulary's id, as in tokenizers)
      const auto known = bpe_.vocab.find(t["content"].get<std::string>());
      const int64_t id = known != bpe_.vocab.end() ? known->second : t["id"].get<int64_t>();
      const bool special = flag(t, "special", false, "added_tokens[]");
      added_.push_back({t["content"].get<std::string>(), id, flag(t, "lstrip", false, "added_tokens[]"),
                        flag(t, "rstrip", false, "added_tokens[]"), flag(t, "single_word", false, "added_tokens[]"),
                        flag(t, "normalized", !special, "added_tokens[]")});
      vocab_size_ = std::max(vocab_size_, added_.back().id + 1);
      added_first_[static_cast<unsigned char>(added_.back().text[0])] = true;
    }
    std::stable_sort(added_.begin(), added_.end(), [](const Added& a, const Added& b) { return a.text.size() > b.text.size(); });
  }

  void read_normalizer(const json& n) {
    if (n.is_null()) return;
    const std::string type = text(n, "type", "normalizer");
    if (type == "Sequence" && n.contains("normalizers") && n["normalizers"].is_array()) {
      for (const json& k : n["normalizers"]) read_normalizer(k);
      return;
    }
    need(type == "NFC", "normalizer", "is \"" + type + "\": ftdist applies NFC only");
    nfc_ = true;
  }

  void read_pre_tokenizer(const json& p, const std::string& key) {
    const std::string type = text(p, "type", key);
    if (type == "Sequence" && p.contains("pretokenizers") && p["pretokenizers"].is_array()) {
      for (size_t k = 0; k < p["pretokenizers"].size(); ++k)
        read_pre_tokenizer(p["pretokenizers"][k], key + ".pretokenizers[" + std::to_string(k) + "]");
      return;
    }
    need(type == "Split" || type == "ByteLevel", key + ".type",
         "is \"" + type + "\": ftdist's pre-tokenizer applies Split and ByteLevel (in a Sequence)");
    need(!byte_level_, key, "comes after ByteLevel: a split of byte-level symbols");
    Step s;
    if (type == "ByteLevel") {
      s.kind = Step::ByteLevel;
      s.prefix_space = flag(p, "add_prefix_space", false, key);
      if (flag(p, "use_regex", true, key)) s.regex = std::make_shared<const SplitRegex>(kGpt2Pattern, where_ + " " + key);
      byte_level_ = true;
    } else {
      const json pattern = p.contains("pattern") ? p["pattern"] : json();
      if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string())
        s.regex = std::make_shared<const SplitRegex>(pattern["Regex"].get<std::string>(), where_ + " " + key + ".pattern");
      else if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string() && pattern["String"] != "")
        s.literal = pattern["String"].get<std::string>();
      else
        need(false, key + ".pattern", "is " + json_excerpt(pattern) + "; expected {\"Regex\": ...} or {\"String\": non-empty}");
      static const std::pair<const char*, Behavior> kBehaviors[] = {
          {"Removed", Behavior::Removed}, {"Isolated", Behavior::Isolated}, {"MergedWithPrevious", Behavior::MergedWithPrevious},
          {"MergedWithNext", Behavior::MergedWithNext}, {"Contiguous", Behavior::Contiguous}};
      const std::string behavior = text(p, "behavior", key);
      bool known = false;
      for (const auto& [name, b] : kBehaviors)
        if (behavior == name) s.behavior = b, known = true;
      need(known, key + ".behavior", "is \"" + behavior + "\"; expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous");
      s.invert = flag(p, "invert", false, key);
    }
    steps_.push_back(std::move(s));
  }

  // The tokens a text starts and ends with: TemplateProcessing's "single" around "A", Roberta's /
  // Bert's cls and sep; ByteLevel adds none.
  void read_post_processor(const json& p, const std::string& key) {
    if (p.is_null()) return;
    const std::string type = text(p, "type", key);
    if (type == "Sequence" && p.contains("processors") && p["processors"].is_array()) {
      for (size_t k = 0; k < p["processors"].size(); ++k)
        read_post_processor(p["processors"][k], key + ".processors[" + std::to_string(k) + "]");
    } else if (type == "TemplateProcessing") {
      need(p.contains("single") && p["single"].is_array(), key + ".single", "must be a list");
      bool after = false;
      for (const json& e : p["single"]) {
        if (e.contains("Sequence")) {
          after = true;
          continue;
        }
        json ids;  // {"SpecialToken": {"id": NAME}} -> special_tokens[NAME].ids
        const json* t = e.is_object() && e.contains("SpecialToken") && e["SpecialToken"].is_object() ? &e["SpecialToken"] : nullptr;
        if (t && t->contains("id") && (*t)["id"].is_string() && p.contains("special_tokens") && p["special_tokens"].is_object()) {
          const json& specials = p["special_tokens"];
          const auto it = specials.find((*t)["id"].get<std::string>());
          if (it != specials.end() && it->is_object() && it->contains("ids")) ids = (*it)["ids"];
        }
        need(ids.is_array(), key + ".single", "holds " + json_excerpt(e) + ", not a special token of \"special_tokens\"");
        for (const json& id : ids) {
          need(id.is_number_integer() && id.get<int64_t>() >= 0, key + ".special_tokens", "gives the id " + json_excerpt(id) + "; expected an integer >= 0");
          (after ? suffix_ : prefix_).push_back(id.get<int64_t>());
        }
      }
    } else if (type == "RobertaProcessing" || type == "BertProcessing") {
      need(p.contains("cls") && p["cls"].is_array() && p["cls"].size() == 2 && p.contains("sep") && p["sep"].is_array() &&
               p["sep"].size() == 2,
           key, "needs \"cls\" and \"sep\" as [token, id]");
      need(p["cls"][1].is_number_integer() && p["sep"][1].is_number_integer() && p["cls"][1].get<int64_t>() >= 0 &&
               p["sep"][1].get<int64_t>() >= 0,
           key, "needs ids >= 0 in \"cls\" and \"sep\"");
      prefix_.push_back(p["cls"][1].get<int64_t>());
      suffix_.push_back(p["sep"][1].get<int64_t>());
    } else {
      need(type == "ByteLevel", key + ".type", "is \"" + type + "\"; expected TemplateProcessing, ByteLevel or a Sequence of them");
    }
  }

  // Splits `text` at the added tokens of one pass (normalized: the ones matched in the normalized
  // text), as tokenizers does: the leftmost longest match, then on after it; a single_word token
  // beside a word character is no match (and no shorter one is tried there). plain(a, b) gets the
  // bytes between tokens, token(t, a, b) each token with the whitespace lstrip / rstrip gave it.
  void split_added(const std::string& text, bool normalized, const std::function<void(size_t, size_t)>& plain,
                   const std::function<void(const Added&, size_t, size_t)>& token) const {
    size_t pos = 0, from = 0;  // `from`: where the text not yet handed on starts
    while (pos < text.size()) {
      const Added* a = added_first_[static_cast<unsigned char>(text[pos])] ? longest_at(text, pos, normalized) : nullptr;
      if (!a) {
        ++pos;
        continue;
      }
      const size_t end = pos + a->text.size();
      if (a->single_word && ((pos > 0 && word_char(point_at(text, previous_point(text, pos)))) ||
                             (end < text.size() && word_char(point_at(text, end))))) {
        pos = end;
        continue;
      }
      size_t begin = pos;
      if (a->lstrip)
        while (begin > from && space_before(text, begin)) begin = previous_point(text, begin);
      pos = end;
      if (a->rstrip)
        while (pos < text.size() && unicode::is_white_space(point_at(text, pos))) pos = next_point(text, pos);
      if (begin > from) plain(from, begin);
      token(*a, begin, pos);
      from = pos;
    }
    if (text.size() > from) plain(from, text.size());
  }

  const Added* longest_at(const std::string& text, size_t pos, bool normalized) const {
    for (const Added& a : added_)  // (longest first)
      if (a.normalized == normalized && text.compare(pos, a.text.size(), a.text) == 0) return &a;
    return nullptr;
  }

  static char32_t point_at(const std::string& text, size_t at) {
    size_t n = 1;
    while (n < 4 && at + n < text.size() && (static_cast<unsigned char>(text[at + n]) & 0xC0) == 0x80) ++n;
    const unicode::Points p = unicode::decode(text.substr(at, n));
    return p.cps.empty() ? 0 : p.cps[0];
  }
  static size_t next_point(const std::string& text, size_t at) {
    do ++at;
    while (at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80);
    return at;
  }
  static size_t previous_point(const std::string& text, size_t at) {
    do --at;
    while (at > 0 && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80);
    return at;
  }
  static bool space_before(const std::string& text, size_t at) {
    return at > 0 && unicode::is_white_space(point_at(text, previous_point(text, at)));
  }

  // The tokens of text between the added tokens of pass 1, starting at byte `at` of the text
  // encode_at() got: normalized, then split at the normalized added tokens.
  void encode_normalized(const std::string& text, size_t at, std::vector<TokenAt>& out) const {
    Piece whole;
    if (nfc_) {
      unicode::Normalized n = unicode::nfc(text);
      whole.text = std::move(n.text);
      whole.origin = std::move(n.origin);
    } else {
      whole.text = text;
      whole.origin.resize(text.size());
      for (size_t i = 0; i < text.size(); ++i) whole.origin[i] = i;
    }
    for (size_t& o : whole.origin) o += at;
    split_added(whole.text, true, [&](size_t a, size_t b) { encode_piece(slice(whole, a, b), out); },
                [&](const Added& t, size_t a, size_t b) { out.push_back({t.id, whole.origin[a], whole.origin[b - 1] + 1}); });
  }

  // The tokens of normalized text holding no added token: pre-tokenized, then merged.
  void encode_piece(Piece whole, std::vector<TokenAt>& out) const {
    std::vector<Piece> pieces{std::move(whole)}, next;
    for (const Step& s : steps_) {
      next.clear();
      for (Piece& p : pieces) {
        if (s.kind == Step::Split) {
          split(s, p, next);
          continue;
        }
        if (s.prefix_space && p.text[0] != ' ') {  // ByteLevel's prefix space: on each piece, at its first byte
          p.text.insert(p.text.begin(), ' ');
          p.origin.insert(p.origin.begin(), p.origin[0]);
        }
        if (s.regex) split(s, p, next);
        else next.push_back(std::move(p));
      }
      pieces.swap(next);
    }
    for (const Piece& p : pieces)
      for (const Span& t : word(p.text)) out.push_back({t.id, p.origin[t.begin], p.origin[t.end - 1] + 1});
  }

  // BPE of one piece, remembered (a corpus repeats its words).
  const std::vector<Span>& word(const std::string& w) const {
    const auto it = cache_.find(w);
    if (it != cache_.end()) return it->second;
    if (cache_.size() >= 200000) cache_.clear();
    std::vector<Span> ids;
    bpe_.encode(w, ids);
    return cache_.emplace(w, std::move(ids)).first->second;
  }

  std::string path_, where_;
  Bpe bpe_;
  std::vector<Added> added_;  // longest first
  bool added_first_[256] = {};  // the first bytes of the added tokens: other bytes are passed over at once
  bool nfc_ = false, byte_level_ = false;
  std::vector<Step> steps_;
  std::vector<int64_t> prefix_, suffix_;
  int64_t vocab_size_ = 0;
  mutable std::unordered_map<std::string, std::vector<Span>> cache_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::string& path, const std::string& what) {
  return std::make_unique<BpeTokenizer>(path, what);
}

}  // namespace ftdist::data
