// FNV-1a over bytes: a small stable fingerprint for names and keys (run-config trajectory hashes,
// token-cache file names). Not for security.
//
//   uint64_t h = fnv1a64(text);
#pragma once

#include <cstdint>
#include <string>

namespace ftdist {

inline uint64_t fnv1a64(const std::string& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace ftdist
