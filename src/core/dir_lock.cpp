#include "ftdist/core/dir_lock.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "ftdist/core/check.h"
#include "ftdist/core/suggest.h"
#include "ftdist/core/text_file.h"

namespace ftdist {
namespace {

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "?";
  return buf;
}

// What the holder wrote into the lock file ("host pid"), for the message.
std::string holder_of(int fd) {
  char buf[256] = {0};
  const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  std::string text = n > 0 ? std::string(buf, size_t(n)) : std::string("unknown");
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return excerpt(text, 120);
}

}  // namespace

DirLock::DirLock(const std::string& dir, const std::string& what) : path_(dir + "/.ftdist.lock") {
  make_directories(dir, what);
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  FT_CHECK_ARG(fd_ >= 0, what << ": cannot open the lock file '" << path_ << "' (" << std::strerror(errno) << ")");
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (::fcntl(fd_, F_SETLK, &fl) != 0) {
    const int err = errno;
    const std::string holder = holder_of(fd_);
    ::close(fd_);
    fd_ = -1;
    FT_CHECK_ARG(err != EACCES && err != EAGAIN,
                 what << ": '" << dir << "' is in use by another ftdist job (" << holder
                      << "); wait for it to end, or choose another directory");
    FT_CHECK_ARG(false, what << ": cannot lock '" << path_ << "' (" << std::strerror(err) << ")");
  }
  const std::string me = host_name() + " pid " + std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) == 0) {
    const ssize_t ignored = ::pwrite(fd_, me.data(), me.size(), 0);
    (void)ignored;
  }
}

DirLock::~DirLock() {
  if (fd_ < 0) return;
  const int ignored = ::ftruncate(fd_, 0);  // the holder's name goes with the lock; the empty file stays
  (void)ignored;
  ::close(fd_);  // releases the lock
}

void check_writable_directory(const std::string& dir, const std::string& what) {
  make_directories(dir, what);
  const std::string probe = dir + "/.ftdist-write-test." + std::to_string(::getpid());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  FT_CHECK_ARG(fd >= 0, what << ": '" << dir << "' is not writable (" << std::strerror(errno) << ")");
  ::close(fd);
  ::unlink(probe.c_str());
}

}  // namespace ftdist
