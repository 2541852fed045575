// Launch lines and files for a planned allocation: an mpirun command with its hostfile, or a Slurm
// sbatch script, and the run config they train: `ftdist train --config run.toml`. Every file
// carries the line kEmittedMarker, so that a later --emit overwrites only files it wrote.
#pragma once

#include <string>

#include "ftdist/plan/search.h"

namespace ftdist::plan {

// The paths a launch line names: as seen from the source tree by default; --emit writes absolute
// ones, so that its files run from any directory.
struct LaunchPaths {
  std::string ftdist = "build/ftdist";
  std::string launcher = "launch/ftdist-mpirun";
  std::string config = "run.toml";
  std::string hostfile = "hostfile";
};
std::string mpirun_command(const PlanRequest& request, const Candidate& c, const LaunchPaths& paths = {});
std::string hostfile_text(const Candidate& c);  // node01 slots=8 ... (placeholders to edit)
std::string sbatch_text(const PlanRequest& request, const Candidate& c, const LaunchPaths& paths = {});

// How the model was given to the planner, for run.toml's [model]: a preset name, a config.json
// (random init), or a Hugging Face model directory (its weights are fine-tuned).
struct ModelSource {
  enum Kind { Preset, ConfigFile, Directory } kind = Preset;
  std::string value;
};
// run.toml for candidate `c`: the model, sequence length, planned stage, micro-batch, global batch
// (micro-batch x accumulation x GPUs), activation checkpointing, precision, reduction dtype,
// gradient accumulation dtype, prefetch, no_sync, optimizer offload, optimizer, loss chunk, packing,
// the GPU's peak (train.peak_tflops) and steps; data.train a placeholder to replace.
// Error(BadInput) for more steps than ftdist train runs (kMaxSteps).
std::string run_config_text(const PlanRequest& request, const Candidate& c, const ModelSource& model);

constexpr const char* kEmittedMarker = "# written by ftdist plan";

}  // namespace ftdist::plan
