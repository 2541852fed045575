// FNV-1a over bytes: a small stable fingerprint for names and keys (run-config trajectory hashes,
// token-cache file names and inputs, the ranks' input files). Not for security.
//
//   uint64_t h = fnv1a64(text);
//   uint64_t s = kFnv1a64Start; s = fnv1a64(piece_a, n_a, s); s = fnv1a64(piece_b, n_b, s);  // streamed
//   std::string text = hex64(h);   // 16 hex digits
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace ftdist {

constexpr uint64_t kFnv1a64Start = 1469598103934665603ull;

// `h` carried on over n more bytes (kFnv1a64Start for the first).
inline uint64_t fnv1a64(const void* data, size_t n, uint64_t h = kFnv1a64Start) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  for (size_t k = 0; k < n; ++k) h = (h ^ p[k]) * 1099511628211ull;
  return h;
}

inline uint64_t fnv1a64(const std::string& bytes) { return fnv1a64(bytes.data(), bytes.size()); }

inline std::string hex64(uint64_t h) {
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

}  // namespace ftdist
