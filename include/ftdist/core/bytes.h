// Byte formatting: binary (GiB, 2^30) for memory, decimal (GB, 10^9) for datasheets and bandwidth.
//   format_gib(80ull << 30) == "80.00 GiB";  format_gb(80e9) == "80.00 GB";  format_bytes(1536) == "1.50 KiB"
#pragma once

#include <cstdint>
#include <string>

namespace ftdist {

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;
constexpr double kGB = 1e9;

std::string format_gib(double bytes, int decimals = 2);  // always in GiB
std::string format_gb(double bytes, int decimals = 2);   // always in GB
std::string format_bytes(double bytes, int decimals = 2);  // B, KiB, MiB, GiB or TiB, whichever reads best

// Parses "64", "8K", "64M", "1G", "1.5GiB", "2GB" (K/M/G/T are binary; "kB/MB/GB/TB" decimal).
// Throws ftdist::Error(BadInput) naming `what` (the flag) on anything else.
uint64_t parse_bytes(const std::string& text, const std::string& what);

}  // namespace ftdist
