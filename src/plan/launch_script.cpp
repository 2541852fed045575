#include "ftdist/plan/launch_script.h"

#include <cstdio>
#include <sstream>

namespace ftdist::plan {
namespace {
std::string settings_comment(const PlanRequest& req, const Candidate& c) {
  std::ostringstream os;
  os << "# planned: " << req.model.name << " on " << c.gpus << " x " << req.hardware[c.hardware].gpu.name << " ("
     << c.nodes << " node" << (c.nodes > 1 ? "s" : "") << "), shard " << stage_name(c.setup.stage) << ", micro-batch "
     << c.setup.micro_batch << ", grad-accum " << c.grad_accum << ", checkpointing "
     << activation_checkpointing_name(c.setup.activation_checkpointing) << ", seq-len " << c.setup.seq_len << "\n";
  return os.str();
}
}  // namespace

std::string mpirun_command(const PlanRequest&, const Candidate& c) {
  std::ostringstream os;
  os << "launch/ftdist-mpirun -np " << c.gpus;
  if (c.nodes > 1) os << " --hostfile hostfile";
  os << " build/ftdist train --config run.toml";
  return os.str();
}

std::string hostfile_text(const Candidate& c) {
  std::ostringstream os;
  os << "# one line per node: replace the names with your hosts\n";
  int per_node = c.nodes > 0 ? c.gpus / c.nodes : c.gpus;
  for (int i = 0; i < c.nodes; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "node%02d", i + 1);
    os << name << " slots=" << per_node << "\n";
  }
  return os.str();
}

std::string sbatch_text(const PlanRequest& req, const Candidate& c) {
  int per_node = c.nodes > 0 ? c.gpus / c.nodes : c.gpus;
  double hours = c.time.total_s / 3600.0 * 1.2 + 0.25;  // 20% + 15 min of slack over the estimate
  int minutes = int(hours * 60.0 + 0.5);
  std::ostringstream os;
  os << "#!/bin/bash\n"
     << settings_comment(req, c)
     << "#SBATCH --job-name=ftdist-" << req.model.name << "\n"
     << "#SBATCH --nodes=" << c.nodes << "\n"
     << "#SBATCH --ntasks-per-node=" << per_node << "\n"
     << "#SBATCH --gpus-per-node=" << per_node << "\n"
     << "#SBATCH --time=" << minutes / 60 << ":" << (minutes % 60 < 10 ? "0" : "") << minutes % 60 << ":00\n"
     << "#SBATCH --exclusive\n"
     << "#SBATCH --signal=TERM@300   # every rank gets SIGTERM 5 min before the time limit: it saves and stops\n"
     << "set -euo pipefail\n"
     << "# each rank binds GPU = SLURM_LOCALID; NCCL bootstraps over MPI (PMIx)\n"
     << "srun --mpi=pmix build/ftdist train --config run.toml\n";
  return os.str();
}

}  // namespace ftdist::plan
