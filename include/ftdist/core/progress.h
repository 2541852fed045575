// A progress bar for long work on stderr: on a terminal one line redrawn in place (at most five
// times a second), otherwise a line at every tenth of the way, so logs stay short.
//
//   ProgressBar bar("reading data.jsonl", total_bytes, "B");
//   bar.update(done_bytes, "12034 documents");   // as often as convenient
//   bar.finish("12034 documents");
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace ftdist {

class ProgressBar {
 public:
  // unit "B" shows sizes (KiB, MiB, ...); anything else plain counts.
  ProgressBar(std::string label, uint64_t total, std::string unit, std::FILE* out = stderr);
  ProgressBar(std::string label, uint64_t total, std::string unit, std::FILE* out, bool terminal);
  void update(uint64_t done, const std::string& note = "");
  void finish(const std::string& note = "");
  // Draws nothing until `seconds` have passed since construction: work that ends sooner stays
  // silent (finish() too), longer work shows its bar from then on.
  void quiet_for(double seconds) { quiet_s_ = seconds; }

  // The line for `done` after `seconds` (no carriage return or newline): label, bar, percent,
  // amounts, rate and ETA.
  std::string line(uint64_t done, double seconds, const std::string& note) const;

 private:
  void draw(uint64_t done, const std::string& note, bool last);
  bool quiet() const;  // within the quiet period, nothing drawn yet
  std::string amount(double v) const;

  std::string label_, unit_;
  uint64_t total_;
  std::FILE* out_;
  bool terminal_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int last_tenth_ = -1;
  bool finished_ = false;
  bool drawn_ = false;
  double quiet_s_ = 0;
};

}  // namespace ftdist
