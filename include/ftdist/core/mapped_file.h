// Input files read through read-only memory maps (.ftok token files, safetensors weights), and what
// happens when one is truncated on disk while it is mapped: the kernel raises SIGBUS at the first
// access past the file's new end, which would kill the rank with no word of why. While any map is
// registered here, a SIGBUS handler names the file, the offset and what to do, and exits with code
// 2 (bad input; docs/runtime.md#exit-codes) — under mpirun, the whole job ends.
#pragma once

#include <cstddef>
#include <string>

namespace ftdist {

// [addr, addr + size) maps `path` (an absolute or working-directory path, for the message). The
// handler is installed on the first call; at most 1024 maps are named at once (later ones still
// get the handler's message, without the file's name).
void register_mapped_file(const void* addr, size_t size, const std::string& path);
// Before munmap(addr).
void unregister_mapped_file(const void* addr);

}  // namespace ftdist
