#include "ftdist/fsdp/memory_counter.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/resource.h>

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <mutex>

namespace ftdist::fsdp {
namespace {

struct Counted {
  c10::DataPtr inner;
  int64_t bytes;
  CpuMemoryCounter* counter;
};

void delete_counted(void* ctx) {
  auto* c = static_cast<Counted*>(ctx);
  c->counter->add(-c->bytes);
  delete c;  // frees `inner` through its own deleter
}

class CountingAllocator final : public c10::Allocator {
 public:
  CountingAllocator(c10::Allocator* base, CpuMemoryCounter* counter) : base_(base), counter_(counter) {}
  c10::DataPtr allocate(size_t n) override {
    c10::DataPtr inner = base_->allocate(n);
    void* data = inner.get();
    c10::Device device = inner.device();
    counter_->add(int64_t(n));
    return {data, new Counted{std::move(inner), int64_t(n), counter_}, &delete_counted, device};
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

 private:
  c10::Allocator* base_;
  CpuMemoryCounter* counter_;
};

}  // namespace

void CpuMemoryCounter::add(int64_t bytes) {
  int64_t now = current_.fetch_add(bytes) + bytes;
  int64_t seen = peak_.load();
  while (now > seen && !peak_.compare_exchange_weak(seen, now)) {
  }
}

namespace {
std::atomic<bool> g_installed{false};
}

bool CpuMemoryCounter::installed() { return g_installed.load(); }

CpuMemoryCounter& CpuMemoryCounter::install() {
  static CpuMemoryCounter counter;
  static std::once_flag once;
  std::call_once(once, [] {
    g_installed = true;
    static CountingAllocator allocator(c10::GetAllocator(c10::DeviceType::CPU), &counter);
    c10::SetAllocator(c10::DeviceType::CPU, &allocator, /*priority=*/100);
  });
  return counter;
}

int64_t process_peak_rss_bytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return int64_t(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

namespace {
int64_t status_kib(const char* key) {  // a "Key:   123 kB" line of /proc/self/status, in bytes
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  int64_t value = -1;
  const size_t n = std::strlen(key);
  while (std::fgets(line, sizeof(line), f))
    if (std::strncmp(line, key, n) == 0 && line[n] == ':') {
      value = std::atoll(line + n + 1) * 1024;
      break;
    }
  std::fclose(f);
  return value;
}
}  // namespace

bool reset_peak_rss() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

int64_t current_rss_bytes() { return status_kib("VmRSS"); }
int64_t peak_rss_since_reset_bytes() { return status_kib("VmHWM"); }

}  // namespace ftdist::fsdp
