// Sharded construction (under mpirun with 1, 2, 3 and 4 ranks): every rank reads only what it keeps
// of each unit, straight from the source, and what it keeps is bitwise the slice of the whole unit
// that one rank would load — for every stage and precision, from Hugging Face directories (fp32,
// bf16, an index of shard files) and from the seeded random init. The model itself never has
// storage (it is built on the meta device).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../comm/mpi_world.h"
#include "../model/tiny_model.h"
#include "ftdist/core/text_file.h"
#include "ftdist/fsdp/fsdp_model.h"
#include "ftdist/io/hf_checkpoint.h"
#include "ftdist/io/random_init.h"
#include "ftdist/io/safetensors.h"
#include "ftdist/plan/presets.h"

using namespace ftdist;

namespace {

const char* kConfig = R"({"model_type":"qwen2","hidden_size":16,"intermediate_size":24,"num_hidden_layers":3,
    "num_attention_heads":4,"num_key_value_heads":2,"head_dim":4,"vocab_size":37,"tie_word_embeddings":false})";

std::vector<std::pair<std::string, at::Tensor>> named_weights(const plan::ModelSpec& spec, at::ScalarType dtype) {
  model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat));
  randomize(m, 5);
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (const auto& u : m.units())
    for (size_t i = 0; i < u.specs.size(); ++i) named.push_back({u.specs[i].name, u.params[i].to(dtype)});
  return named;
}

// Hugging Face directories of one model: fp32 in one file, bf16 in one file, fp32 in three shard
// files with an index. Written by rank 0; every rank returns the paths.
std::vector<std::string> write_hf_dirs(comm::Communicator& world) {
  const std::string root = std::string(FTDIST_TEST_TMP) + "/sharded_load_" + std::to_string(world.size());
  const std::vector<std::string> dirs = {root + "/fp32", root + "/bf16", root + "/index"};
  if (world.rank() == 0) {
    const plan::ModelSpec spec = plan::model_from_hf_config_text(kConfig, "test config");
    io::save_hf_model(dirs[0], kConfig, named_weights(spec, at::kFloat));
    io::save_hf_model(dirs[1], kConfig, named_weights(spec, at::kBFloat16));
    const auto named = named_weights(spec, at::kFloat);
    make_directories(dirs[2], "test");
    nlohmann::json index = {{"metadata", nlohmann::json::object()}, {"weight_map", nlohmann::json::object()}};
    const size_t files = 3;
    for (size_t f = 0; f < files; ++f) {
      std::vector<std::pair<std::string, at::Tensor>> part;
      const std::string name = "model-0000" + std::to_string(f + 1) + "-of-00003.safetensors";
      for (size_t i = f; i < named.size(); i += files) {
        part.push_back(named[i]);
        index["weight_map"][named[i].first] = name;
      }
      io::save_safetensors(dirs[2] + "/" + name, part, {{"format", "pt"}});
    }
    write_text_file_atomic(dirs[2] + "/model.safetensors.index.json", index.dump(), "test");
    write_text_file_atomic(dirs[2] + "/config.json", kConfig, "test");
  }
  world.barrier();
  return dirs;
}

struct Case {
  plan::Stage stage;
  plan::Precision precision;
};

std::vector<Case> cases(int world) {
  std::vector<Case> out;
  for (plan::Stage s : {plan::Stage::Full, plan::Stage::GradOp, plan::Stage::Optimizer, plan::Stage::None, plan::Stage::Hybrid}) {
    if (s == plan::Stage::Hybrid && world % 2 != 0) continue;
    for (plan::Precision p : {plan::Precision::Fp32, plan::Precision::Bf16Mixed, plan::Precision::Bf16Pure}) out.push_back({s, p});
  }
  return out;
}

// Builds the runtime from `init` on a storage-less model and checks what this rank keeps of every
// unit (its checkpoint slice of the master, and the compute-dtype parameters once gathered) against
// the whole unit as one rank reads it.
void expect_slices_of_whole(const io::WeightSource& init, comm::Communicator& world, const Case& c) {
  SCOPED_TRACE(std::string(plan::stage_name(c.stage)) + " " + plan::precision_name(c.precision) + " from " + init.dir());
  model::LlamaModel m(init.spec(), at::TensorOptions().dtype(at::kFloat).device(at::kMeta));
  fsdp::FsdpConfig cfg;
  cfg.stage = c.stage;
  cfg.precision = c.precision;
  cfg.shard_group = c.stage == plan::Stage::Hybrid ? 2 : 0;
  fsdp::FsdpModel f(m, world, cfg, init);
  const fsdp::FsdpModel::StateFiles files = f.state_files();
  const std::vector<plan::ModelSpec::Unit> units = init.spec().units();
  const at::ScalarType master = c.precision == plan::Precision::Bf16Pure ? at::kBFloat16 : at::kFloat;
  for (size_t u = 0; u < units.size(); ++u) {
    const int64_t numel = units[u].numel();
    at::Tensor whole = at::empty({numel}, master);  // what one rank loads
    init.read_unit_range(u, 0, whole);
    const auto [begin, end] = io::file_shard_range(numel, files.index, files.count);
    at::Tensor mine = f.state_slice(u, "master");
    ASSERT_EQ(mine.numel(), end - begin) << units[u].name;
    EXPECT_TRUE(at::equal(mine, whole.narrow(0, begin, end - begin))) << units[u].name << " elements [" << begin << ", " << end << ")";
    // Gathered over the shard group: the whole unit, bitwise (in the master's dtype).
    at::Tensor gathered = f.gather_state(u, "master");
    EXPECT_TRUE(at::equal(gathered, whole.to(at::kFloat))) << units[u].name << " gathered";
    // To one rank of each shard group (the export's way, piece by piece): the same there, nothing elsewhere.
    const fsdp::FsdpModel::StateFiles group = f.state_files();
    at::Tensor to_root = f.gather_master(u, /*root=*/0);
    if (group.index == 0)
      EXPECT_TRUE(to_root.defined() && at::equal(to_root, whole.to(at::kFloat))) << units[u].name << " gathered to rank 0";
    else
      EXPECT_FALSE(to_root.defined()) << units[u].name << ": only rank 0 of the group gets the whole";
    // In small pieces (several per shard, the end-of-training export's way): in order, the same whole.
    at::Tensor stitched = at::full({numel}, -1.0f);
    int64_t next = 0;
    int64_t passed = 0;  // pieces seen go by (undefined off the root)
    f.gather_state_pieces(u, "master", /*root=*/0, /*max_piece=*/5, [&](int64_t first, const at::Tensor& piece) {
      ++passed;
      if (!piece.defined()) return;
      EXPECT_EQ(first, next) << units[u].name << ": pieces come in order";
      EXPECT_LE(piece.numel(), 5);
      stitched.narrow(0, first, piece.numel()).copy_(piece);
      next = first + piece.numel();
    });
    EXPECT_GE(passed, (numel + 4) / 5) << units[u].name << ": every rank's sink sees every piece pass";
    if (group.index == 0) {
      EXPECT_EQ(next, numel) << units[u].name << ": pieces cover the unit";
      EXPECT_TRUE(at::equal(stitched, whole.to(at::kFloat))) << units[u].name << " gathered in pieces";
    } else {
      EXPECT_EQ(next, 0) << units[u].name << ": only rank 0 of the group gets pieces";
    }
  }
}

}  // namespace

TEST(ShardedLoad, HuggingFaceDirectoriesEveryStage) {
  auto world = mpi_world();
  for (const std::string& dir : write_hf_dirs(*world)) {
    io::HfCheckpoint hf(dir);
    for (const Case& c : cases(world->size())) expect_slices_of_whole(hf, *world, c);
  }
}

TEST(ShardedLoad, RandomInitEveryStage) {
  auto world = mpi_world();
  for (bool tied : {false, true}) {
    const plan::ModelSpec spec = tiny_spec("qwen2", tied);
    io::RandomInit init(spec, plan::hf_config_text(spec), 7);
    for (const Case& c : cases(world->size())) expect_slices_of_whole(init, *world, c);
  }
}

// Loading touches no whole unit: the counting allocator never sees more than the runtime's own
// buffers. Checked as: the model has no storage before, and the bf16 replica of `none` is read in
// bf16 (the same bits as rounding the fp32 whole).
TEST(ShardedLoad, ModelHasNoStorageOfItsOwn) {
  auto world = mpi_world();
  const plan::ModelSpec spec = tiny_spec("llama");
  model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat).device(at::kMeta));
  for (const auto& u : m.units()) EXPECT_TRUE(u.flat.is_meta());
  fsdp::FsdpModel f(m, *world, fsdp::FsdpConfig{}, io::RandomInit(spec, "", 3));
  for (const auto& u : m.units()) EXPECT_TRUE(u.flat.device().is_cpu()) << u.name;
}

// The random init is a pure function of (seed, unit, element): any split of a range gives the same
// values, the seed and the unit change them, and the distributions are those of the trainer's init.
TEST(RandomInit, RangesAreIndependentOfHowTheyAreSplit) {
  const plan::ModelSpec spec = tiny_spec("qwen2");
  io::RandomInit init(spec, "", 11);
  const auto units = spec.units();
  for (size_t u = 0; u < units.size(); ++u) {
    const int64_t n = units[u].numel() + 5;  // and padding
    at::Tensor whole = at::empty({n});
    init.read_unit_range(u, 0, whole);
    EXPECT_TRUE(at::equal(whole.narrow(0, units[u].numel(), 5), at::zeros({5}))) << "padding";
    for (int64_t cut : {int64_t(1), int64_t(7), n / 3, n - 1}) {
      at::Tensor a = at::empty({cut}), b = at::empty({n - cut});
      init.read_unit_range(u, 0, a);
      init.read_unit_range(u, cut, b);
      EXPECT_TRUE(at::equal(at::cat({a, b}), whole)) << units[u].name << " cut at " << cut;
    }
    at::Tensor bf16 = at::empty({n}, at::kBFloat16);
    init.read_unit_range(u, 0, bf16);
    EXPECT_TRUE(at::equal(bf16, whole.to(at::kBFloat16))) << "the bf16 read is the rounded fp32";
  }
  io::RandomInit other(spec, "", 12);
  at::Tensor x = at::empty({100}), y = at::empty({100}), z = at::empty({100});
  init.read_unit_range(1, 0, x);
  other.read_unit_range(1, 0, y);
  init.read_unit_range(2, 0, z);
  EXPECT_FALSE(at::equal(x, y)) << "the seed changes the weights";
  EXPECT_FALSE(at::equal(x, z)) << "each unit has its own stream";
}

TEST(RandomInit, DistributionsOfWeightsNormsAndBiases) {
  const plan::ModelSpec spec = plan::preset_model("tinyllama-1.1b");
  io::RandomInit init(spec, "", 0);
  model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat).device(at::kMeta));
  const auto units = spec.units();
  at::Tensor layer = at::empty({units[1].numel()});
  init.read_unit_range(1, 0, layer);
  m.bind(1, layer);
  for (size_t i = 0; i < units[1].tensors.size(); ++i) {
    const auto& t = units[1].tensors[i];
    const at::Tensor& p = m.units()[1].params[i];
    if (t.shape.size() == 1) {
      EXPECT_TRUE(at::equal(p, at::full_like(p, t.name.find("norm") != std::string::npos ? 1.0 : 0.0))) << t.name;
    } else {
      EXPECT_NEAR(p.mean().item<double>(), 0.0, 2e-4) << t.name;
      EXPECT_NEAR(p.std().item<double>(), io::RandomInit::kStd, 2e-4) << t.name;
      // A normal's share within one standard deviation.
      const double within = (p.abs() < io::RandomInit::kStd).to(at::kDouble).mean().item<double>();
      EXPECT_NEAR(within, 0.6827, 3e-3) << t.name;
    }
  }
}

// The config's initializer_range scales the matrices and pad_token_id's embedding row is 0, as
// Transformers initializes a model from its config.
TEST(RandomInit, FollowsInitializerRangeAndZeroesThePadRow) {
  plan::ModelSpec spec = plan::model_from_hf_config_text(
      R"({"model_type": "llama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 1,
          "num_attention_heads": 4, "vocab_size": 1000, "initializer_range": 0.1, "pad_token_id": 7})",
      "config.json");
  io::RandomInit init(spec, "", 0);
  const auto units = spec.units();
  at::Tensor root = at::empty({units[0].numel()});
  init.read_unit_range(0, 0, root);
  const at::Tensor embed = root.narrow(0, 0, spec.vocab * spec.hidden).view({spec.vocab, spec.hidden});
  EXPECT_TRUE(at::equal(embed[7], at::zeros({spec.hidden}))) << "the pad row";
  EXPECT_NEAR(embed.narrow(0, 8, 900).std().item<double>(), 0.1, 2e-3);
  at::Tensor part = at::empty({1000});  // a range that starts inside the pad row
  init.read_unit_range(0, 7 * spec.hidden + 10, part);
  EXPECT_TRUE(at::equal(part.narrow(0, 0, spec.hidden - 10), at::zeros({spec.hidden - 10})));
  EXPECT_TRUE(at::equal(part.narrow(0, spec.hidden - 10, 1000 - spec.hidden + 10),
                        root.narrow(0, 8 * spec.hidden, 1000 - spec.hidden + 10)));
}
