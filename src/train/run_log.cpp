#include "run_log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "ftdist/core/bytes.h"
#include "ftdist/core/check.h"
#include "ftdist/core/log.h"
#include "ftdist/core/text_file.h"
#include "ftdist/fsdp/device_memory.h"
#include "ftdist/fsdp/memory_report.h"
#include "ftdist/plan/host_memory.h"
#include "ftdist/plan/timeline.h"

namespace ftdist::train {
namespace {

// Keeps the metrics lines of steps up to `step` (a resumed run rewrites what came after).
void truncate_metrics(const std::string& path, int64_t step) {
  if (!file_exists(path)) return;
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() <= step)
      kept += line + "\n";
  }
  write_text_file_atomic(path, kept, "output.metrics");
}

}  // namespace

MetricsLog::MetricsLog(const RunConfig& c, int64_t first_step, bool rank0) : config_(c) {
  if (!rank0) return;
  tty_ = isatty(fileno(stderr));
  make_directories(c.output_dir, "output.dir");
  const std::string path = c.output_dir + "/" + c.metrics;
  path_ = path;
  if (first_step > 0) truncate_metrics(path, first_step);
  // A new run over an earlier run's metrics (the same output.dir, not resumed): kept beside, not lost.
  struct stat st {};
  if (first_step == 0 && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    std::string kept = path + ".previous";  // (never over an older one: .previous.2, .3, ...)
    for (int k = 2; file_exists(kept); ++k) kept = path + ".previous." + std::to_string(k);
    FT_CHECK_ARG(std::rename(path.c_str(), kept.c_str()) == 0,
                 "output.metrics: cannot move the earlier run's '" << path << "' aside (" << std::strerror(errno) << ")");
    FT_LOG_WARN("output.metrics: " << path << " held an earlier run's metrics; moved to " << kept);
  }
  out_ = std::make_unique<std::ofstream>(path, first_step > 0 ? std::ios::app : std::ios::trunc);
  FT_CHECK_ARG(out_->good(), "output.metrics: cannot write '" << path << "'");
  if (c.tensorboard) tb_ = std::make_unique<TensorBoardWriter>(c.output_dir + "/tb");
  // The resolved run config, for `ftdist report` (checkpoints keep their own copy).
  write_text_file_atomic(c.output_dir + "/run_config.json", run_config_json(c).dump(2) + "\n", "output.dir");
}

void MetricsLog::write(const nlohmann::ordered_json& line) {
  if (!out_) return;
  const int64_t step = line.value("step", int64_t(-1));
  if (lost_from_ < 0) {
    errno = 0;
    *out_ << line.dump() << "\n";
    out_->flush();
    if (!out_->good()) {  // (a full disk): the training goes on, its metrics are said to be lost
      lost_from_ = step;
      lost_why_ = errno != 0 ? std::strerror(errno) : "write failed";
      FT_LOG_WARN("output.metrics: writing '" << path_ << "' failed at step " << step << " (" << lost_why_
                                              << "); the metrics of this and later steps are not kept, the training goes on");
    }
  }
  if (lost_from_ >= 0) lost_to_ = step;
  if (!tb_) return;
  std::vector<std::pair<std::string, double>> scalars;  // every number but the step; skipped: 1
  for (auto it = line.begin(); it != line.end(); ++it)
    if (it.key() != "step" && (it->is_number() || it->is_boolean()))
      scalars.push_back({it.key(), it->is_boolean() ? double(it->get<bool>()) : it->get<double>()});
  tb_->scalars(line["step"].get<int64_t>(), scalars);
}

void MetricsLog::progress(int64_t step, const nlohmann::ordered_json& line) {
  const int64_t steps = config_.steps;
  if (!out_ || (step % config_.log_every != 0 && step != steps)) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double eta = elapsed / double(step) * double(steps - step);
  std::fprintf(stderr, "%sstep %lld/%lld  loss %.4f  lr %.2e  %.0f tokens/s  ETA %.0f s%s", tty_ ? "\r" : "",
               static_cast<long long>(step), static_cast<long long>(steps), line["loss"].get<double>(), line["lr"].get<double>(),
               line["tokens_per_s"].get<double>(), eta, tty_ ? "   " : "\n");
  std::fflush(stderr);
}

void MetricsLog::end() {
  if (tty_) std::fprintf(stderr, "\n");
  if (lost_from_ >= 0)
    FT_LOG_WARN("output.metrics: '" << path_ << "' lacks the lines of steps " << lost_from_ << "-" << lost_to_ << " (" << lost_why_
                                    << "); the last one it holds may be cut short");
}

void log_probe(const plan::ModelSpec& spec, const plan::RunSetup& setup, const MemoryBudget& budget, at::Device device) {
  const plan::PeakMemory peak = plan::peak_memory(spec, setup);
  const plan::MemoryBreakdown& planned = peak.alive;
  std::string parts;
  for (plan::MemCategory cat : plan::all_mem_categories())
    if (planned[cat] > 0) parts += std::string(parts.empty() ? "" : ", ") + plan::mem_category_name(cat) + " " + format_bytes(double(planned[cat]));
  FT_LOG_INFO("memory probe: a step fits, peak " << format_bytes(double(fsdp::device_memory_peak(device))) << " allocated per rank on " << device << " (planned "
              << format_bytes(double(peak.needed(setup.host_device))) << " at the " << peak.phase << ": " << parts
              << (planned.host.total() ? ", offloaded to host " + format_bytes(double(planned.host.total())) : std::string()) << "; available "
              << (budget.bytes ? format_bytes(double(budget.bytes)) + ", " + budget.source : "unknown") << ")");
}

void report_memory_since_start(const RunConfig& c, const plan::ModelSpec& spec, const plan::RunSetup& setup,
                               const fsdp::CpuMemoryCounter& counter, comm::Communicator& world, int per_node) {
  at::Tensor peaks = at::tensor({fsdp::process_peak_rss_bytes(), counter.lifetime_peak()}, at::kLong);
  world.all_reduce(peaks, comm::ReduceOp::Max);
  if (world.rank() != 0) return;
  const plan::PeakMemory peak = plan::peak_memory(spec, setup);  // the step's peak, what the planner fits
  const plan::MemoryBreakdown& planned = peak.alive;
  const plan::HostMemory host = plan::estimate_host_memory(spec, setup, per_node);
  const int64_t rss = peaks[0].item<int64_t>(), allocated = peaks[1].item<int64_t>();
  // (on the CPU the offloaded host buffers are allocated from the same counted memory)
  const uint64_t planned_allocated = planned.budgeted(setup.host_device) - planned[plan::MemCategory::overhead];
  nlohmann::ordered_json j = {
      {"ranks", world.size()},
      {"ranks_per_node", per_node},
      {"planned_per_rank", {{"allocated_bytes", planned_allocated}, {"total_bytes", planned.budgeted(setup.host_device)},
                            {"peak_phase", peak.phase},
                            {"offloaded_host_bytes", planned.host.total()},
                            {"host_load_peak_bytes", host.load_peak}, {"host_steady_bytes", host.steady}}},
      {"measured_largest_rank", {{"peak_rss_bytes", rss},
                                 {"allocated_peak_bytes", setup.host_device ? nlohmann::ordered_json(allocated) : nlohmann::ordered_json(nullptr)}}}};
  write_text_file_atomic(c.output_dir + "/memory.json", j.dump(2) + "\n", "output.dir");
  FT_LOG_INFO("host memory from the start to the end of step 1 (largest rank): peak RSS " << format_bytes(double(rss))
              << " (planned " << format_bytes(double(host.steady)) << " per rank)"
              << (setup.host_device ? ", allocated " + format_bytes(double(allocated)) + " (planned " +
                                          format_bytes(double(planned_allocated)) + ")"
                                    : std::string()));
}

void print_memory_table(const plan::ModelSpec& spec, const plan::RunSetup& setup, const fsdp::FsdpModel& fsdp,
                        const fsdp::StepResult& last, int64_t step) {
  std::printf("after step %lld:\n%s", static_cast<long long>(step), fsdp::memory_report(spec, setup, fsdp, last).c_str());
  std::fflush(stdout);
}

}  // namespace ftdist::train
