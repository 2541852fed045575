// ftdist bench <what> — dispatch to the benchmarks.
#include <cstdio>
#include <cstring>
#include <string>

#include "commands.h"
#include "ftdist/core/check.h"

namespace ftdist::cli {

int bench_main(int argc, char** argv) {
  static const char* kUsage =
      "usage: ftdist bench <what> [options]\n"
      "  comm    collectives: time, algbw, busbw; --check verifies every result\n"
      "  step    FSDP training steps: tokens/s, planned vs runtime memory\n"
      "  load    loading a model's shards: seconds and host memory per rank vs the plan\n";
  FT_CHECK_ARG(argc >= 2, "ftdist bench: say what to benchmark\n" << kUsage);
  std::string what = argv[1];
  if (what == "--help" || what == "-h") {
    std::printf("%s", kUsage);
    return 0;
  }
  if (what == "comm") return bench_comm_main(argc - 1, argv + 1);
  if (what == "step") return bench_step_main(argc - 1, argv + 1);
  if (what == "load") return bench_load_main(argc - 1, argv + 1);
  FT_CHECK_ARG(false, "ftdist bench: unknown benchmark '" << what << "'\n" << kUsage);
  return 2;
}

}  // namespace ftdist::cli
