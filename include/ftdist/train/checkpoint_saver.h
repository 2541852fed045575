// Saving and restoring the training state (io/checkpoint.h has the format): every rank writes its
// file shard into the temporary directory, then rank 0 commits it once all are on disk.
//
//   std::string dir = save_checkpoint(root, {step, trainer_json, config_text, tokenizer_dir, model_dir, keep}, fsdp, world);
//   io::CheckpointReader ckpt(io::find_latest_checkpoint(root));  fsdp.load_state(ckpt);
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "ftdist/comm/communicator.h"
#include "ftdist/fsdp/fsdp_model.h"
#include "ftdist/train/run_config.h"

namespace ftdist::train {

struct SaveRequest {
  int64_t step = 0;                 // optimizer steps done
  nlohmann::json trainer;           // the trainer's state (sampler position, run config, ...)
  std::string config_text;          // the model's config.json
  std::string tokenizer_dir;        // tokenizer files to copy along ("" = none)
  std::string model_dir;            // model.path: its generation_config.json goes along ("" = none)
  int keep = 2;                     // checkpoints kept (0: all)
};

// Collective (every rank). Returns the final directory. A rank killed during it leaves only a
// temporary directory behind: the previous checkpoint stays `latest`.
// Test hook: FTDIST_TEST_KILL_DURING_SAVE=<step> makes the last rank SIGKILL itself after writing
// its file of that step's save (before the checkpoint is committed); FTDIST_TEST_SAVE_DELAY_S=<s>
// makes every rank's save take that much longer (a save of seconds, as a large model's).
std::string save_checkpoint(const std::string& root, const SaveRequest& request, const fsdp::FsdpModel& fsdp,
                            comm::Communicator& world);

// The checkpoint a run resumes from: <checkpoint.dir>/latest with checkpoint.resume, "" for a fresh
// start. A fresh run that saves checkpoints refuses a checkpoint.dir that already holds another
// run's (Error(BadInput)) rather than mixing with them.
std::string checkpoint_to_resume(const RunConfig& config);
// The global batch of the checkpoint a run resumes, from its meta.json (0: none, or a fresh start).
int64_t resumed_global_batch(const RunConfig& config);

// The CPU generator's state as hex text (the trainer's state in a checkpoint), and back: a state of
// the wrong size is an Error(BadInput) naming `where`.
std::string cpu_rng_state_hex();
void set_cpu_rng_state_hex(const std::string& hex, const std::string& where);

}  // namespace ftdist::train
