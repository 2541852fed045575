// The training loop: the run config's model and data, FSDP over every rank, the schedule, global
// gradient-norm clipping (a non-finite norm skips the step and is counted), metrics as JSON lines
// on rank 0 (step, loss, lr, grad_norm, tokens, tokens_per_s, peak_mem_bytes; eval_loss on eval
// steps), a progress line on a terminal. Deterministic given the seed.
// Checkpoints (checkpoint.every > 0): every N steps, at the end and after a stop signal; with
// checkpoint.resume the run continues from the latest one, on any world size and stage, and
// equals the uninterrupted run. output.export writes a Hugging Face directory at the end.
#pragma once

#include "ftdist/comm/communicator.h"
#include "ftdist/train/run_config.h"

namespace ftdist::train {

struct TrainSummary {
  double first_loss = 0, last_loss = 0;
  int64_t steps = 0;
  int64_t skipped_steps = 0;  // non-finite gradient norm, or no trained token in the step
  bool stopped_by_signal = false;  // SIGTERM / SIGINT: stopped cleanly after a whole step
  int64_t resumed_from = -1;       // the checkpoint's step, when resumed
};

TrainSummary run_training(const RunConfig& config, comm::Communicator& world);

// Notes SIGTERM, SIGINT and SIGUSR1 from now on for the run that follows: called first thing in a
// process that trains, so that a stop requested while the process starts (MPI, LibTorch, CUDA)
// stops the run before step 1, exit 0, instead of killing it (launch/ftdist-mpirun sends SIGUSR1,
// whose default action kills).
void note_stop_signals();

}  // namespace ftdist::train
