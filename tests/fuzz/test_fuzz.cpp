// A seeded mutation fuzzer over every parser of outside input: the safetensors header, the token
// file, config.json, the run config and JSONL lines. Each case starts from a valid input, applies a
// few random mutations (bit flips, byte insertions and deletions, truncation, splices of hostile
// fragments: huge numbers, deep nesting, NaN, negative sizes) and parses it. The only outcomes
// allowed are success and ftdist::Error; anything else (another exception type, a crash, a hang,
// and under FTDIST_SANITIZE an address or undefined-behaviour report) fails. Deterministic:
// FTDIST_FUZZ_SEED and FTDIST_FUZZ_CASES (per target) change the run.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>

#include "ftdist/core/error.h"
#include "ftdist/data/documents.h"
#include "ftdist/data/token_file.h"
#include "ftdist/io/safetensors.h"
#include "ftdist/plan/model_spec.h"
#include "ftdist/train/run_config.h"

using namespace ftdist;

namespace {

int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoll(v) : fallback;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

const char* kFragments[] = {"99999999999999999999", "-1", "1e308", "NaN", "-9223372036854775808", "[[[[[[[[[[[[",
                            "{\"a\":", "\"\\u0000\"", "\xff\xfe", "null", "true", "0", "4294967296", "[]", "{}",
                            "\"dtype\":\"F64\"", "\"shape\":[-3]", "\"data_offsets\":[0,99999999999]"};

// A few mutations of `seed`.
std::string mutate(const std::string& seed, std::mt19937_64& rng) {
  std::string s = seed;
  const int n = 1 + int(rng() % 4);
  for (int k = 0; k < n; ++k) {
    const size_t pos = s.empty() ? 0 : size_t(rng() % s.size());
    switch (rng() % 7) {
      case 0: if (!s.empty()) s[pos] = char(s[pos] ^ (1 << (rng() % 8))); break;             // flip a bit
      case 1: s.insert(pos, 1, char(rng() % 256)); break;                                      // insert a byte
      case 2: if (!s.empty()) s.erase(pos, 1 + rng() % 8); break;                              // delete bytes
      case 3: s.resize(pos); break;                                                            // truncate
      case 4: s.insert(pos, kFragments[rng() % (sizeof(kFragments) / sizeof(*kFragments))]); break;  // splice
      case 5: if (!s.empty()) s[pos] = "0123456789-.eE[]{}\",:"[rng() % 21]; break;             // a syntax byte
      default: s.insert(pos, std::string(1 + rng() % 5000, "[{"[rng() % 2])); break;           // deep nesting
    }
  }
  return s;
}

// Runs `parse` on `cases` mutations of the file `seed_path`; fails on anything but success or
// ftdist::Error. Prints how many cases ran and how many were refused.
void fuzz(const std::string& name, const std::string& seed_path, const std::function<void(const std::string&)>& parse) {
  const int64_t cases = env_int("FTDIST_FUZZ_CASES", 1500);
  std::mt19937_64 rng(uint64_t(env_int("FTDIST_FUZZ_SEED", 1)) * 1000003u + std::hash<std::string>{}(name));
  const std::string seed = read_file(seed_path);
  ASSERT_FALSE(seed.empty()) << seed_path;
  ASSERT_NO_THROW(parse(seed_path)) << name << ": the seed itself must parse";
  const std::string path = seed_path + ".case";
  int64_t refused = 0;
  for (int64_t i = 0; i < cases; ++i) {
    const std::string input = mutate(seed, rng);
    write_file(path, input);
    try {
      parse(path);
    } catch (const Error&) {
      ++refused;
    } catch (const std::exception& e) {
      write_file(seed_path + ".failing", input);
      FAIL() << name << " case " << i << ": " << typeid(e).name() << " instead of ftdist::Error: " << e.what()
             << " (input kept in " << seed_path << ".failing)";
    }
  }
  std::printf("fuzz %-12s %lld cases, %lld refused with ftdist::Error, %lld accepted\n", name.c_str(),
              static_cast<long long>(cases), static_cast<long long>(refused), static_cast<long long>(cases - refused));
}

std::string tmp(const std::string& name) { return ::testing::TempDir() + "/fuzz-" + name; }

}  // namespace

TEST(Fuzz, ConfigJson) {
  const std::string seed = tmp("config.json");
  write_file(seed, R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300, "max_position_embeddings": 128,
    "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 64}})");
  fuzz("config.json", seed, [](const std::string& p) { plan::model_from_hf_config(p); });
}

TEST(Fuzz, JsonlLines) {
  const std::string seed = tmp("data.jsonl");
  write_file(seed, "{\"input_ids\": [1, 2, 3, 4], \"labels\": [-100, 2, 3, 4]}\n{\"input_ids\": [5, 6]}\n"
                   "{\"text\": \"hello, world\"}\n");
  fuzz("jsonl", seed, [](const std::string& p) { data::read_jsonl(p, 300); });
}

TEST(Fuzz, RunConfig) {
  const std::string seed = tmp("run.toml");
  write_file(seed, "[model]\npreset = \"tiny\"\n[data]\ntrain = \"x.jsonl\"\nseq_len = 64\n[train]\nsteps = 10\n"
                   "micro_batch = 2\nlr = 1e-3\nwarmup_steps = 2\nschedule = \"cosine\"\n[parallel]\nshard = \"full\"\n"
                   "memory_limit = \"2GiB\"\nprefetch = 2\n[checkpoint]\nevery = 5\n[output]\ndir = \"runs/x\"\n");
  fuzz("run config", seed, [](const std::string& p) { train::load_run_config(p, {}); });
}

TEST(Fuzz, SafetensorsHeader) {
  const std::string seed = tmp("weights.safetensors");
  io::save_safetensors(seed, {{"a.weight", at::arange(12, at::kFloat).view({3, 4})}, {"b.bias", at::ones({5}, at::kBFloat16)}},
                       {{"format", "pt"}});
  fuzz("safetensors", seed, [](const std::string& p) {
    io::SafetensorsFile f(p);
    for (const auto& t : f.tensors()) f.read(t.name);  // every tensor the header claims
  });
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
  fuzz("token file", seed, [](const std::string& p) {
    data::TokenFile f(p, 300);
    for (int64_t d = 0; d < f.num_documents(); ++d)  // every token the offsets claim, checked
      for (int64_t t = f.doc_begin(d); t < f.doc_begin(d + 1); ++t) f.check_token(t, d);
  });
}
