// The run's model: where its architecture and starting weights come from, the model structure, the
// runtime loaded over it, and the export at the end. Private to train/.
#pragma once

#include <memory>
#include <string>

#include "ftdist/comm/communicator.h"
#include "ftdist/fsdp/fsdp_model.h"
#include "ftdist/io/checkpoint.h"
#include "ftdist/io/hf_checkpoint.h"
#include "ftdist/io/random_init.h"
#include "ftdist/model/llama.h"
#include "ftdist/train/run_config.h"

namespace ftdist::train {

// A Hugging Face directory or an ftdist checkpoint (its config and, unless a checkpoint is resumed,
// its weights: a new run from a checkpoint's master weights, with fresh optimizer states), a preset
// or a config.json with the seeded random init. A resumed checkpoint supplies the starting weights
// instead (starting_weights()).
struct ModelSource {
  plan::ModelSpec spec;
  std::string config_text;    // for checkpoints and exports
  std::string tokenizer_dir;  // the directory whose tokenizer files travel along (prepare_tokenizer_files())
  std::unique_ptr<io::HfCheckpoint> hf;
  std::unique_ptr<io::CheckpointReader> checkpoint;  // model.path naming an ftdist checkpoint: its master weights
  std::unique_ptr<io::RandomInit> random;
};
ModelSource model_source(const RunConfig& config);
// Makes ready the tokenizer files that checkpoints and the export carry, for a resolved config, and
// returns their directory: data.tokenizer's (the tokenizer that read the text), else model.path's;
// for text the byte-level tokenizer read, <output.dir>/tokenizer, where `rank0` writes
// ftdist-tokenizer.json. "" for none.
std::string prepare_tokenizer_files(const RunConfig& resolved, bool rank0);
const io::WeightSource& starting_weights(const ModelSource& src, const io::CheckpointReader* resume);

// The model's structure only: its parameters get memory from the runtime, which fills each rank's
// part from the starting weights (fsdp::FsdpModel).
std::unique_ptr<model::LlamaModel> build_model(const RunConfig& config, const ModelSource& src);

// The runtime over `model`, each rank reading its part of every unit from `init`; with `report`
// (rank 0) the progress and the time it took.
std::unique_ptr<fsdp::FsdpModel> load_model(model::LlamaModel& model, comm::Communicator& comm, const fsdp::FsdpConfig& fc,
                                            const io::WeightSource& init, bool report);

// Streams the trained model into <output.dir>/hf, one unit gathered at a time (rank 0 writes).
void export_model(const RunConfig& config, const ModelSource& src, fsdp::FsdpModel& fsdp, comm::Communicator& world);

}  // namespace ftdist::train
