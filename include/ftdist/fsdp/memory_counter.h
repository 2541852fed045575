// A counting CPU allocator: installed through c10's allocator hook, it wraps the allocator that was
// there and keeps the bytes currently allocated and their peak, so CPU runs can measure what the
// planner predicts (activations, peaks). Tensors allocated before installation free as before.
//
//   CpuMemoryCounter& mem = CpuMemoryCounter::install();
//   int64_t before = mem.current();  ...forward...  int64_t activations = mem.current() - before;
#pragma once

#include <atomic>
#include <cstdint>

namespace ftdist::fsdp {

class CpuMemoryCounter {
 public:
  static CpuMemoryCounter& install();  // idempotent
  static bool installed();
  int64_t current() const { return current_.load(); }
  int64_t peak() const { return peak_.load(); }
  void reset_peak() { peak_.store(current_.load()); }
  // The peak since installation (reset_peak() does not touch it): loading included.
  int64_t lifetime_peak() const { return lifetime_peak_.load(); }
  // A third peak for the step's timeline (fsdp::StepPhase): reset at every phase boundary without
  // touching peak() or lifetime_peak().
  int64_t phase_peak() const { return phase_peak_.load(); }
  void reset_phase_peak() { phase_peak_.store(current_.load()); }
  // A budget (bytes; 0: none): an allocation that would take current() past it throws
  // c10::OutOfMemoryError instead, as a GPU's allocator does at its capacity. The CPU stand-in
  // for a device's memory, so that running out can be shown and tested on CPU.
  void set_limit(int64_t bytes) { limit_.store(bytes); }
  int64_t limit() const { return limit_.load(); }

  void add(int64_t bytes);  // used by the allocator

 private:
  std::atomic<int64_t> current_{0};
  std::atomic<int64_t> peak_{0};
  std::atomic<int64_t> lifetime_peak_{0};
  std::atomic<int64_t> phase_peak_{0};
  std::atomic<int64_t> limit_{0};
};

// The process's peak resident memory, all of it (getrusage), for reports and metrics.
int64_t process_peak_rss_bytes();
// The resident set now, and its peak since reset_peak_rss() (Linux: /proc/self/status VmRSS and
// VmHWM; -1 where unavailable). reset_peak_rss() returns false where the kernel cannot reset it.
bool reset_peak_rss();
int64_t current_rss_bytes();
int64_t peak_rss_since_reset_bytes();

}  // namespace ftdist::fsdp
