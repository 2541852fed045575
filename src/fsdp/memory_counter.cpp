#include "ftdist/fsdp/memory_counter.h"

#include "ftdist/fsdp/memory_category.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/resource.h>

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <mutex>
#include <unordered_map>

namespace ftdist::fsdp {
namespace {

// The wrapped allocations by data pointer. The DataPtr handed out has the data pointer as its
// context too, as c10::Allocator::raw_allocate requires (oneDNN's bf16 kernels allocate scratch
// space that way), so the deleter finds its record here.
struct Counted {
  c10::DataPtr inner;
  int64_t bytes;
};
std::mutex g_mutex;
std::unordered_map<void*, Counted>& records() {
  static auto* m = new std::unordered_map<void*, Counted>();  // outlives static destruction order
  return *m;
}
CpuMemoryCounter* g_counter = nullptr;

void delete_counted(void* data) {
  c10::DataPtr inner;  // freed through its own deleter when it leaves scope, outside the lock
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = records().find(data);
    if (it == records().end()) return;
    g_counter->add(-it->second.bytes);
    inner = std::move(it->second.inner);
    records().erase(it);
  }
}

class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* base) : base_(base) {}
  c10::DataPtr allocate(size_t n) override {
    const int64_t limit = g_counter->limit();
    if (limit > 0 && g_counter->current() + int64_t(n) > limit) {
      CategoryScope::note_failure();
      TORCH_CHECK_WITH(OutOfMemoryError, false, "CPU memory budget exceeded: allocating ", n, " bytes with ",
                       g_counter->current(), " of ", limit, " bytes in use");
    }
    c10::DataPtr inner;
    try {
      inner = base_->allocate(n);
    } catch (const c10::OutOfMemoryError&) {
      throw;
    } catch (const c10::Error& e) {  // the host allocator's failure, as the out-of-memory error it is
      CategoryScope::note_failure();
      TORCH_CHECK_WITH(OutOfMemoryError, false, "host memory: cannot allocate ", n, " bytes (",
                       e.what_without_backtrace(), ")");
    }
    void* data = inner.get();
    if (data == nullptr) return inner;  // zero bytes: nothing to count
    const c10::Device device = inner.device();
    {
      std::lock_guard<std::mutex> lock(g_mutex);
      records()[data] = Counted{std::move(inner), int64_t(n)};
    }
    g_counter->add(int64_t(n));
    return {data, data, &delete_counted, device};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &delete_counted; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

 private:
  c10::Allocator* base_;
};

}  // namespace

void CpuMemoryCounter::add(int64_t bytes) {
  int64_t now = current_.fetch_add(bytes) + bytes;
  for (std::atomic<int64_t>* peak : {&peak_, &lifetime_peak_, &phase_peak_}) {
    int64_t seen = peak->load();
    while (now > seen && !peak->compare_exchange_weak(seen, now)) {
    }
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
    g_counter = &counter;
    static CountingAllocator allocator(c10::GetAllocator(c10::DeviceType::CPU));
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
