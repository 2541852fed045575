// The fuzz suite's LibTorch-free parsers (config.json, JSONL lines, the token file, tokenizer.json
// with the texts it splits): CI also runs these under AddressSanitizer and UBSan
// (scripts/fuzz_sanitized.sh). See fuzz.h.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "fuzz.h"
#include "ftdist/data/documents.h"
#include "ftdist/data/token_file.h"
#include "ftdist/data/tokenizer.h"
#include "ftdist/plan/model_spec.h"

using namespace ftdist;
using fuzz::run_cases;
using fuzz::tmp;
using fuzz::write_file;

TEST(Fuzz, ConfigJson) {
  const std::string seed = tmp("config.json");
  write_file(seed, R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300, "max_position_embeddings": 128,
    "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 64}})");
  run_cases("config.json", seed, [](const std::string& p) { plan::model_from_hf_config(p); });
}

TEST(Fuzz, JsonlLines) {
  const std::string seed = tmp("data.jsonl");
  write_file(seed, "{\"input_ids\": [1, 2, 3, 4], \"labels\": [-100, 2, 3, 4]}\n{\"input_ids\": [5, 6]}\n"
                   "{\"text\": \"hello, world\"}\n");
  run_cases("jsonl", seed, [](const std::string& p) { data::read_jsonl(p, 300); });
}

TEST(Fuzz, TokenFile) {
  const std::string seed = tmp("tokens.ftok");
  {
    data::TokenFileWriter w(seed, 300);
    data::Document d;
    d.ids = {1, 2, 3, 4, 5};
    d.labels = {-100, 2, 3, 4, 5};
    w.add(d);
    d.ids = {6, 7, 8};
    d.labels = d.ids;
    w.add(d);
    w.finish();
  }
  run_cases("token file", seed, [](const std::string& p) {
    data::TokenFile f(p, 300);
    for (int64_t d = 0; d < f.num_documents(); ++d)  // every token the offsets claim, checked
      for (int64_t t = f.doc_begin(d); t < f.doc_begin(d + 1); ++t) f.check_token(t, d);
  });
}

// A byte-level BPE tokenizer.json (NFC, a Llama-3 style split regex, ByteLevel, merges, added tokens,
// a BOS post-processor), mutated, then made to encode texts that reach each of its parts: invalid
// UTF-8, combining marks, long runs, the added tokens. The regex in it is mutated too.
TEST(Fuzz, TokenizerJson) {
  nlohmann::json vocab = nlohmann::json::object();
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {  // GPT-2's byte symbols
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const char32_t c = printable ? char32_t(b) : next++;
    std::string u = c < 0x80 ? std::string(1, char(c)) : std::string{char(0xC0 | (c >> 6)), char(0x80 | (c & 0x3F))};
    vocab[u] = b;
  }
  vocab["\u0120t"] = 256, vocab["he"] = 257, vocab["\u0120the"] = 258;
  const nlohmann::json tok = {
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"\u0120 t", "h e", "\u0120t he"}}, {"ignore_merges", true}}},
      {"added_tokens", {{{"id", 259}, {"content", "<|im_end|>"}, {"special", true}},
                        {{"id", 260}, {"content", "<x>"}, {"lstrip", true}, {"rstrip", true}, {"single_word", true}}}},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers",
          {{{"type", "Split"}, {"behavior", "Isolated"}, {"invert", false},
            {"pattern", {{"Regex", "(?i:'s|'t|'re)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}}},
           {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"post_processor", {{"type", "TemplateProcessing"}, {"single", {{{"SpecialToken", {{"id", "<|im_end|>"}}}}, {{"Sequence", {{"id", "A"}}}}}},
                          {"special_tokens", {{"<|im_end|>", {{"id", "<|im_end|>"}, {"ids", {259}}}}}}}}};
  const std::string seed = tmp("tokenizer.json");
  write_file(seed, tok.dump());
  const std::string texts[] = {"Hello the world, it's 12345 <|im_end|> a <x> b\n\n", "caf\xC3\xA9 cafe\xCC\x81 \xFF\xFE \xE2\x80",
                               std::string(3000, ' ') + "x" + std::string(2000, '\n'), std::string(5000, 'a') + "'S"};
  run_cases("tokenizer", seed, [&](const std::string& p) {
    const std::string path = p + ".json";  // (load_tokenizer knows a tokenizer.json by its name)
    std::filesystem::copy_file(p, path, std::filesystem::copy_options::overwrite_existing);
    const auto t = data::load_tokenizer(path, "fuzz");
    for (const std::string& text : texts)
      for (const data::TokenAt& a : t->encode_at(text))
        if (a.start > text.size() || a.end > text.size()) throw std::logic_error("a token outside the text");
  });
}
