// Launch lines and files for a planned allocation: an mpirun command with its hostfile, or a Slurm
// sbatch script. The training command itself is `ftdist train --config run.toml`.
#pragma once

#include <string>

#include "ftdist/plan/search.h"

namespace ftdist::plan {

std::string mpirun_command(const PlanRequest& request, const Candidate& c);
std::string hostfile_text(const Candidate& c);  // node01 slots=8 ... (placeholders to edit)
std::string sbatch_text(const PlanRequest& request, const Candidate& c);

}  // namespace ftdist::plan
