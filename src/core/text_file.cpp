#include "ftdist/core/text_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "ftdist/core/check.h"

namespace ftdist {

std::string read_text_file(const std::string& path, const std::string& what) {
  FT_CHECK_ARG(!is_directory(path), what << ": '" << path << "' is a directory, expected a file");
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

void make_directories(const std::string& path, const std::string& what) {
  for (size_t pos = path.find('/', 1); ; pos = path.find('/', pos + 1)) {
    const std::string part = pos == std::string::npos ? path : path.substr(0, pos);
    if (!part.empty() && !is_directory(part))
      FT_CHECK_ARG(::mkdir(part.c_str(), 0755) == 0 || is_directory(part),
                   what << ": cannot create directory '" << part << "' (" << std::strerror(errno) << ")");
    if (pos == std::string::npos) break;
  }
}

void write_text_file_atomic(const std::string& path, const std::string& text, const std::string& what) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    FT_CHECK_ARG(out.good(), what << ": cannot write '" << tmp << "' (" << std::strerror(errno) << ")");
    out << text;
    out.flush();
    FT_CHECK_ARG(out.good(), what << ": writing '" << tmp << "' failed (" << std::strerror(errno) << ")");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    FT_CHECK_ARG(false, what << ": cannot rename '" << tmp << "' to '" << path << "' (" << std::strerror(err) << ")");
  }
}

}  // namespace ftdist
