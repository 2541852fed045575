#include "ftdist/core/error.h"

#include <sstream>

#include "ftdist/core/check.h"
#include "ftdist/core/log.h"

namespace ftdist {

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Internal: return "internal";
    case ErrorKind::BadInput: return "bad input";
    case ErrorKind::DoesNotFit: return "does not fit";
    case ErrorKind::Comm: return "communication";
    case ErrorKind::Cuda: return "CUDA";
    case ErrorKind::Numerics: return "numerical";
  }
  return "unknown";
}

int exit_code_for(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::BadInput: return 2;
    case ErrorKind::DoesNotFit: return 3;
    default: return 1;
  }
}

namespace {
// Strips the build's source prefix so messages say "src/comm/x.cpp", not an absolute path.
std::string short_path(const char* file) {
  std::string path = file ? file : "";
  for (const char* marker : {"/src/", "/include/", "/tests/", "/bench/", "/kernels/"}) {
    auto pos = path.rfind(marker);
    if (pos != std::string::npos) return path.substr(pos + 1);
  }
  return path;
}

std::string render(ErrorKind kind, int rank, const std::string& message, const std::string& call,
                   const std::string& file, int line) {
  std::ostringstream os;
  if (rank >= 0) os << "[rank " << rank << "] ";
  // Messages about the user's input or job speak to the user; source positions and failing
  // expressions are for everything else.
  const bool for_user = kind == ErrorKind::BadInput || kind == ErrorKind::DoesNotFit;
  os << error_kind_name(kind) << (kind == ErrorKind::DoesNotFit ? "" : " error");
  if (!file.empty() && !for_user) os << " at " << file << ":" << line;
  os << ": " << message;
  if (!call.empty() && !for_user) os << " (in " << call << ")";
  return os.str();
}
}  // namespace

Error::Error(ErrorKind kind, std::string message, std::string call, const char* file, int line)
    : std::runtime_error(render(kind, log::rank(), message, call, short_path(file), line)),
      kind_(kind),
      rank_(log::rank()),
      message_(std::move(message)),
      call_(std::move(call)),
      file_(short_path(file)),
      line_(line) {}

namespace detail {
void raise(ErrorKind kind, const std::string& message, const char* call,
           const std::string& library_message, const char* file, int line) {
  std::string full = library_message.empty() ? message : message + ": " + library_message;
  // FT_CHECK(false, ...) is an unconditional raise: the condition says nothing, so leave it out.
  std::string call_text = call && std::string(call) != "false" ? call : "";
  throw Error(kind, full, call_text, file, line);
}
}  // namespace detail

}  // namespace ftdist
