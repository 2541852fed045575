// A seeded mutation fuzzer over every parser of outside input (the inputs of test_fuzz_text.cpp
// and test_fuzz_torch.cpp): each case starts from a valid input, applies a few random mutations
// (bit flips, byte insertions and deletions, truncation, splices of hostile fragments: huge
// numbers, deep nesting, NaN, negative sizes) and parses it. The only outcomes allowed are success
// and ftdist::Error; anything else (another exception type, a crash, a hang, and under
// FTDIST_SANITIZE an address or undefined-behaviour report) fails. Deterministic: FTDIST_FUZZ_SEED
// and FTDIST_FUZZ_CASES (per target) change the run.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <typeinfo>

#include "ftdist/core/error.h"

namespace ftdist::fuzz {

inline int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoll(v) : fallback;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

inline const char* kFragments[] = {"99999999999999999999", "-1", "1e308", "NaN", "-9223372036854775808", "[[[[[[[[[[[[",
                            "{\"a\":", "\"\\u0000\"", "\xff\xfe", "null", "true", "0", "4294967296", "[]", "{}",
                            "\"dtype\":\"F64\"", "\"shape\":[-3]", "\"data_offsets\":[0,99999999999]"};

// A few mutations of `seed`.
inline std::string mutate(const std::string& seed, std::mt19937_64& rng) {
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
inline void run_cases(const std::string& name, const std::string& seed_path, const std::function<void(const std::string&)>& parse) {
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
    } catch (const ftdist::Error&) {
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

inline std::string tmp(const std::string& name) { return ::testing::TempDir() + "/fuzz-" + name; }

}  // namespace ftdist::fuzz
