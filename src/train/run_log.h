// What a run tells about itself: rank 0's metrics log (JSON lines) and progress line, and the memory
// it measured next to the plan (the probe's line, memory.json, the table after the first and the
// last step). Private to train/.
#pragma once

#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "ftdist/comm/communicator.h"
#include "ftdist/fsdp/fsdp_model.h"
#include "ftdist/fsdp/memory_counter.h"
#include "ftdist/plan/memory_model.h"
#include "ftdist/train/memory_fit.h"
#include "ftdist/train/run_config.h"
#include "ftdist/train/tensorboard.h"

namespace ftdist::train {

// Rank 0's <output.dir>/<output.metrics>: new, or on resume the lines up to `first_step` kept and
// appended to; and the progress line on stderr (rewritten in place on a terminal). Other ranks'
// logs write nothing.
class MetricsLog {
 public:
  MetricsLog(const RunConfig& config, int64_t first_step, bool rank0);
  // One metrics.jsonl line (rank 0), and its numbers as TensorBoard scalars when output.tensorboard.
  void write(const nlohmann::ordered_json& line);
  // Every output.log_every steps and at the last: step, loss, lr, tokens/s and the time left.
  void progress(int64_t step, const nlohmann::ordered_json& line);
  // Ends a terminal's progress line; names the steps whose metrics lines could not be written.
  void end();
  bool terminal() const { return tty_; }

 private:
  const RunConfig& config_;
  std::unique_ptr<std::ofstream> out_;
  std::unique_ptr<TensorBoardWriter> tb_;  // output.tensorboard
  bool tty_ = false;
  std::string path_;
  int64_t lost_from_ = -1, lost_to_ = -1;  // the steps whose lines a failed write lost (-1: none)
  std::string lost_why_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// The probe's verdict: the peak it allocated next to the plan by category and the budget.
void log_probe(const plan::ModelSpec& spec, const plan::RunSetup& setup, const MemoryBudget& budget, at::Device device);

// After the first step: the largest peak over the ranks of the resident memory and of the counting
// allocator since the start (loading included), next to the plan's host memory and allocated bytes;
// logged, and kept in <output.dir>/memory.json.
void report_memory_since_start(const RunConfig& c, const plan::ModelSpec& spec, const plan::RunSetup& setup,
                               const fsdp::CpuMemoryCounter& counter, comm::Communicator& world, int per_node);

// The planned and measured memory per rank by category, after `step` (stdout).
void print_memory_table(const plan::ModelSpec& spec, const plan::RunSetup& setup, const fsdp::FsdpModel& fsdp,
                        const fsdp::StepResult& last, int64_t step);

}  // namespace ftdist::train
