#include "ftdist/train/checkpointing.h"

#include <csignal>
#include <cstdlib>

#include "ftdist/core/check.h"
#include "ftdist/core/log.h"
#include "ftdist/core/text_file.h"
#include "ftdist/io/checkpoint.h"
#include "ftdist/io/hf_export.h"
#include "ftdist/io/safetensors.h"

namespace ftdist::train {

std::string save_checkpoint(const std::string& root, const SaveRequest& req, const fsdp::FsdpModel& fsdp,
                            comm::Communicator& world) {
  const fsdp::FsdpConfig& cfg = fsdp.config();
  const std::string tmp = io::checkpoint_tmp_dir(root, req.step);
  if (world.rank() == 0) {
    make_directories(root, "checkpoint.dir");
    remove_tree(tmp, "checkpoint.dir");  // a save of this step that was killed
    make_directories(tmp, "checkpoint.dir");
  }
  world.barrier();

  const plan::ModelSpec& spec = fsdp.spec();
  const std::vector<plan::ModelSpec::Unit> units = spec.units();
  const fsdp::FsdpModel::StateFiles files = fsdp.state_files();
  if (files.writes) {
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (size_t u = 0; u < units.size(); ++u)
      for (io::StateKind kind : io::kStateKinds)
        tensors.push_back({io::state_tensor_name(units[u].name, kind), fsdp.state_slice(u, kind)});
    io::save_safetensors(tmp + "/" + io::rank_file_name(files.index, files.count), tensors,
                         {{"format", "ftdist-checkpoint"}, {"step", std::to_string(req.step)}});
  }
  if (const char* kill = std::getenv("FTDIST_TEST_KILL_DURING_SAVE"))
    if (std::atoll(kill) == req.step && world.rank() == world.size() - 1) std::raise(SIGKILL);
  world.barrier();  // every rank file is on disk

  std::string final_dir = root + "/" + io::checkpoint_dir_name(req.step);
  if (world.rank() == 0) {
    io::CheckpointMeta meta;
    meta.step = req.step;
    meta.world_size = world.size();
    meta.file_shards = files.count;
    meta.stage = plan::stage_name(cfg.stage);
    meta.precision = plan::precision_name(cfg.precision);
    meta.model_name = spec.name;
    for (const auto& u : units) meta.units.push_back({u.name, u.numel(), u.tensors});
    meta.optimizer = {{"name", "adamw"},         {"beta1", cfg.adamw.beta1}, {"beta2", cfg.adamw.beta2},
                      {"eps", cfg.adamw.eps},     {"weight_decay", cfg.adamw.weight_decay},
                      {"step", fsdp.optimizer_steps()}};
    meta.trainer = req.trainer;
    if (!req.tokenizer_dir.empty()) io::copy_tokenizer_files(req.tokenizer_dir, tmp);
    final_dir = io::commit_checkpoint(root, tmp, meta, req.config_text, req.keep);
  }
  world.barrier();  // committed before anyone goes on (or exits)
  return final_dir;
}

}  // namespace ftdist::train
