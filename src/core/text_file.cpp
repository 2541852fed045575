#include "ftdist/core/text_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "ftdist/core/check.h"

namespace ftdist {

std::string read_text_file(const std::string& path, const std::string& what, uint64_t max_bytes) {
  FT_CHECK_ARG(!is_directory(path), what << ": '" << path << "' is a directory, expected a file");
  struct stat st {};
  FT_CHECK_ARG(::stat(path.c_str(), &st) != 0 || uint64_t(st.st_size) <= max_bytes,
               what << ": '" << path << "' has " << st.st_size << " bytes, more than the " << max_bytes << " expected");
  std::ifstream in(path, std::ios::binary);
  FT_CHECK_ARG(in.good(), what << ": cannot read '" << path << "' (" << std::strerror(errno) << ")");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string directory_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

void make_directories(const std::string& path, const std::string& what) {
  for (size_t pos = path.find('/', 1); ; pos = path.find('/', pos + 1)) {
    const std::string part = pos == std::string::npos ? path : path.substr(0, pos);
    if (!part.empty() && !is_directory(part)) {
      const int rc = ::mkdir(part.c_str(), 0755), err = errno;  // errno before is_directory() can change it
      FT_CHECK_ARG(rc == 0 || is_directory(part), what << ": cannot create directory '" << part << "' ("
                                                       << (err == EEXIST ? "a file of that name is in the way" : std::strerror(err)) << ")");
    }
    if (pos == std::string::npos) break;
  }
}

void write_text_file_atomic(const std::string& path, const std::string& text, const std::string& what) {
  std::string tmp = path + ".tmp";
  {
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    FT_CHECK_ARG(f != nullptr, what << ": cannot write '" << tmp << "' (" << std::strerror(errno) << ")");
    const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0 &&
                    ::fsync(fileno(f)) == 0;
    const int err = errno;
    std::fclose(f);
    if (!ok) std::remove(tmp.c_str());
    FT_CHECK_ARG(ok, what << ": writing '" << tmp << "' failed (" << std::strerror(err) << ")");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    FT_CHECK_ARG(false, what << ": cannot rename '" << tmp << "' to '" << path << "' (" << std::strerror(err) << ")");
  }
}

void fsync_directory(const std::string& path, const std::string& what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY);
  FT_CHECK_ARG(fd >= 0, what << ": cannot open directory '" << path << "' (" << std::strerror(errno) << ")");
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  FT_CHECK_ARG(rc == 0, what << ": fsync of directory '" << path << "' failed (" << std::strerror(err) << ")");
}

std::vector<std::string> list_directory(const std::string& path) {
  std::vector<std::string> names;
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return names;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

void remove_tree(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode))
    for (const std::string& name : list_directory(path)) remove_tree(path + "/" + name, what);
  const int rc = S_ISDIR(st.st_mode) ? ::rmdir(path.c_str()) : ::unlink(path.c_str());
  FT_CHECK_ARG(rc == 0 || errno == ENOENT, what << ": cannot remove '" << path << "' (" << std::strerror(errno) << ")");
}

}  // namespace ftdist
