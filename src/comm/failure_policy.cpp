#include "ftdist/comm/failure_policy.h"

#include <mpi.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>

#include <c10/util/Exception.h>

#include "ftdist/comm/mpi_session.h"
#include "ftdist/core/error.h"
#include "ftdist/core/stop_signal.h"
#include "ftdist/core/torch_compat.h"

namespace ftdist::comm {

namespace {
[[noreturn]] void end_job(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  if (MpiSession::world_size() > 1) MpiSession::abort(code);  // takes every other rank down too
  if (MpiSession::initialized()) MPI_Finalize();  // a single rank ends cleanly, without an abort banner
  std::exit(code);
}

// Ends the process by `sig`, as if it had killed it (its partial outputs removed by the unwinding).
[[noreturn]] void end_by_signal(int sig) {
  std::fflush(stdout);
  std::fflush(stderr);
  if (MpiSession::world_size() > 1) MpiSession::abort(128 + sig);
  if (MpiSession::initialized()) MPI_Finalize();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
  std::exit(128 + sig);
}
}  // namespace

int run_guarded(const std::function<int()>& body) {
  compat::throw_on_enforce_failures();
  try {
    return body();
  } catch (const Error& e) {
    std::fprintf(stderr, "ftdist: %s\n", e.what());
    end_job(exit_code_for(e.kind()));
  } catch (const c10::OutOfMemoryError& e) {  // an allocation no ftdist scope turned into its own error
    std::fprintf(stderr, "ftdist: [rank %d] does not fit: %s\n", MpiSession::world_rank(), e.what_without_backtrace());
    end_job(exit_code_for(ErrorKind::DoesNotFit));
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "ftdist: [rank %d] does not fit: out of host memory (std::bad_alloc)\n", MpiSession::world_rank());
    end_job(exit_code_for(ErrorKind::DoesNotFit));
  } catch (const c10::Error& e) {
    const bool memory = compat::is_host_allocation_failure(e);
    std::fprintf(stderr, "ftdist: [rank %d] %s: %s\n", MpiSession::world_rank(), memory ? "does not fit" : "error",
                 e.what_without_backtrace());
    end_job(memory ? exit_code_for(ErrorKind::DoesNotFit) : 1);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ftdist: [rank %d] error: %s\n", MpiSession::world_rank(), e.what());
    end_job(1);
  } catch (const StoppedBySignal& s) {
    std::fprintf(stderr, "ftdist: stopped by %s; the partial output was removed\n", stop_signal_name(s.signal));
    end_by_signal(s.signal);
  } catch (...) {
    std::fprintf(stderr, "ftdist: [rank %d] error: unknown exception\n", MpiSession::world_rank());
    end_job(1);
  }
}

}  // namespace ftdist::comm
