// Checkpoints: saved on N ranks with one stage, loaded on M ranks with another (4->2, 2->4, 4->3
// with uneven padding, hybrid 2x2 -> 1 rank unsharded, 1 -> 4 with the optimizer stage), the
// parameters, both AdamW states and the step count come back bit for bit; a resumed optimizer
// continues exactly. Damaged checkpoints give errors naming the file. Run under mpirun -np 4
// (the save and load groups are carved out of the world with split).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "../comm/mpi_world.h"
#include "../expect_error.h"
#include "../model/tiny_model.h"
#include "ftdist/core/text_file.h"
#include "ftdist/fsdp/fsdp_model.h"
#include "ftdist/io/checkpoint.h"
#include "ftdist/io/hf_checkpoint.h"
#include "ftdist/io/hf_export.h"
#include "ftdist/model/loss.h"
#include "ftdist/train/checkpoint_saver.h"

using namespace ftdist;

namespace {

constexpr int64_t kSeq = 8;

fsdp::MicroBatch batch(int step, int rank, int64_t vocab) {
  at::Generator gen = at::detail::createCPUGenerator(7919ull * step + rank);
  at::Tensor ids = at::randint(0, vocab, {2, kSeq}, gen, at::kLong);
  return {ids, ids.clone()};
}

// A directory every rank agrees on (rank 0's pid), fresh for each test.
std::string shared_dir(comm::Communicator& world, const std::string& name) {
  at::Tensor pid = at::full({1}, int64_t(world.rank() == 0 ? ::getpid() : 0), at::kLong);
  world.all_reduce(pid, comm::ReduceOp::Max);
  const std::string dir = std::string(FTDIST_TEST_TMP) + "/ckpt-" + std::to_string(pid.item<int64_t>()) + "-" + name;
  if (world.rank() == 0) {
    remove_tree(dir, "test");
    make_directories(dir, "test");
  }
  world.barrier();
  return dir;
}

fsdp::FsdpConfig config(plan::Stage stage, int shard_group = 0, plan::OptimizerKind opt = plan::OptimizerKind::AdamW,
                        bool offload = false) {
  fsdp::FsdpConfig c;
  c.stage = stage;
  c.offload_optimizer = offload;
  c.shard_group = shard_group;
  c.optimizer.kind = opt;
  c.optimizer.adamw.weight_decay = 0.1;
  c.optimizer.sgd.weight_decay = 0.1;
  return c;
}

// save_checkpoint of `f` as step `step` into `root` (every rank of `comm`).
void save_step(const std::string& root, int64_t step, const fsdp::FsdpModel& f, comm::Communicator& comm,
          const std::string& tokenizer_dir = "", int keep = 2) {
  train::SaveRequest req;
  req.step = step;
  req.keep = keep;
  req.config_text = plan::hf_config_text(f.spec());
  req.tokenizer_dir = tokenizer_dir;
  train::save_checkpoint(root, req, f, comm);
}

using States = std::vector<std::vector<at::Tensor>>;  // per unit: io::checkpoint_states(), in order

States gather_all(fsdp::FsdpModel& f) {
  States out;
  for (size_t u = 0; u < f.num_units(); ++u) {
    out.emplace_back();
    for (const plan::OptimizerState& st : io::checkpoint_states(f.config().optimizer.kind))
      out.back().push_back(f.gather_state(u, st.name));
  }
  return out;
}

// Every state of every unit bitwise equal, the first difference named.
void expect_same_states(const States& a, const States& b, plan::OptimizerKind opt) {
  const auto names = io::checkpoint_states(opt);
  ASSERT_EQ(a.size(), b.size());
  for (size_t u = 0; u < a.size(); ++u)
    for (size_t k = 0; k < names.size(); ++k)
      EXPECT_TRUE(at::equal(a[u][k], b[u][k])) << "unit " << u << " " << names[k].name << ": max difference "
                                                << (a[u][k].to(at::kDouble) - b[u][k].to(at::kDouble)).abs().max().item<double>();
}

struct Side {
  int ranks;
  plan::Stage stage;
  int shard_group = 0;
  plan::OptimizerKind opt = plan::OptimizerKind::AdamW;
  bool offload = false;  // master and optimizer states in host memory
};

// Trains `steps` steps on the first `save.ranks` ranks and checkpoints; then the first `load.ranks`
// ranks load it into a differently initialized model and must hold the very same state.
void reshard_case(const Side& save, const Side& load, bool tied, const std::string& name) {
  auto world = mpi_world();
  if (world->size() < std::max(save.ranks, load.ranks)) GTEST_SKIP() << "needs " << std::max(save.ranks, load.ranks) << " ranks";
  const std::string root = shared_dir(*world, name);
  const plan::ModelSpec spec = tiny_spec("llama", tied);
  States saved;
  int64_t saved_steps = 0;
  {
    auto group = world->split(world->rank() < save.ranks ? 0 : 1, world->rank());
    if (world->rank() < save.ranks) {
      model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat));
      randomize(m, 42);
      fsdp::FsdpModel f(m, *group, config(save.stage, save.shard_group, save.opt, save.offload));
      for (int s = 0; s < 2; ++s) f.train_step({batch(s, group->rank(), spec.vocab)}, 1e-2);
      saved = gather_all(f);
      saved_steps = f.optimizer_steps();
      save_step(root, 2, f, *group);
    }
  }
  world->barrier();
  // The loading ranks need the saved values to compare with: rank 0 saved on every case.
  auto group = world->split(world->rank() < load.ranks ? 0 : 1, world->rank());
  if (world->rank() >= load.ranks) return;
  io::CheckpointReader ckpt(io::find_latest_checkpoint(root));
  EXPECT_EQ(ckpt.meta().step, 2);
  EXPECT_EQ(ckpt.meta().world_size, save.ranks);
  model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat));
  randomize(m, 7);  // different weights: everything must come from the checkpoint
  fsdp::FsdpModel f(m, *group, config(load.stage, load.shard_group, load.opt, load.offload));
  f.load_state(ckpt);
  States loaded = gather_all(f);
  EXPECT_EQ(f.optimizer_steps(), 2);
  if (world->rank() == 0) {
    EXPECT_EQ(saved_steps, 2);
    expect_same_states(loaded, saved, load.opt);
  }
}

}  // namespace

TEST(Reshard, FourFullToTwoGradOp) { reshard_case({4, plan::Stage::Full}, {2, plan::Stage::GradOp}, false, "4to2"); }
TEST(Reshard, TwoFullToFourOptimizer) { reshard_case({2, plan::Stage::Full}, {4, plan::Stage::Optimizer}, false, "2to4"); }
TEST(Reshard, FourOptimizerToThreeFullUnevenPadding) {
  reshard_case({4, plan::Stage::Optimizer}, {3, plan::Stage::Full}, true, "4to3");
}
TEST(Reshard, HybridTwoByTwoToOneUnsharded) {
  reshard_case({4, plan::Stage::Hybrid, 2}, {1, plan::Stage::None}, false, "hybrid");
}
TEST(Reshard, TwoUnshardedToThreeHybridOfOne) {
  reshard_case({2, plan::Stage::None}, {3, plan::Stage::Hybrid, 1}, false, "none");
}
// 8-bit AdamW: codes and block scales reshard exactly (blocks are counted from each unit's start).
TEST(Reshard, EightBitFourFullToThreeOptimizer) {
  const auto q = plan::OptimizerKind::AdamW8bit;
  reshard_case({4, plan::Stage::Full, 0, q}, {3, plan::Stage::Optimizer, 0, q}, true, "8bit-4to3");
}
TEST(Reshard, EightBitTwoUnshardedToFourHybridOfTwo) {
  const auto q = plan::OptimizerKind::AdamW8bit;
  reshard_case({2, plan::Stage::None, 0, q}, {4, plan::Stage::Hybrid, 2, q}, false, "8bit-none");
}
TEST(Reshard, SgdThreeGradOpToTwoFull) {
  const auto sgd = plan::OptimizerKind::SgdMomentum;
  reshard_case({3, plan::Stage::GradOp, 0, sgd}, {2, plan::Stage::Full, 0, sgd}, false, "sgd");
}

// Optimizer offload keeps the same states in host memory: its checkpoints are any run's, both ways.
TEST(Reshard, OffloadedFourFullToTwoOptimizer) {
  const auto a = plan::OptimizerKind::AdamW;
  reshard_case({4, plan::Stage::Full, 0, a, true}, {2, plan::Stage::Optimizer, 0, a, false}, false, "offload-4to2");
}
TEST(Reshard, EightBitTwoGradOpToThreeOffloadedUnsharded) {
  const auto q = plan::OptimizerKind::AdamW8bit;
  reshard_case({2, plan::Stage::GradOp, 0, q, false}, {3, plan::Stage::None, 0, q, true}, true, "offload-2to3");
}

// A resumed optimizer continues exactly: save after 2 steps, load into a fresh model on the same
// ranks, and the next 2 steps give bit-identical losses and parameters; a checkpoint of another
// optimizer is refused, naming both.
void resume_case(plan::OptimizerKind opt, const std::string& name, bool offload = false) {
  auto world = mpi_world();
  const std::string root = shared_dir(*world, name);
  const plan::ModelSpec spec = tiny_spec("qwen2");
  model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat));
  randomize(m, 3);
  fsdp::FsdpModel a(m, *world, config(plan::Stage::Full, 0, opt, offload));
  for (int s = 0; s < 2; ++s) a.train_step({batch(s, world->rank(), spec.vocab)}, 1e-2);
  save_step(root, 2, a, *world);
  std::vector<double> la;
  for (int s = 2; s < 4; ++s) la.push_back(a.train_step({batch(s, world->rank(), spec.vocab)}, 1e-2).loss);

  model::LlamaModel m2(spec, at::TensorOptions().dtype(at::kFloat));
  randomize(m2, 99);
  fsdp::FsdpModel b(m2, *world, config(plan::Stage::Full, 0, opt, offload));
  const io::CheckpointReader ckpt(io::find_latest_checkpoint(root));
  b.load_state(ckpt);
  for (int s = 2; s < 4; ++s) EXPECT_EQ(b.train_step({batch(s, world->rank(), spec.vocab)}, 1e-2).loss, la[size_t(s - 2)]);
  expect_same_states(gather_all(a), gather_all(b), opt);

  const auto other = opt == plan::OptimizerKind::AdamW ? plan::OptimizerKind::SgdMomentum : plan::OptimizerKind::AdamW;
  model::LlamaModel m3(spec, at::TensorOptions().dtype(at::kFloat));
  randomize(m3, 5);
  fsdp::FsdpModel c(m3, *world, config(plan::Stage::Full, 0, other));
  expect_bad_input([&] { c.load_state(ckpt); }, std::string("holds the states of optimizer ") + plan::optimizer_name(opt) +
                                                     ", this run uses " + plan::optimizer_name(other));
}

TEST(Resume, ContinuesBitwise) { resume_case(plan::OptimizerKind::AdamW, "resume"); }
TEST(Resume, EightBitContinuesBitwise) { resume_case(plan::OptimizerKind::AdamW8bit, "resume-8bit"); }
TEST(Resume, SgdContinuesBitwise) { resume_case(plan::OptimizerKind::SgdMomentum, "resume-sgd"); }
TEST(Resume, OffloadedContinuesBitwise) { resume_case(plan::OptimizerKind::AdamW, "resume-offload", true); }

// Damage: every broken checkpoint is refused with the file named; keep-K and `latest` behave.
TEST(Damage, ClearErrors) {
  auto world = mpi_world();
  const std::string root = shared_dir(*world, "damage");
  const plan::ModelSpec spec = tiny_spec("llama");
  model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat));
  randomize(m, 5);
  fsdp::FsdpModel f(m, *world, config(plan::Stage::Full));
  for (int64_t step : {1, 2, 3}) {  // the default keep = 2
    f.train_step({batch(int(step), world->rank(), spec.vocab)}, 1e-2);
    save_step(root, step, f, *world);
  }
  // A checkpoint holding a file ftdist did not write (the user's notes) is not pruned; the user's
  // own .tmp- entries stay, a save's stale temporary (a killed prune) is swept.
  if (world->rank() == 0) {
    write_text_file_atomic(root + "/" + io::checkpoint_dir_name(2) + "/notes.txt", "precious", "test");
    make_directories(root + "/.tmp-mywork", "test");
    write_text_file_atomic(root + "/.tmp-mywork/notes.txt", "precious", "test");
    write_text_file_atomic(root + "/.tmp-draft.txt", "precious", "test");
    make_directories(root + "/.tmp-pruned-step-00000009", "test");
  }
  world->barrier();
  f.train_step({batch(4, world->rank(), spec.vocab)}, 1e-2);
  save_step(root, 4, f, *world);
  // Saving step 4 again (a run resumed from before it) keeps the notes written into the first save.
  if (world->rank() == 0) write_text_file_atomic(root + "/" + io::checkpoint_dir_name(4) + "/notes.txt", "step 4", "test");
  world->barrier();
  save_step(root, 4, f, *world);
  if (world->rank() != 0) return;
  EXPECT_EQ(read_text_file(root + "/" + io::checkpoint_dir_name(4) + "/notes.txt", "test"), "step 4");
  // keep = 2: step 1 is gone, step 2 kept for its notes, latest is step 4.
  EXPECT_FALSE(is_directory(root + "/" + io::checkpoint_dir_name(1)));
  EXPECT_TRUE(file_exists(root + "/" + io::checkpoint_dir_name(2) + "/notes.txt"));
  EXPECT_TRUE(is_directory(root + "/" + io::checkpoint_dir_name(3)));
  for (const std::string& entry : list_directory(root))  // pruning goes through a .tmp- name, swept at the end
    if (entry != ".tmp-mywork" && entry != ".tmp-draft.txt") {
      EXPECT_NE(entry.rfind(".tmp-", 0), 0u) << entry << " was left in " << root;
    }
  EXPECT_EQ(read_text_file(root + "/.tmp-mywork/notes.txt", "test"), "precious");
  EXPECT_EQ(read_text_file(root + "/.tmp-draft.txt", "test"), "precious");
  const std::string dir = io::find_latest_checkpoint(root);
  EXPECT_EQ(dir, root + "/" + io::checkpoint_dir_name(4));
  EXPECT_NO_THROW(io::CheckpointReader r(dir));

  // A copy to damage in different ways.
  auto fresh_copy = [&](const std::string& name) {
    const std::string d = root + "/" + name;
    remove_tree(d, "test");
    make_directories(d, "test");
    for (const std::string& file : list_directory(dir))
      write_text_file_atomic(d + "/" + file, read_text_file(dir + "/" + file, "test"), "test");
    return d;
  };
  const std::string last_rank = io::rank_file_name(world->size() - 1, world->size());
  {
    const std::string d = fresh_copy("missing");
    std::remove((d + "/" + last_rank).c_str());
    expect_bad_input([&] { io::CheckpointReader r(d); }, last_rank + "' is missing");
  }
  {
    const std::string d = fresh_copy("truncated");
    std::string bytes = read_text_file(d + "/" + last_rank, "test");
    write_text_file_atomic(d + "/" + last_rank, bytes.substr(0, bytes.size() - 100), "test");
    expect_bad_input([&] { io::CheckpointReader r(d); }, last_rank);
  }
  {
    const std::string d = fresh_copy("badmeta");
    write_text_file_atomic(d + "/meta.json", "{\"format\": \"ftdist-checkpoint\", \"step\": ", "test");
    expect_bad_input([&] { io::CheckpointReader r(d); }, d + "/meta.json: not valid JSON");
  }
  {
    // Another model: the config says 3 layers, the checkpoint holds 2.
    const std::string d = fresh_copy("othermodel");
    plan::ModelSpec other = spec;
    other.layers = 3;
    write_text_file_atomic(d + "/config.json", plan::hf_config_text(other), "test");
    expect_bad_input([&] { io::CheckpointReader r(d); }, "meta.json: this checkpoint is of another model");
    // and the run's model checked against a sound checkpoint's meta
    io::CheckpointReader sound(dir);
    expect_bad_input([&] { sound.meta().check_model(other, "meta.json"); }, "another model");
  }
  {
    // meta.json naming an optimizer ftdist does not have, or an alignment that splits 8-bit blocks.
    const std::string d = fresh_copy("badoptimizer");
    nlohmann::json meta = nlohmann::json::parse(read_text_file(d + "/meta.json", "test"));
    meta["optimizer"]["name"] = "lion";
    write_text_file_atomic(d + "/meta.json", meta.dump(), "test");
    expect_bad_input([&] { io::CheckpointReader r(d); }, "\"optimizer.name\" is 'lion' (expected adamw, adamw-8bit or sgd-momentum)");
    meta["optimizer"]["name"] = "adamw-8bit";
    meta["shard_alignment"] = 1000;
    write_text_file_atomic(d + "/meta.json", meta.dump(), "test");
    if (world->size() > 1) expect_bad_input([&] { io::CheckpointReader r(d); }, "\"shard_alignment\" 1000 does not keep the 2048-element blocks");
  }
  {
    // A rank file from another step (step 2's, beside step 4's meta.json): not a blend of two states.
    const std::string d = fresh_copy("mixedsteps");
    const std::string older = root + "/" + io::checkpoint_dir_name(2);
    write_text_file_atomic(d + "/" + last_rank, read_text_file(older + "/" + last_rank, "test"), "test");
    expect_bad_input([&] { io::CheckpointReader r(d); }, last_rank + ": the file was saved at step 2, meta.json says step 4");
  }
  if (world->size() > 1) {
    // Two rank files swapped: each records its own name.
    const std::string d = fresh_copy("swapped");
    const std::string first = io::rank_file_name(0, world->size());
    const std::string a = read_text_file(d + "/" + first, "test"), b = read_text_file(d + "/" + last_rank, "test");
    write_text_file_atomic(d + "/" + first, b, "test");
    write_text_file_atomic(d + "/" + last_rank, a, "test");
    expect_bad_input([&] { io::CheckpointReader r(d); }, first + ": the file was saved as '" + last_rank + "'");
  }
  {
    write_text_file_atomic(root + "/latest", "step-00000099\n", "test");
    expect_bad_input([&] { io::find_latest_checkpoint(root); }, "latest names 'step-00000099'");
  }
}

// A rollback: `latest` set back to step 2 of saves 2, 4, 6 (keep = 3), and the resumed run saves 3
// and 5. Pruning goes by save order, so it removes the abandoned step 4, not the run's own step 3;
// without `latest`, the run goes on from its own last save (5), not the abandoned step 6.
TEST(Prune, RollbackKeepsTheResumedRunsSaves) {
  auto world = mpi_world();
  const std::string root = shared_dir(*world, "rollback");
  const plan::ModelSpec spec = tiny_spec("llama");
  model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat));
  randomize(m, 5);
  fsdp::FsdpModel f(m, *world, config(plan::Stage::Full));
  for (int64_t step : {2, 4, 6}) save_step(root, step, f, *world, "", 3);
  if (world->rank() == 0) write_text_file_atomic(root + "/latest", io::checkpoint_dir_name(2) + "\n", "test");
  world->barrier();
  for (int64_t step : {3, 5}) save_step(root, step, f, *world, "", 3);
  if (world->rank() != 0) return;
  const std::vector<std::string> want = {io::checkpoint_dir_name(6), io::checkpoint_dir_name(3), io::checkpoint_dir_name(5)};
  EXPECT_EQ(io::checkpoints_in_save_order(root), want);
  EXPECT_GT(io::CheckpointReader(root + "/" + io::checkpoint_dir_name(5)).meta().saved_at,
            io::CheckpointReader(root + "/" + io::checkpoint_dir_name(6)).meta().saved_at);
  ASSERT_EQ(std::remove((root + "/latest").c_str()), 0);
  EXPECT_EQ(io::find_latest_checkpoint(root), root + "/" + io::checkpoint_dir_name(5));
}

// Checkpoints saved before meta.json had saved_at go by step, before any that has it: file times
// say nothing of the order after a copy (here their meta.json rewritten newest step first).
TEST(Prune, CheckpointsWithoutSavedAtGoByStep) {
  auto world = mpi_world();
  const std::string root = shared_dir(*world, "no-saved-at");
  const plan::ModelSpec spec = tiny_spec("llama");
  model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat));
  randomize(m, 5);
  fsdp::FsdpModel f(m, *world, config(plan::Stage::Full));
  for (int64_t step : {1, 2, 3}) save_step(root, step, f, *world, "", 0);
  if (world->rank() == 0)
    for (int64_t step : {3, 2, 1}) {
      const std::string meta = root + "/" + io::checkpoint_dir_name(step) + "/meta.json";
      nlohmann::json j = nlohmann::json::parse(read_text_file(meta, "test"));
      j.erase("saved_at");
      write_text_file_atomic(meta, j.dump(2), "test");
      ::usleep(20000);  // (distinct modification times, newest for step 1)
    }
  world->barrier();
  save_step(root, 4, f, *world, "", 2);
  if (world->rank() != 0) return;
  const std::vector<std::string> want = {io::checkpoint_dir_name(3), io::checkpoint_dir_name(4)};
  EXPECT_EQ(io::checkpoints_in_save_order(root), want);
}

// Export streams the checkpoint into Hugging Face files cut at the size limit, with an index; the
// tensors equal the checkpoint's master weights (fp32) or their bf16 rounding.
TEST(Export, ShardsAndIndex) {
  auto world = mpi_world();
  const std::string root = shared_dir(*world, "export");
  const plan::ModelSpec spec = tiny_spec("llama");
  model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat));
  randomize(m, 11);
  fsdp::FsdpModel f(m, *world, config(plan::Stage::Full));
  f.train_step({batch(0, world->rank(), spec.vocab)}, 1e-2);
  // Tokenizer files of the model's directory travel into the checkpoint and on into the export.
  const std::string tok_dir = root + "/model";
  const std::vector<std::string> tokenizer = {"tokenizer.json", "vocab.json", "merges.txt", "added_tokens.json",
                                              "chat_template.jinja"};
  if (world->rank() == 0) {
    make_directories(tok_dir, "test");
    for (const std::string& name : tokenizer) write_text_file_atomic(tok_dir + "/" + name, "{\"of\": \"" + name + "\"}", "test");
  }
  world->barrier();
  save_step(root, 1, f, *world, tok_dir);
  States s = gather_all(f);
  if (world->rank() != 0) return;
  const std::string step_dir = io::find_latest_checkpoint(root);
  // A model directory's custom code (auto_map) is not exported: the export is the native architecture.
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(read_text_file(step_dir + "/config.json", "test"));
  config["auto_map"] = {{"AutoConfig", "configuration_custom.CustomConfig"}};
  write_text_file_atomic(step_dir + "/config.json", config.dump(2), "test");
  io::CheckpointReader ckpt(step_dir);
  for (const std::string& name : tokenizer) EXPECT_TRUE(file_exists(ckpt.dir() + "/" + name)) << name;
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    const std::string out = root + "/hf-" + std::string(c10::toString(dt));
    io::export_checkpoint(ckpt, out, {dt, 4000});  // small files: several shards
    EXPECT_FALSE(is_directory(out + ".tmp"));
    for (const std::string& name : tokenizer)
      EXPECT_EQ(read_text_file(out + "/" + name, "test"), "{\"of\": \"" + name + "\"}") << name;
    const nlohmann::json exported = nlohmann::json::parse(read_text_file(out + "/config.json", "test"));
    EXPECT_FALSE(exported.contains("auto_map"));
    EXPECT_EQ(exported.value("model_type", ""), config.value("model_type", "?"));
    io::HfCheckpoint hf(out);
    int files = 0;
    for (const std::string& name : list_directory(out)) files += name.find("-of-") != std::string::npos;
    EXPECT_GT(files, 2);
    const auto units = spec.units();
    for (size_t u = 0; u < units.size(); ++u) {
      at::Tensor flat = at::empty({units[u].numel()}, at::kFloat);
      hf.read_unit_range(u, 0, flat);
      EXPECT_TRUE(at::equal(flat, s[u][0].to(dt).to(at::kFloat))) << units[u].name << " in " << c10::toString(dt);
    }
    expect_bad_input([&] { io::export_checkpoint(ckpt, out, {dt, 4000}); }, "already exists");
  }
}
