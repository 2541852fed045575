#include "ftdist/train/checkpoint_saver.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <csignal>
#include <thread>
#include <cstdlib>

#include "ftdist/core/check.h"
#include "ftdist/core/log.h"
#include "ftdist/core/text_file.h"
#include "ftdist/io/checkpoint.h"
#include "ftdist/io/hf_export.h"
#include "ftdist/io/safetensors.h"

namespace ftdist::train {
namespace {

std::string hex_of(const at::Tensor& bytes) {
  static const char* digits = "0123456789abcdef";
  at::Tensor b = bytes.contiguous();
  const uint8_t* p = b.data_ptr<uint8_t>();
  std::string out;
  for (int64_t i = 0; i < b.numel(); ++i) {
    out.push_back(digits[p[i] >> 4]);
    out.push_back(digits[p[i] & 15]);
  }
  return out;
}

at::Tensor bytes_of_hex(const std::string& hex) {
  at::Tensor t = at::empty({int64_t(hex.size() / 2)}, at::kByte);
  uint8_t* p = t.data_ptr<uint8_t>();
  auto val = [](char ch) { return ch <= '9' ? ch - '0' : ch - 'a' + 10; };
  for (size_t i = 0; i + 1 < hex.size(); i += 2) p[i / 2] = uint8_t(val(hex[i]) * 16 + val(hex[i + 1]));
  return t;
}

}  // namespace


std::string save_checkpoint(const std::string& root, const SaveRequest& req, const fsdp::FsdpModel& fsdp,
                            comm::Communicator& world) {
  const fsdp::FsdpConfig& cfg = fsdp.config();
  const std::string tmp = io::checkpoint_tmp_dir(root, req.step);
  if (world.rank() == 0) {
    make_directories(root, "checkpoint.dir");
    remove_tree(tmp, "checkpoint.dir");  // a save of this step that was killed
    make_directories(tmp, "checkpoint.dir");
  }
  // (The waits below allow for file system work of any length on the ranks waited for:
  // Communicator::barrier_after_io, not the collectives' timeout.)
  world.barrier_after_io("preparing the checkpoint directory", 0);

  const plan::ModelSpec& spec = fsdp.spec();
  const std::vector<plan::ModelSpec::Unit> units = spec.units();
  const fsdp::FsdpModel::StateFiles files = fsdp.state_files();
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  int64_t file_bytes = 0;  // this rank's file (every rank's is about as large)
  for (size_t u = 0; u < units.size(); ++u)
    for (const plan::OptimizerState& st : io::checkpoint_states(cfg.optimizer.kind)) {
      tensors.push_back({io::state_tensor_name(units[u].name, st.name), fsdp.state_slice(u, st.name)});
      file_bytes += int64_t(tensors.back().second.nbytes());
    }
  if (files.writes)
    io::save_safetensors(tmp + "/" + io::rank_file_name(files.index, files.count), tensors,
                         {{"format", "ftdist-checkpoint"}, {"step", std::to_string(req.step)},
                          {"file", io::rank_file_name(files.index, files.count)}});
  const char* delay_rank = std::getenv("FTDIST_TEST_SAVE_DELAY_RANK");  // only that rank's save is slow
  if (const char* delay = std::getenv("FTDIST_TEST_SAVE_DELAY_S"))      // a save that takes seconds, as a large model's does
    if (!delay_rank || std::atoi(delay_rank) == world.rank())
      std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(delay)));
  if (const char* kill = std::getenv("FTDIST_TEST_KILL_DURING_SAVE"))
    if (std::atoll(kill) == req.step && world.rank() == world.size() - 1) std::raise(SIGKILL);
  world.barrier_after_io("writing the checkpoint's rank files", file_bytes);  // every rank file is on disk

  std::string final_dir = root + "/" + io::checkpoint_dir_name(req.step);
  if (world.rank() == 0) {
    // Every rank file arrived (a rank whose checkpoint.dir is another node's local disk writes its
    // file there): a checkpoint that lacks one is never committed.
    for (int k = 0; k < files.count; ++k)
      FT_CHECK_ARG(file_exists(tmp + "/" + io::rank_file_name(k, files.count)),
                   "checkpoint: " << tmp << "/" << io::rank_file_name(k, files.count) << " is missing after every rank wrote its "
                                  << "file; checkpoint.dir must be one directory that every rank shares (not a node-local path)");
    io::CheckpointMeta meta;
    meta.step = req.step;
    meta.world_size = world.size();
    meta.file_shards = files.count;
    meta.stage = plan::stage_name(cfg.stage);
    meta.precision = plan::precision_name(cfg.precision);
    meta.model_name = spec.name;
    for (const auto& u : units) meta.units.push_back({u.name, u.numel(), u.tensors});
    meta.shard_alignment = plan::shard_alignment(cfg.optimizer.kind);
    meta.optimizer = cfg.optimizer.to_json();
    meta.optimizer["step"] = fsdp.optimizer_steps();
    meta.trainer = req.trainer;
    io::copy_carried_files(req.tokenizer_dir, req.model_dir, tmp);
    final_dir = io::commit_checkpoint(root, tmp, meta, req.config_text, req.keep);
  }
  world.barrier_after_io("committing the checkpoint", 0);  // committed before anyone goes on (or exits)
  return final_dir;
}

std::string checkpoint_to_resume(const RunConfig& c) {
  if (!c.saves_checkpoints() && !c.resume) return "";
  const std::string latest = io::find_latest_checkpoint(c.checkpoint_root());
  if (!c.resume) {
    FT_CHECK_ARG(latest.empty(), c.origin << ": checkpoint.dir '" << c.checkpoint_root() << "' already holds checkpoints (latest: "
                                          << latest << "); set checkpoint.resume = true to continue from it, or choose "
                                             "another checkpoint.dir");
    return "";
  }
  if (latest.empty()) FT_LOG_INFO("checkpoint.resume: no checkpoint in '" << c.checkpoint_root() << "' yet; starting at step 0");
  // A rollback (`latest` set back to an earlier checkpoint): said once, with what becomes of the later ones.
  std::vector<std::string> later;
  const std::string name = latest.substr(latest.find_last_of('/') + 1);
  for (const std::string& d : io::checkpoints_in_save_order(c.checkpoint_root()))
    if (!latest.empty() && d.size() == name.size() && d > name) later.push_back(d);  // (names of one width sort by step)
  if (!later.empty() && log::rank() <= 0) {  // (once, not on every rank)
    std::string list;
    for (size_t i = 0; i < later.size() && i < 3; ++i) list += (i ? ", " : "") + later[i];
    if (later.size() > 3) list += " and " + std::to_string(later.size() - 3) + " more";
    FT_LOG_WARN("checkpoint.resume: going on from " << name << " (latest) while checkpoints of later steps exist (" << list
                << "): a rollback. This run replaces each when it saves that step; checkpoint.keep removes the oldest saves first");
  }
  return latest;
}

int64_t resumed_global_batch(const RunConfig& c) {
  const std::string dir = c.resume ? io::find_latest_checkpoint(c.checkpoint_root()) : "";
  if (dir.empty()) return 0;
  const std::string path = dir + "/meta.json";
  const io::CheckpointMeta meta = io::CheckpointMeta::from_json(read_text_file(path, "checkpoint", uint64_t(64) << 20), path);
  return meta.trainer.value("sampler", nlohmann::json::object()).value("global_batch", int64_t(0));
}


std::string cpu_rng_state_hex() { return hex_of(at::detail::getDefaultCPUGenerator().get_state()); }

void set_cpu_rng_state_hex(const std::string& hex, const std::string& where) {
  at::Generator gen(at::detail::getDefaultCPUGenerator());
  const at::Tensor state = bytes_of_hex(hex);
  const int64_t want = gen.get_state().numel();
  FT_CHECK_ARG(state.numel() == want, where << ": \"rng_cpu\" holds " << state.numel() << " bytes; this build's CPU generator "
                                            << "state is " << want << " bytes (a damaged or foreign checkpoint)");
  gen.set_state(state);
}

}  // namespace ftdist::train
