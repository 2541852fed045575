// ftdist::Error — the one exception type of ftdist.
//
// Every failure that leaves a module is an ftdist::Error carrying what went wrong (kind), which rank
// saw it, where (file:line), which call failed, and the failing library's own message. The CLI maps
// the kind to the process exit code (docs/runtime.md#failure-policy-and-exit-codes): 0 ok, 2 bad input, 3 does not fit, 1 other.
//
//   throw ftdist::Error(ftdist::ErrorKind::BadInput, "--max-bytes must be >= --min-bytes");
//   FT_CHECK(n > 0, ftdist::ErrorKind::BadInput, "--iters must be positive, got " << n);
#pragma once

#include <stdexcept>
#include <string>

namespace ftdist {

enum class ErrorKind {
  Internal,    // a bug or an unexpected library failure (exit code 1)
  BadInput,    // a file, flag or argument is not what was expected (exit code 2)
  DoesNotFit,  // the job does not fit in memory (exit code 3)
  Comm,        // a communication library failed or a peer died (exit code 1)
  Cuda,        // the CUDA runtime failed (exit code 1)
  Numerics,    // training diverged: a non-finite loss or gradient (exit code 1)
};

const char* error_kind_name(ErrorKind kind);
int exit_code_for(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  // `call` is the failing expression or library call ("" when none); file/line where it was raised.
  Error(ErrorKind kind, std::string message, std::string call = "", const char* file = "", int line = 0);

  ErrorKind kind() const { return kind_; }
  int rank() const { return rank_; }  // -1 when the process has no rank yet
  const std::string& message() const { return message_; }
  const std::string& call() const { return call_; }
  const std::string& file() const { return file_; }
  int line() const { return line_; }

 private:
  ErrorKind kind_;
  int rank_;
  std::string message_;
  std::string call_;
  std::string file_;
  int line_;
};

}  // namespace ftdist
