#include "ftdist/core/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

namespace ftdist::log {
namespace {
std::atomic<int> g_rank{-1};
std::atomic<int> g_level{static_cast<int>(Level::Info)};
std::atomic<bool> g_all_ranks{false};
std::once_flag g_env_once;

void read_env() {
  if (const char* lvl = std::getenv("FTDIST_LOG_LEVEL")) {
    if (!std::strcmp(lvl, "debug")) g_level = static_cast<int>(Level::Debug);
    else if (!std::strcmp(lvl, "info")) g_level = static_cast<int>(Level::Info);
    else if (!std::strcmp(lvl, "warn")) g_level = static_cast<int>(Level::Warn);
    else if (!std::strcmp(lvl, "error")) g_level = static_cast<int>(Level::Error);
  }
  if (const char* all = std::getenv("FTDIST_LOG_ALL_RANKS")) g_all_ranks = std::strcmp(all, "0") != 0;
}

const char* level_tag(Level level) {
  switch (level) {
    case Level::Debug: return "debug: ";
    case Level::Info: return "";
    case Level::Warn: return "warning: ";
    case Level::Error: return "error: ";
  }
  return "";
}
}  // namespace

void set_rank(int rank) {
  std::call_once(g_env_once, read_env);
  g_rank = rank;
}
int rank() { return g_rank; }
void set_level(Level level) { g_level = static_cast<int>(level); }
Level level() { return static_cast<Level>(g_level.load()); }
void set_all_ranks(bool all) { g_all_ranks = all; }

bool enabled(Level lvl) {
  std::call_once(g_env_once, read_env);
  if (static_cast<int>(lvl) < g_level) return false;
  if (lvl >= Level::Warn || g_all_ranks) return true;
  return g_rank <= 0;
}

void write(Level lvl, const std::string& message) {
  // Logs go to stderr so stdout carries only results (tables, --json). One fprintf per line so
  // lines of different ranks do not interleave mid-line.
  std::FILE* out = stderr;
  int r = g_rank;
  if (r >= 0) std::fprintf(out, "[ftdist r%d] %s%s\n", r, level_tag(lvl), message.c_str());
  else std::fprintf(out, "[ftdist] %s%s\n", level_tag(lvl), message.c_str());
  std::fflush(out);
}

}  // namespace ftdist::log
