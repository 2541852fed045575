// The run report (`ftdist report RUN_DIR`, docs/training.md#run-report): one self-contained HTML
// page (inline SVG and CSS, no scripts) of a finished or running run, from the files it writes
// under output.dir: loss and eval-loss curves, learning rate, throughput (metrics.jsonl), memory
// planned vs measured (memory.json), the resolved run config (run_config.json), the checkpoints
// written, and a table of every step.
#pragma once

#include <string>

namespace ftdist::train {

// The metrics log is RUN_DIR/<output.metrics of run_config.json> (metrics.jsonl without one).
// Error(BadInput) naming the file when the metrics log is missing or a line is not a metrics
// object; memory.json, run_config.json and checkpoints are shown when present.
std::string run_report_html(const std::string& run_dir);

}  // namespace ftdist::train
