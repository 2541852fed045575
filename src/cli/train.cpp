// ftdist train --config run.toml [--set section.key=value ...] | --help-config
#include <algorithm>
#include <cstdio>

#include "commands.h"
#include "options.h"
#include "ftdist/comm/communicator.h"
#include "ftdist/core/check.h"
#include "ftdist/train/trainer.h"

namespace ftdist::cli {
namespace {

// The last line: the steps this run trained (a resumed run counts from its checkpoint).
void print_summary(const train::TrainSummary& s, const train::RunConfig& cfg) {
  const int64_t from = std::max<int64_t>(s.resumed_from, 0), trained = s.steps - from;
  if (trained == 0) {
    std::printf("trained no step: %s\n", s.stopped_by_signal ? "stopped by a signal before the first"
                                        : ("the checkpoint is at step " + std::to_string(from) + ", train.steps is " +
                                           std::to_string(cfg.steps) + "; raise train.steps to train further").c_str());
    return;
  }
  std::printf("trained %lld steps", static_cast<long long>(trained));
  if (from > 0) std::printf(" (%lld-%lld, resumed from step %lld)", static_cast<long long>(from + 1), static_cast<long long>(s.steps),
                            static_cast<long long>(from));
  if (s.stopped_by_signal) std::printf(" of %lld, stopped by a signal", static_cast<long long>(cfg.steps));
  std::printf(": loss %.4f -> %.4f; metrics in %s/%s\n", s.first_loss, s.last_loss, cfg.output_dir.c_str(), cfg.metrics.c_str());
}

}  // namespace

int train_main(int argc, char** argv) {
  cxxopts::Options options("ftdist train", "Full-parameter training from a run config (TOML).");
  options.add_options()
      ("config", "run config TOML (sections model, data, train, parallel, checkpoint, output)", cxxopts::value<std::string>())
      ("set", "override a key: section.key=value (repeatable)", cxxopts::value<std::vector<std::string>>())
      ("help-config", "print every run-config key (type, default, meaning) as Markdown, and exit")
      ("h,help", "this help");
  cxxopts::ParseResult args = parse_options(options, argc, argv);
  if (print_help_if_asked(options, args)) return 0;
  if (args.count("help-config")) {
    std::fputs(train::run_config_reference().c_str(), stdout);
    return 0;
  }
  FT_CHECK_ARG(args.count("config"), "ftdist train: --config FILE is required (see examples/tiny/ftdist.toml)");
  std::vector<std::string> overrides;
  if (args.count("set")) overrides = args["set"].as<std::vector<std::string>>();
  train::RunConfig cfg = train::load_run_config(args["config"].as<std::string>(), overrides);
  auto world = comm::make_communicator(at::kCPU);
  train::TrainSummary s = train::run_training(cfg, *world);
  if (world->rank() == 0) print_summary(s, cfg);
  return 0;
}

}  // namespace ftdist::cli
