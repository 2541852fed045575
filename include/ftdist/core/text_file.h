// Whole-file reads with an error that names the flag or purpose (`what`) and the path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ftdist {

// Throws Error(BadInput) "<what>: cannot read '<path>' (<reason>)" when it cannot, and when the
// file is larger than `max_bytes` (a small metadata file that is something else entirely).
std::string read_text_file(const std::string& path, const std::string& what, uint64_t max_bytes = UINT64_MAX);
bool file_exists(const std::string& path);
bool is_directory(const std::string& path);
// The directory part of a path: "." for a bare name, "/" for a file at the root.
std::string directory_of(const std::string& path);
// mkdir -p; Error(BadInput) naming `what` when a component cannot be created.
void make_directories(const std::string& path, const std::string& what);

// Writes `text` to `path` atomically (a temporary file in the same directory, fsynced, then
// renamed), so a reader never sees half a file. Throws Error(BadInput) naming `what` on failure.
void write_text_file_atomic(const std::string& path, const std::string& text, const std::string& what);

// fsync of a directory, so that renames and new entries inside it survive a crash.
void fsync_directory(const std::string& path, const std::string& what);
// rm -r; quietly ignores a path that does not exist. Error(BadInput) naming `what` otherwise.
void remove_tree(const std::string& path, const std::string& what);
// The names inside a directory (not "." and ".."), sorted; empty when it does not exist.
std::vector<std::string> list_directory(const std::string& path);

}  // namespace ftdist
