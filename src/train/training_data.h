// The run's data as the loop consumes it: token files mapped (JSONL tokenized once on rank 0 while
// the others wait), micro-batches cut on demand, the evaluation loss. Private to train/.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ftdist/comm/communicator.h"
#include "ftdist/data/packing.h"
#include "ftdist/data/tokenizer.h"
#include "ftdist/fsdp/fsdp_model.h"
#include "ftdist/train/run_config.h"

namespace ftdist::train {

// Runs `work` on rank 0 while the other ranks wait for it, however long it takes: `work` calls the
// heartbeat it is given every few seconds at least (a broadcast the waiting ranks answer), so the
// communicator's timeout bounds rank 0's silence, not the length of the work. An error on rank 0
// ends the job as any error does.
void on_rank0_while_others_wait(comm::Communicator& world, const std::function<void(const std::function<void()>&)>& work);

// A data path as samples cut on demand from a memory-mapped token file: a .ftok as it is; JSONL
// tokenized once into <output.dir>/data/ (rank 0 writes, with a progress bar, while the others
// wait; reused while the input and the tokenizer are unchanged), cut as `packing` says (documents or
// stream: resolved, c.packing for data.train, c.eval_packing for data.eval).
data::PackedSamples open_samples(const std::string& path, const std::string& what, const std::string& packing, const RunConfig& c,
                                 const data::Tokenizer& tokenizer, int64_t vocab, comm::Communicator& world);

// data.train and data.eval, opened before the model loads (a bad token file stops the run first).
struct TrainingData {
  data::PackedSamples train;
  std::optional<data::PackedSamples> eval;
  // The token files' pages read so far leave the rank's resident memory (they stay in the page
  // cache): over an epoch a rank would otherwise come to hold every page it ever trained on.
  void release_pages() const;
};
TrainingData open_training_data(const RunConfig& c, int64_t vocab, comm::Communicator& world);

// Micro-batches of `micro` sequences from the samples at `idx`: (micro, seq_len) int64 ids and
// labels, cut from the token file now.
std::vector<fsdp::MicroBatch> micro_batches(const data::PackedSamples& samples, const std::vector<int64_t>& idx, int64_t micro);

// The mean loss over every counted token of the eval samples (nullopt when none counts). Samples
// rank, rank + n, ...; every rank runs the same number of forwards (their gathers are
// collectives), the ranks short of one run a last one whose labels count nothing.
std::optional<double> evaluate(fsdp::FsdpModel& fsdp, const data::PackedSamples& eval, comm::Communicator& world);

}  // namespace ftdist::train
