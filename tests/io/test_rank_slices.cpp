// Under mpirun (1, 2, 4 ranks): each rank loads only its shard of every unit from a HF directory;
// gathered over the ranks the shards are the whole model.
#include <gtest/gtest.h>

#include "ftdist/comm/communicator.h"
#include "ftdist/io/hf_checkpoint.h"
#include "../comm/mpi_world.h"
#include "../model/tiny_model.h"

using namespace ftdist;

TEST(RankSlices, ShardsGatherToTheWholeModel) {
  auto comm = mpi_world();
  const std::string dir = std::string(FTDIST_TEST_TMP) + "/hf_ranks_" + std::to_string(comm->size());
  plan::ModelSpec spec = tiny_spec("llama");
  model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat));
  randomize(m, 21);
  const std::string config = R"({"model_type":"llama","hidden_size":16,"intermediate_size":24,"num_hidden_layers":2,
      "num_attention_heads":4,"num_key_value_heads":2,"head_dim":4,"vocab_size":37})";
  if (comm->rank() == 0) {
    std::vector<std::pair<std::string, at::Tensor>> named;
    for (const auto& u : m.units())
      for (size_t i = 0; i < u.specs.size(); ++i) named.push_back({u.specs[i].name, u.params[i]});
    io::save_hf_model(dir, config, named);
  }
  comm->barrier();
  io::HfCheckpoint ckpt(dir);
  const int n = comm->size();
  const std::vector<plan::ModelSpec::Unit> units = ckpt.spec().units();
  for (size_t u = 0; u < m.units().size(); ++u) {
    const auto& unit = units[u];
    const int64_t shard = (unit.numel() + n - 1) / n;
    at::Tensor mine = at::empty({shard});
    io::load_unit_shard(ckpt, unit, comm->rank() * shard, mine);
    at::Tensor all = at::empty({shard * n});
    comm->all_gather_into(all, mine);
    EXPECT_TRUE(at::equal(all.narrow(0, 0, unit.numel()), m.units()[u].flat)) << unit.name;
  }
}
