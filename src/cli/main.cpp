// ftdist — entry point: MPI session, failure policy, subcommand dispatch.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "ftdist/comm/failure_policy.h"
#include "ftdist/comm/mpi_session.h"
#include "ftdist/core/check.h"
#include "ftdist/core/text_file.h"
#include "ftdist/train/trainer.h"

namespace {

const char* kUsage =
    "usage: ftdist <command> [options]\n"
    "\n"
    "commands:\n"
    "  train         full-parameter training from a run config (--config run.toml; CPU or GPU)\n"
    "  prepare-data  JSONL documents to the packed token file (.ftok)\n"
    "  plan          per-GPU memory, GPU count, sharding stage, time and cost of a fine-tuning job\n"
    "  models        model presets with their parameter counts\n"
    "  gpus          the GPU catalog (cluster/gpus.toml)\n"
    "  export        a checkpoint as a Hugging Face model directory (streamed, bf16 or fp32)\n"
    "  eval          loss and perplexity of a Hugging Face model or checkpoint over a JSONL file\n"
    "  report        an HTML report of a training run (curves, memory, config, checkpoints)\n"
    "  bench step    FSDP training steps: tokens/s, MFU, planned vs runtime memory\n"
    "  bench load    sharded model loading: time and host memory per rank, planned vs measured\n"
    "  bench comm    collective benchmark (all-gather, reduce-scatter, all-reduce, broadcast) with\n"
    "                algbw/busbw and an optional correctness check; mpi (CPU) or nccl (GPU)\n"
    "\n"
    "Run `ftdist <command> --help` for its options. Example:\n"
    "  ftdist plan --model mistral-7b --gpu a100-80gb --seq-len 1024 --examples 10000\n";

// Commands that write their output as one process: under mpirun with several ranks every rank would
// write the same files. Only train, eval and bench run on several.
void require_one_process(const std::string& command) {
  const int n = ftdist::comm::MpiSession::world_size();
  FT_CHECK_ARG(n == 1, "ftdist " << command << " runs as one process, but this job has " << n
                                 << " ranks: run it without mpirun (train, eval and bench run on several)");
}

int dispatch(int argc, char** argv) {
  if (argc < 2 && ftdist::file_exists("ftdist.toml")) {  // `mpirun -np 8 ftdist` trains ./ftdist.toml
    static char arg0[] = "train", arg1[] = "--config", arg2[] = "ftdist.toml";
    char* args[] = {arg0, arg1, arg2};
    return ftdist::cli::train_main(3, args);
  }
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string command = argv[1];
  if (command == "plan" || command == "export" || command == "report" || command == "prepare-data") require_one_process(command);
  if (command == "bench") return ftdist::cli::bench_main(argc - 1, argv + 1);
  if (command == "plan") return ftdist::cli::plan_main(argc - 1, argv + 1);
  if (command == "models") return ftdist::cli::models_main(argc - 1, argv + 1);
  if (command == "gpus") return ftdist::cli::gpus_main(argc - 1, argv + 1);
  if (command == "export") return ftdist::cli::export_main(argc - 1, argv + 1);
  if (command == "eval") return ftdist::cli::eval_main(argc - 1, argv + 1);
  if (command == "report") return ftdist::cli::report_main(argc - 1, argv + 1);
  if (command == "train") return ftdist::cli::train_main(argc - 1, argv + 1);
  if (command == "prepare-data") return ftdist::cli::prepare_data_main(argc - 1, argv + 1);
  FT_CHECK_ARG(false, "unknown command '" << command << "'\n" << kUsage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // (before MPI starts: a stop requested from here on stops the run cleanly)
  if ((argc >= 2 && !std::strcmp(argv[1], "train")) || (argc < 2 && ftdist::file_exists("ftdist.toml"))) {
    ftdist::train::note_stop_signals();
    if (const char* delay = std::getenv("FTDIST_TEST_START_DELAY_S")) {  // test hook: a slow start (tests/scripts/preemption_stop.sh)
      std::fprintf(stderr, "ftdist: test start delay %s s\n", delay);
      std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(delay)));
    }
  }
  // The session outlives run_guarded's handler, so an error can still MPI_Abort the whole job.
  std::unique_ptr<ftdist::comm::MpiSession> mpi;
  return ftdist::comm::run_guarded([&] {
    mpi = std::make_unique<ftdist::comm::MpiSession>(&argc, &argv);
    return dispatch(argc, argv);
  });
}
