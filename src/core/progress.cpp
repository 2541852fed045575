#include "ftdist/core/progress.h"

#include <unistd.h>

#include <algorithm>

#include "ftdist/core/bytes.h"

namespace ftdist {

ProgressBar::ProgressBar(std::string label, uint64_t total, std::string unit, std::FILE* out)
    : ProgressBar(std::move(label), total, std::move(unit), out, isatty(fileno(out)) != 0) {}

ProgressBar::ProgressBar(std::string label, uint64_t total, std::string unit, std::FILE* out, bool terminal)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), out_(out), terminal_(terminal),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

std::string ProgressBar::amount(double v) const {
  if (unit_ == "B") return format_bytes(v, 1);
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.0f%s%s", v, unit_.empty() ? "" : " ", unit_.c_str());
  return buf;
}

std::string ProgressBar::line(uint64_t done, double seconds, const std::string& note) const {
  constexpr int kWidth = 24;
  const double frac = total_ > 0 ? std::min(1.0, double(done) / double(total_)) : 1.0;
  const int filled = int(frac * kWidth);
  std::string bar = "[" + std::string(size_t(filled), '#') + std::string(size_t(kWidth - filled), '.') + "]";
  char buf[160];
  std::snprintf(buf, sizeof(buf), " %3.0f%% ", frac * 100);
  std::string out = label_ + " " + bar + buf + amount(double(done)) + " / " + amount(double(total_));
  if (seconds > 0) {
    const double rate = double(done) / seconds;
    out += "  " + amount(rate) + "/s";
    if (rate > 0 && done < total_) {
      std::snprintf(buf, sizeof(buf), "  ETA %.0f s", double(total_ - done) / rate);
      out += buf;
    }
  }
  if (!note.empty()) out += "  " + note;
  return out;
}

void ProgressBar::draw(uint64_t done, const std::string& note, bool last) {
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - start_).count();
  if (terminal_) {
    std::fprintf(out_, "\r%s\033[K%s", line(done, seconds, note).c_str(), last ? "\n" : "");
  } else {
    std::fprintf(out_, "%s\n", line(done, seconds, note).c_str());
  }
  std::fflush(out_);
  last_draw_ = now;
  drawn_ = true;
}

bool ProgressBar::quiet() const {
  return !drawn_ && std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count() < quiet_s_;
}

void ProgressBar::update(uint64_t done, const std::string& note) {
  if (finished_ || quiet()) return;
  if (terminal_) {
    if (std::chrono::steady_clock::now() - last_draw_ < std::chrono::milliseconds(200)) return;
    draw(done, note, false);
    return;
  }
  const int tenth = total_ > 0 ? int(std::min<uint64_t>(10, done * 10 / total_)) : 10;
  if (tenth > last_tenth_ && tenth < 10) {  // 100% is finish()'s line
    last_tenth_ = tenth;
    draw(done, note, false);
  }
}

void ProgressBar::finish(const std::string& note) {
  if (finished_) return;
  finished_ = true;
  if (!quiet()) draw(total_, note, true);
}

}  // namespace ftdist
