// Logging to stderr with a rank prefix and levels (stdout is for results). By default only rank 0
// prints info and debug; warnings and errors print on every rank. FTDIST_LOG_LEVEL=debug|info|warn|error and FTDIST_LOG_ALL_RANKS=1
// change that (read once, at set_rank()).
//
//   FT_LOG_INFO("bench comm: " << n << " ranks");  // "[ftdist r0] bench comm: 4 ranks"
#pragma once

#include <sstream>
#include <string>

namespace ftdist::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3 };

// Called once the rank is known (comm init). Also used by ftdist::Error to name the rank.
void set_rank(int rank);
int rank();  // -1 before set_rank()

void set_level(Level level);
Level level();
void set_all_ranks(bool all);

bool enabled(Level level);
void write(Level level, const std::string& message);

}  // namespace ftdist::log

#define FT_LOG_AT(lvl, msg)                                                                        \
  do {                                                                                             \
    if (::ftdist::log::enabled(lvl)) {                                                             \
      std::ostringstream ft_log_os_;                                                               \
      ft_log_os_ << msg;                                                                           \
      ::ftdist::log::write(lvl, ft_log_os_.str());                                                 \
    }                                                                                              \
  } while (0)
#define FT_LOG_DEBUG(msg) FT_LOG_AT(::ftdist::log::Level::Debug, msg)
#define FT_LOG_INFO(msg) FT_LOG_AT(::ftdist::log::Level::Info, msg)
#define FT_LOG_WARN(msg) FT_LOG_AT(::ftdist::log::Level::Warn, msg)
#define FT_LOG_ERROR(msg) FT_LOG_AT(::ftdist::log::Level::Error, msg)
