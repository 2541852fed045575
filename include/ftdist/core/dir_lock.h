// DirLock — one job per directory: an advisory lock (fcntl, so it also holds across NFS with
// lockd) on <dir>/.ftdist.lock, held while the object lives and released by the kernel when the
// process ends however it ends. The file names the holder (host and pid), so a second job on the
// same directory is refused with who has it.
//
//   DirLock lock(config.output_dir, "output.dir");   // Error(BadInput) when another job holds it
#pragma once

#include <string>

namespace ftdist {

class DirLock {
 public:
  // Creates `dir` when missing. Error(BadInput) naming `what` when it cannot be created or locked.
  DirLock(const std::string& dir, const std::string& what);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// The same for an output that is written aside and renamed into place (an export directory, a
// token file), which cannot hold its own lock: the lock file is a hidden sibling,
// <parent>/.<name>.ftdist.lock, removed when the lock ends. Two jobs writing one output would
// otherwise share its scratch files.
//
//   OutputLock lock(out_dir, "export --out");   // Error(BadInput) when another job writes out_dir
class OutputLock {
 public:
  OutputLock(const std::string& output, const std::string& what);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
};

// Error(BadInput) naming `what` unless `dir` exists (it is created) and a file can be written in it.
void check_writable_directory(const std::string& dir, const std::string& what);

}  // namespace ftdist
