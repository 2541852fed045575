#include "ftdist/core/bytes.h"

#include <cctype>
#include <cmath>
#include <cstdio>

#include "ftdist/core/check.h"

namespace ftdist {

namespace {
std::string fixed(double value, int decimals, const char* unit) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f %s", decimals, value, unit);
  return buf;
}
}  // namespace

std::string format_gib(double bytes, int decimals) { return fixed(bytes / kGiB, decimals, "GiB"); }
std::string format_gb(double bytes, int decimals) { return fixed(bytes / kGB, decimals, "GB"); }

std::string format_bytes(double bytes, int decimals) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  double value = bytes;
  while (std::fabs(value) >= 1024.0 && unit < 4) {
    value /= 1024.0;
    ++unit;
  }
  if (unit == 0) return fixed(value, 0, "B");
  return fixed(value, decimals, kUnits[unit]);
}

uint64_t parse_bytes(const std::string& text, const std::string& what) {
  size_t pos = 0;
  while (pos < text.size() && (std::isdigit(static_cast<unsigned char>(text[pos])) || text[pos] == '.')) ++pos;
  FT_CHECK_ARG(pos > 0, what << ": expected a size like 64, 8K, 64M, 1G or 2GB, got '" << text << "'");
  double value = 0;
  size_t used = 0;
  try {
    value = std::stod(text.substr(0, pos), &used);
  } catch (const std::exception&) {
    used = 0;
  }
  FT_CHECK_ARG(used == pos, what << ": '" << text << "' is not a number with an optional unit");
  std::string unit = text.substr(pos);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "K" || unit == "KIB") scale = double(kKiB);
  else if (unit == "M" || unit == "MIB") scale = double(kMiB);
  else if (unit == "G" || unit == "GIB") scale = double(kGiB);
  else if (unit == "T" || unit == "TIB") scale = double(kGiB) * 1024.0;
  else if (unit == "KB") scale = 1e3;
  else if (unit == "MB") scale = 1e6;
  else if (unit == "GB") scale = 1e9;
  else if (unit == "TB") scale = 1e12;
  FT_CHECK_ARG(scale > 0, what << ": unknown unit '" << text.substr(pos)
                               << "' in '" << text << "' (use B, K, M, G, T, KiB..TiB or kB..TB)");
  double bytes = value * scale;
  FT_CHECK_ARG(bytes < 1.8e19, what << ": '" << text << "' is too large");
  return static_cast<uint64_t>(std::llround(bytes));
}

}  // namespace ftdist
