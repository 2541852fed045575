#include "ftdist/core/stop_signal.h"

#include <csignal>

namespace ftdist {
namespace {

constexpr int kSignals[] = {SIGTERM, SIGINT, SIGHUP};
volatile std::sig_atomic_t g_signal = 0;
volatile std::sig_atomic_t g_guards = 0;

extern "C" void note_stop_signal(int sig) {
  g_signal = sig;
  std::signal(sig, SIG_DFL);  // (async-signal-safe) a second one kills
}

using Handler = void (*)(int);
Handler g_previous[sizeof(kSignals) / sizeof(kSignals[0])];

}  // namespace

StopOnSignal::StopOnSignal() {
  if (g_guards++ > 0) return;  // (nested: the outermost one installs and restores)
  g_signal = 0;
  for (size_t i = 0; i < sizeof(kSignals) / sizeof(kSignals[0]); ++i) {
    g_previous[i] = std::signal(kSignals[i], note_stop_signal);
    if (g_previous[i] == SIG_IGN) std::signal(kSignals[i], SIG_IGN);
  }
}

StopOnSignal::~StopOnSignal() {
  if (--g_guards > 0) return;
  for (size_t i = 0; i < sizeof(kSignals) / sizeof(kSignals[0]); ++i)
    if (g_previous[i] != SIG_ERR) std::signal(kSignals[i], g_previous[i]);
}

void StopOnSignal::check() {
  if (g_guards > 0 && g_signal != 0) throw StoppedBySignal{int(g_signal)};
}

const char* stop_signal_name(int signal) {
  switch (signal) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
    default: return "a signal";
  }
}

}  // namespace ftdist
