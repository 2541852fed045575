// Every rank must train the same run on the same inputs: a copy of the config, or of a model or
// data file, that differs on one node would train another model there, or leave the ranks in
// different collectives until the timeout. Both checks run before anything is loaded and stop every
// rank (exit 2); the rank that differs names what differs. Private to train/.
#pragma once

#include "ftdist/comm/communicator.h"
#include "ftdist/train/run_config.h"

namespace ftdist::train {

// The run config (its keys, as given; checkpoint.dir as written) against rank 0's.
void check_same_config_on_every_rank(const RunConfig& config, comm::Communicator& world);

// The files the config names (model.path's directory, model.config, data.train, data.eval,
// data.tokenizer) against rank 0's copies: each by its size and the bytes at its start and end (a
// directory: the files ftdist reads in it so — config, weights, index, tokenizer files), so that
// node-local copies that differ — another config.json, other data — are found without reading
// whole files.
void check_same_inputs_on_every_rank(const RunConfig& config, comm::Communicator& world);

}  // namespace ftdist::train
