// StopOnSignal: a signal while the guard lives is noted, check() throws, the default action comes
// back for a second signal, and the handlers from before are restored when it goes.
#include <gtest/gtest.h>

#include <csignal>

#include "ftdist/core/stop_signal.h"

namespace {
volatile std::sig_atomic_t g_own = 0;
extern "C" void own_handler(int sig) { g_own = sig; }
}  // namespace

TEST(StopOnSignal, ASignalIsNotedCheckedAndTheHandlersComeBack) {
  std::signal(SIGTERM, own_handler);
  std::signal(SIGHUP, SIG_IGN);
  {
    ftdist::StopOnSignal stop;
    EXPECT_NO_THROW(ftdist::StopOnSignal::check());
    std::raise(SIGHUP);  // (ignored before: stays ignored)
    EXPECT_NO_THROW(ftdist::StopOnSignal::check());
    std::raise(SIGTERM);
    try {
      ftdist::StopOnSignal::check();
      ADD_FAILURE() << "no StoppedBySignal";
    } catch (const ftdist::StoppedBySignal& s) {
      EXPECT_EQ(s.signal, SIGTERM);
    }
    EXPECT_EQ(g_own, 0) << "the guard's handler, not the one from before";
    // (a second SIGTERM would kill: the default action is back)
    struct sigaction now {};
    sigaction(SIGTERM, nullptr, &now);
    EXPECT_EQ(now.sa_handler, SIG_DFL);
  }
  EXPECT_NO_THROW(ftdist::StopOnSignal::check());  // no guard: nothing to stop
  std::raise(SIGTERM);
  EXPECT_EQ(g_own, SIGTERM) << "the handler from before is back";
  std::signal(SIGTERM, SIG_DFL);
  std::signal(SIGHUP, SIG_DFL);
  EXPECT_STREQ(ftdist::stop_signal_name(SIGINT), "SIGINT");
}
