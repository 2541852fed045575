// The fuzz suite's LibTorch-free parsers (config.json, JSONL lines, the token file): CI also runs
// these under AddressSanitizer and UBSan (scripts/fuzz_sanitized.sh). See fuzz.h.
#include "fuzz.h"
#include "ftdist/data/documents.h"
#include "ftdist/data/token_file.h"
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
