// The runtime and the planner tell the same story: the bytes the runtime keeps between steps, by
// category, equal the planner's prediction for the same setup to the byte. Under mpirun 1, 2, 4.
#include <gtest/gtest.h>

#include "../comm/mpi_world.h"
#include "../model/tiny_model.h"
#include "ftdist/fsdp/fsdp_model.h"
#include "ftdist/plan/memory_model.h"

using namespace ftdist;

TEST(FsdpMemory, NoSyncAccumulatorsAreThePlannersExtraBytes) {
  auto world = mpi_world();
  const plan::ModelSpec spec = tiny_spec("llama");
  model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat));
  randomize(m, 1);
  fsdp::FsdpConfig cfg;
  cfg.no_sync = true;
  fsdp::FsdpModel f(m, *world, cfg);
  at::Tensor ids = at::randint(0, spec.vocab, {1, 6}, at::kLong);
  f.train_step({{ids, ids}, {ids, ids}}, 1e-3);
  plan::RunSetup s;
  s.shard_group = world->size();
  const uint64_t without = plan::estimate_memory(spec, s)[plan::MemCategory::unsharded_grads];
  s.no_sync = true;
  const uint64_t with = plan::estimate_memory(spec, s)[plan::MemCategory::unsharded_grads];
  EXPECT_EQ(f.persistent_bytes()[plan::MemCategory::unsharded_grads], with - without);
}

TEST(FsdpMemory, PersistentCategoriesEqualThePlannerToTheByte) {
  auto world = mpi_world();
  const int n = world->size();
  plan::ModelSpec wide = tiny_spec("llama");
  wide.hidden = 40, wide.intermediate = 72, wide.heads = 5, wide.kv_heads = 5, wide.head_dim = 8, wide.vocab = 101;
  const std::vector<plan::ModelSpec> models = {tiny_spec("llama"), tiny_spec("qwen2", true), wide};
  std::vector<plan::Stage> stages = {plan::Stage::Full, plan::Stage::GradOp, plan::Stage::Optimizer, plan::Stage::None};
  if (n == 4) stages.push_back(plan::Stage::Hybrid);
  for (const plan::ModelSpec& spec : models) {
    for (plan::Stage stage : stages) {
      for (auto [precision, accum] : {std::pair{plan::Precision::Fp32, plan::FloatType::Fp32},
                                      std::pair{plan::Precision::Bf16Mixed, plan::FloatType::Fp32},
                                      std::pair{plan::Precision::Bf16Mixed, plan::FloatType::Bf16},
                                      std::pair{plan::Precision::Bf16Pure, plan::FloatType::Fp32}}) {
       // (8-bit AdamW also aligns every shard to its quantization block: params and gradients follow)
       for (plan::OptimizerKind opt : {plan::OptimizerKind::AdamW, plan::OptimizerKind::AdamW8bit, plan::OptimizerKind::SgdMomentum}) {
       for (bool offload : {false, true}) {
        SCOPED_TRACE(spec.name + " " + plan::stage_name(stage) + " " + plan::precision_name(precision) + " accumulating in " +
                     plan::float_type_name(accum) + " " + plan::optimizer_name(opt) + (offload ? " offloaded" : "") + " on " +
                     std::to_string(n) + " ranks");
        model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat));
        randomize(m, 1);
        fsdp::FsdpConfig cfg;
        cfg.stage = stage;
        cfg.precision = precision;
        cfg.grad_accum_dtype = accum;
        cfg.shard_group = stage == plan::Stage::Hybrid ? 2 : 0;
        cfg.optimizer.kind = opt;
        cfg.offload_optimizer = offload;
        fsdp::FsdpModel f(m, *world, cfg);
        plan::MemoryBreakdown got = f.persistent_bytes();

        plan::RunSetup s;
        s.stage = stage;
        s.precision = precision;
        s.shard_group = stage == plan::Stage::None ? 1 : (stage == plan::Stage::Hybrid ? 2 : n);
        s.replicas = n / s.shard_group;
        s.grad_accum_dtype = accum;
        s.optimizer = opt;
        s.offload_optimizer = offload;
        plan::MemoryBreakdown want = plan::estimate_memory(spec, s);
        for (plan::MemCategory c : {plan::MemCategory::params_sharded, plan::MemCategory::master,
                                    plan::MemCategory::optimizer, plan::MemCategory::grads_sharded})
          EXPECT_EQ(got[c], want[c]) << plan::mem_category_name(c);
        // Offloaded: the host's master, optimizer states and staging slots, each to the byte.
        EXPECT_EQ(got.host.master, want.host.master);
        EXPECT_EQ(got.host.optimizer, want.host.optimizer);
        EXPECT_EQ(got.host.staging, want.host.staging);
        if (offload) {
          EXPECT_GT(got.host.master, 0u);
          EXPECT_GT(got.host.staging, 0u);
          EXPECT_EQ(got[plan::MemCategory::master] + got[plan::MemCategory::optimizer], 0u);
        } else {
          EXPECT_EQ(got.host.total(), 0u);
        }
        EXPECT_EQ(got[plan::MemCategory::unsharded_grads], 0u);  // nothing unsharded is kept between steps
        // The preallocated gather buffers of `full` and `hybrid` are the planner's gathered parameters.
        const bool buffered = (stage == plan::Stage::Full || stage == plan::Stage::Hybrid) && s.shard_group > 1;
        EXPECT_EQ(got[plan::MemCategory::unsharded_params], buffered ? want[plan::MemCategory::unsharded_params] : 0u);
        if (buffered) {
          EXPECT_GT(got[plan::MemCategory::unsharded_params], 0u);
        }
       }
       }
      }
    }
  }
}

// With clipping, `optimizer` and `none` keep every unit's reduced gradient until the global norm is
// known: what the runtime holds then is the planner's comm_buffers for that setup, to the byte
// (fp32 optimizer stage: the reduce-scatter outputs; bf16-mixed `none` reducing in fp32: the
// converted copies). Without the global norm the planner counts one unit's worth.
TEST(FsdpMemory, GradientsKeptForTheGlobalNormAreThePlannersCommBuffers) {
  auto world = mpi_world();
  const int n = world->size();
  if (n == 1) GTEST_SKIP() << "one rank has no collectives (comm_buffers is 0); runs under mpirun -np 2 and 4";
  const plan::ModelSpec spec = tiny_spec("llama");
  struct Setup {
    plan::Stage stage;
    plan::Precision precision;
  };
  for (Setup c : {Setup{plan::Stage::Optimizer, plan::Precision::Fp32}, Setup{plan::Stage::None, plan::Precision::Bf16Mixed}}) {
    SCOPED_TRACE(plan::stage_name(c.stage));
    model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat));
    randomize(m, 1);
    fsdp::FsdpConfig cfg;
    cfg.stage = c.stage;
    cfg.precision = c.precision;
    cfg.max_grad_norm = 1.0;
    fsdp::FsdpModel f(m, *world, cfg);
    at::Tensor ids = at::randint(0, spec.vocab, {1, 6}, at::kLong);
    const fsdp::StepResult r = f.train_step({{ids, ids}}, 1e-3);
    plan::RunSetup s;
    s.stage = c.stage;
    s.precision = c.precision;
    s.shard_group = c.stage == plan::Stage::None ? 1 : n;
    s.replicas = n / s.shard_group;
    EXPECT_GT(r.held_grad_bytes, 0);
    EXPECT_EQ(uint64_t(r.held_grad_bytes), plan::estimate_memory(spec, s)[plan::MemCategory::comm_buffers]);
    s.global_norm = false;
    EXPECT_LT(plan::estimate_memory(spec, s)[plan::MemCategory::comm_buffers], uint64_t(r.held_grad_bytes));
  }
}
