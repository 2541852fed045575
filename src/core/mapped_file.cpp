#include "ftdist/core/mapped_file.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>

namespace ftdist {
namespace {

// One registered map. The handler reads `begin` first: a slot is filled before `begin` is set, and
// freed by clearing `begin`, so the handler never sees a half-written slot.
struct Region {
  std::atomic<uintptr_t> begin{0};
  size_t size = 0;
  char path[512] = {};
};

constexpr int kSlots = 1024;
Region g_regions[kSlots];
std::mutex g_mutex;  // register/unregister (not the handler)
bool g_installed = false;

void put(const char* s) {
  size_t n = std::strlen(s);
  while (n > 0) {
    const ssize_t w = ::write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= size_t(w);
  }
}

void put_number(uint64_t v) {
  char buf[24];
  int i = sizeof(buf) - 1;
  buf[i] = '\0';
  do {
    buf[--i] = char('0' + v % 10);
    v /= 10;
  } while (v > 0 && i > 0);
  put(buf + i);
}

// Async-signal-safe: write(2) and _exit(2) only.
extern "C" void on_sigbus(int, siginfo_t* info, void*) {
  const uintptr_t at = reinterpret_cast<uintptr_t>(info->si_addr);
  for (const Region& r : g_regions) {
    const uintptr_t b = r.begin.load(std::memory_order_acquire);
    if (b == 0 || at < b || at >= b + r.size) continue;
    put("\nftdist: bad input error: '");
    put(r.path);
    put("' changed on disk while it was being read (SIGBUS at byte ");
    put_number(at - b);
    put(" of the ");
    put_number(r.size);
    put(" it had when opened: truncated or rewritten in place?). Restore the file, or write a new one under another "
        "name, and rerun (checkpoint.resume continues from the last checkpoint)\n");
    ::_exit(2);
  }
  put("\nftdist: bad input error: a memory-mapped input file was truncated while it was being read (SIGBUS); restore "
      "the data and weight files and rerun\n");
  ::_exit(2);
}

}  // namespace

void register_mapped_file(const void* addr, size_t size, const std::string& path) {
  if (addr == nullptr || size == 0) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_installed) {
    struct sigaction sa {};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGBUS, &sa, nullptr);
    g_installed = true;
  }
  for (Region& r : g_regions) {
    if (r.begin.load(std::memory_order_relaxed) != 0) continue;
    r.size = size;
    std::strncpy(r.path, path.c_str(), sizeof(r.path) - 1);
    r.path[sizeof(r.path) - 1] = '\0';
    r.begin.store(reinterpret_cast<uintptr_t>(addr), std::memory_order_release);
    return;
  }
}

void unregister_mapped_file(const void* addr) {
  if (addr == nullptr) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  for (Region& r : g_regions)
    if (r.begin.load(std::memory_order_relaxed) == reinterpret_cast<uintptr_t>(addr)) r.begin.store(0, std::memory_order_release);
}

}  // namespace ftdist
