// Stopping a command that writes its output under temporary names (prepare-data, export) on SIGTERM,
// SIGINT or SIGHUP without leaving the temporaries behind.
//
// While a StopOnSignal lives, the first such signal is only noted (and the signal's default action
// restored, so a second one kills at once: a command stuck where it never checks still stops). The
// command's next StopOnSignal::check() throws StoppedBySignal, which unwinds through the writers,
// whose destructors remove their temporaries; comm::run_guarded() then says so and ends the process
// by the same signal, as if it had killed it (exit status 128 + the signal for a shell). A signal
// that was ignored when the guard was made (nohup's SIGHUP) stays ignored.
//
//   StopOnSignal stop;                        // for the command's lifetime
//   for (...) { StopOnSignal::check(); ... }  // between units of work
#pragma once

namespace ftdist {

struct StoppedBySignal {
  int signal;
};

class StopOnSignal {
 public:
  StopOnSignal();
  ~StopOnSignal();  // the handlers the process had before
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;

  // Throws StoppedBySignal when a signal came while a guard was alive; nothing otherwise.
  static void check();
};

// "SIGTERM", "SIGINT", "SIGHUP" (else "a signal").
const char* stop_signal_name(int signal);

}  // namespace ftdist
