#include "ftdist/core/dir_lock.h"

#include <fcntl.h>
#include <sys/stat.h>
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

int lock_file_once(const std::string& path, const std::string& what, const std::string& subject, const char* noun);

// Opens and locks `path` (created when missing) and writes the holder's name into it; returns the
// descriptor. Error(BadInput) naming `what` and `subject` (what the lock guards, a `noun`) when
// another process holds it.
int lock_file(const std::string& path, const std::string& what, const std::string& subject, const char* noun) {
  for (int attempt = 0;; ++attempt) {
    const int fd = lock_file_once(path, what, subject, noun);
    // The lock holds the file it opened: when a holder that removes its lock file (OutputLock)
    // unlinked it meanwhile, that file is no longer the lock, and the path's new one is taken.
    struct stat held {}, named {};
    if (::fstat(fd, &held) == 0 && ::stat(path.c_str(), &named) == 0 && held.st_ino == named.st_ino && held.st_dev == named.st_dev)
      return fd;
    ::close(fd);
    FT_CHECK_ARG(attempt < 8, what << ": cannot lock '" << path << "': it is replaced as fast as it is locked");
  }
}

int lock_file_once(const std::string& path, const std::string& what, const std::string& subject, const char* noun) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  FT_CHECK_ARG(fd >= 0, what << ": cannot open the lock file '" << path << "' (" << std::strerror(errno) << ")");
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (::fcntl(fd, F_SETLK, &fl) != 0) {
    const int err = errno;
    const std::string holder = holder_of(fd);
    ::close(fd);
    FT_CHECK_ARG(err != EACCES && err != EAGAIN,
                 what << ": '" << subject << "' is in use by another ftdist job (" << holder
                      << "); wait for it to end, or choose another " << noun);
    FT_CHECK_ARG(false, what << ": cannot lock '" << path << "' (" << std::strerror(err) << ")");
  }
  const std::string me = host_name() + " pid " + std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0) {
    const ssize_t ignored = ::pwrite(fd, me.data(), me.size(), 0);
    (void)ignored;
  }
  return fd;
}

// `remove`: the lock file is unlinked while still held (whoever opened it before then finds, once
// it holds it, that it is no longer the path's file, and retries).
void unlock_file(int fd, const std::string& path, bool remove) {
  if (fd < 0) return;
  if (remove) ::unlink(path.c_str());
  const int ignored = ::ftruncate(fd, 0);  // the holder's name goes with the lock (a kept file stays, empty)
  (void)ignored;
  ::close(fd);  // releases the lock
}

}  // namespace

DirLock::DirLock(const std::string& dir, const std::string& what) : path_(dir + "/.ftdist.lock") {
  make_directories(dir, what);
  fd_ = lock_file(path_, what, dir, "directory");
}

DirLock::~DirLock() { unlock_file(fd_, path_, false); }

OutputLock::OutputLock(const std::string& output, const std::string& what) {
  std::string path = output;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const size_t slash = path.rfind('/');
  const std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  FT_CHECK_ARG(!name.empty() && name != "." && name != "..", what << ": '" << output << "' names no file or directory to write");
  make_directories(parent, what);
  path_ = parent + "/." + name + ".ftdist.lock";
  fd_ = lock_file(path_, what, output, "output");
}

OutputLock::~OutputLock() { unlock_file(fd_, path_, true); }

void check_writable_directory(const std::string& dir, const std::string& what) {
  make_directories(dir, what);
  const std::string probe = dir + "/.ftdist-write-test." + std::to_string(::getpid());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  FT_CHECK_ARG(fd >= 0, what << ": '" << dir << "' is not writable (" << std::strerror(errno) << ")");
  ::close(fd);
  ::unlink(probe.c_str());
}

}  // namespace ftdist
