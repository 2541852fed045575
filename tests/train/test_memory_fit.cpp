// The fail-fast memory checks: an allocation that does not fit — while the persistent buffers are
// allocated or in the probe step — becomes a DoesNotFit error naming the category being allocated,
// the planned and available bytes and the planner's recommendation; the plan check refuses a run
// whose plan exceeds the budget before anything is allocated; parallel.auto picks a setup that fits.
// The CPU budget is enforced by the counting allocator, which stands in for a device's capacity.
#include <gtest/gtest.h>

#include <set>

#include "../model/tiny_model.h"
#include "ftdist/core/error.h"
#include "ftdist/fsdp/fsdp_model.h"
#include "ftdist/fsdp/memory_counter.h"
#include "ftdist/plan/host_memory.h"
#include "ftdist/plan/memory_model.h"
#include "ftdist/plan/timeline.h"
#include "ftdist/train/memory_fit.h"

using namespace ftdist;

namespace {

struct Fixture {
  plan::ModelSpec spec = tiny_spec("llama");
  train::RunConfig config;
  Fixture() {
    config.origin = "test.toml";
    config.seq_len = 16;
    config.micro_batch = 2;
    config.steps = 10;
  }
  train::FitCheck fit(uint64_t budget) const {
    return {spec, train::runtime_setup(config, 1, config.micro_batch), {budget, "a test budget"}, config, 1, 2};
  }
};

// The message of the DoesNotFit error `fn` throws (fails the test when it throws none or another).
std::string does_not_fit(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::DoesNotFit) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no DoesNotFit error";
  return "";
}

struct LimitGuard {  // the budget is process-wide: lift it whatever happens
  ~LimitGuard() { fsdp::CpuMemoryCounter::install().set_limit(0); }
};

}  // namespace

TEST(MemoryFit, PersistentBufferThatDoesNotFitIsNamed) {
  Fixture f;
  f.config.precision = plan::Precision::Bf16Mixed;
  auto world = comm::make_communicator(at::kCPU, comm::CommOptions{});
  model::LlamaModel m(f.spec, at::TensorOptions().dtype(at::kFloat));
  fsdp::CpuMemoryCounter& counter = fsdp::CpuMemoryCounter::install();
  LimitGuard guard;
  // Budgets growing from nothing to enough: each failure names the buffer being allocated, and
  // every persistent category takes its turn (bf16-mixed has all four).
  std::set<std::string> named;
  for (int64_t extra = 1;; extra += 256) {  // (a limit of 0 would mean none)
    ASSERT_LT(extra, int64_t(1) << 22) << "the model never fit";
    counter.set_limit(counter.current() + extra);
    try {
      f.fit(uint64_t(counter.limit())).run("while allocating the persistent buffers", [&] {
        fsdp::FsdpConfig cfg;
        cfg.precision = plan::Precision::Bf16Mixed;
        fsdp::FsdpModel model(m, *world, cfg);
      });
      break;  // it fits
    } catch (const Error& e) {
      ASSERT_EQ(e.kind(), ErrorKind::DoesNotFit);
      const std::string msg = e.what();
      const std::string head = "out of memory while allocating the persistent buffers: ";
      const size_t at = msg.find(head);
      ASSERT_NE(at, std::string::npos) << msg;
      const std::string cat = msg.substr(at + head.size(), msg.find(' ', at + head.size()) - at - head.size());
      named.insert(cat);
      EXPECT_NE(msg.find("Planned per rank for shard full, micro_batch 2, checkpointing none: " + cat + " "), std::string::npos) << msg;
      EXPECT_NE(msg.find("available"), std::string::npos) << msg;
      EXPECT_NE(msg.find("a test budget"), std::string::npos) << msg;
    }
  }
  EXPECT_EQ(named, (std::set<std::string>{"params_sharded", "master", "grads_sharded", "optimizer"}));
}

TEST(MemoryFit, ProbeStepThatDoesNotFitNamesTheCategoryAndTheRecommendation) {
  Fixture f;
  auto world = comm::make_communicator(at::kCPU, comm::CommOptions{});
  model::LlamaModel m(f.spec, at::TensorOptions().dtype(at::kFloat));
  randomize(m, 3);
  fsdp::FsdpModel model(m, *world, fsdp::FsdpConfig{});
  fsdp::CpuMemoryCounter& counter = fsdp::CpuMemoryCounter::install();
  LimitGuard guard;
  // A budget of the persistent state plus a little: the step's activations do not fit.
  counter.set_limit(counter.current() + 4096);
  const at::Tensor ids = at::zeros({f.config.micro_batch, f.config.seq_len}, at::kLong);
  const std::string msg = does_not_fit([&] {
    f.fit(uint64_t(counter.limit())).run("in the probe step", [&] { model.dry_run({ids, ids}); });
  });
  EXPECT_NE(msg.find("out of memory in the probe step: activations did not fit"), std::string::npos) << msg;
  EXPECT_NE(msg.find("CPU memory budget exceeded"), std::string::npos) << msg;
  // (a budget this small fits no setup on any number of ranks, and says so)
  EXPECT_NE(msg.find("nothing fits up to 1024 ranks of"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the smallest plan needs"), std::string::npos) << msg;
  // Lifted, the same probe runs and leaves the model untouched: the next step equals a fresh one's.
  counter.set_limit(0);
  const fsdp::StepResult probe = model.dry_run({ids, ids});
  EXPECT_GT(probe.tokens, 0);
  const double loss = model.train_step({{ids, ids}}, 1e-2).loss;
  model::LlamaModel m2(f.spec, at::TensorOptions().dtype(at::kFloat));
  randomize(m2, 3);
  fsdp::FsdpModel fresh(m2, *world, fsdp::FsdpConfig{});
  EXPECT_EQ(loss, fresh.train_step({{ids, ids}}, 1e-2).loss);
  EXPECT_TRUE(at::equal(model.gather_master(1), fresh.gather_master(1)));
}

TEST(MemoryFit, PlanOverTheBudgetIsRefusedBeforeAnyAllocation) {
  Fixture f;
  const plan::RunSetup setup = train::runtime_setup(f.config, 1, 2);
  const uint64_t planned = plan::peak_memory(f.spec, setup).needed(setup.host_device);  // the step's peak
  EXPECT_NO_THROW(f.fit(planned).check_plan());
  EXPECT_NO_THROW(f.fit(0).check_plan());  // no budget known: nothing to check against
  const std::string msg = does_not_fit([&] { f.fit(planned - 1).check_plan(); });
  EXPECT_NE(msg.find("the plan needs"), std::string::npos) << msg;
  EXPECT_NE(msg.find("is the category that does not fit"), std::string::npos) << msg;
  // So little that the persistent state alone does not fit: the parameters are named.
  const std::string tiny = does_not_fit([&] { f.fit(1024).check_plan(); });
  EXPECT_NE(tiny.find("params_sharded ("), std::string::npos) << tiny;
}

TEST(MemoryFit, AutoChoosesASetupThatFitsOrSaysWhatWould) {
  Fixture f;
  f.config.micro_batch = 4;
  const train::MemoryBudget roomy{1ull << 30, "test"};
  const uint64_t default_need = plan::estimate_memory(f.spec, train::runtime_setup(f.config, 2, 4)).total();
  // A budget below the configured setup's need: auto must pick something smaller that fits.
  const train::MemoryBudget tight{default_need * 6 / 10, "test"};
  const train::RunConfig chosen = train::choose_parallel(f.config, f.spec, 2, 8, tight);
  const uint64_t need = plan::estimate_memory(f.spec, train::runtime_setup(chosen, 2, chosen.micro_batch)).total();
  EXPECT_LE(need, tight.bytes * 9 / 10) << "within the 10% headroom";
  EXPECT_EQ(8 % (chosen.micro_batch * 2), 0) << "the micro-batch divides the global batch";
  EXPECT_NO_THROW(train::choose_parallel(f.config, f.spec, 2, 8, roomy));
  const std::string msg = does_not_fit([&] { train::choose_parallel(f.config, f.spec, 2, 8, {4096, "test"}); });
  EXPECT_NE(msg.find("parallel.auto: no shard stage"), std::string::npos) << msg;
}

// A GPU run checks the host memory of its node before loading: the planned load peak of every rank
// on the node against MemAvailable. A CPU run is checked by the device plan (its memory is host memory).
TEST(MemoryFit, HostMemoryOfTheNodeIsCheckedBeforeLoading) {
  Fixture f;
  train::FitCheck fit = f.fit(0);
  fit.setup.host_device = false;  // as on a GPU
  const plan::HostMemory host = plan::estimate_host_memory(f.spec, fit.setup, 8);
  fit.check_host(host.node_load_peak(), 8);  // exactly enough: fits
  fit.check_host(0, 8);                      // unknown: nothing to check against
  const std::string msg = does_not_fit([&] { fit.check_host(host.node_load_peak() - 1, 8); });
  EXPECT_NE(msg.find("host memory"), std::string::npos) << msg;
  EXPECT_NE(msg.find("for the 8 rank(s) on this node"), std::string::npos) << msg;
  EXPECT_NE(msg.find("MemAvailable"), std::string::npos) << msg;
  fit.setup.host_device = true;  // a CPU run: the device check covers it
  fit.check_host(1, 8);
}

// parallel.auto with partial checkpointing: a budget that no layout fits without checkpointing but
// some fits with 7 of 8 layers checkpointed. The choice checkpoints, within the headroom, and the
// fewest layers: one fewer does not fit its stage and micro-batch.
TEST(MemoryFit, AutoCheckpointsTheFewestLayersThatFit) {
  Fixture f;
  f.spec.layers = 8;
  f.config.seq_len = 64;
  const int world = 2;
  const int64_t global = 4;
  auto need = [&](plan::Stage stage, int64_t mb, plan::ActivationCheckpointing ck) {
    train::RunConfig c = f.config;
    c.shard = stage;
    c.activation_checkpointing = ck;
    const plan::RunSetup s = train::runtime_setup(c, world, mb);
    return plan::peak_memory(f.spec, s).needed(s.host_device);
  };
  uint64_t least_none = UINT64_MAX, least_seven = UINT64_MAX;
  for (plan::Stage stage : {plan::Stage::Full, plan::Stage::GradOp, plan::Stage::Optimizer, plan::Stage::None})
    for (int64_t mb : {1, 2}) {
      least_none = std::min(least_none, need(stage, mb, plan::ActivationCheckpointing::None));
      least_seven = std::min(least_seven, need(stage, mb, plan::ActivationCheckpointing::first(7)));
    }
  ASSERT_LT(least_seven, least_none);
  const uint64_t usable = (least_none + least_seven) / 2;
  const train::MemoryBudget budget{uint64_t(double(usable) / 0.9), "test"};  // (the planner keeps 10% free)
  const train::RunConfig chosen = train::choose_parallel(f.config, f.spec, world, global, budget);
  const plan::ActivationCheckpointing ck = chosen.activation_checkpointing;
  std::printf("parallel.auto: shard %s, micro_batch %lld, checkpointing %s\n", plan::stage_name(chosen.shard),
              static_cast<long long>(chosen.micro_batch), plan::activation_checkpointing_name(ck).c_str());
  ASSERT_NE(ck, plan::ActivationCheckpointing::None);
  EXPECT_LE(need(chosen.shard, chosen.micro_batch, ck), usable);
  if (ck != plan::ActivationCheckpointing::Full) {
    ASSERT_GE(ck.layers, 1);
    ASSERT_LE(ck.layers, 7);
    if (ck.layers > 1) {
      EXPECT_GT(need(chosen.shard, chosen.micro_batch, plan::ActivationCheckpointing::first(ck.layers - 1)), usable)
          << plan::stage_name(chosen.shard) << " mb " << chosen.micro_batch << " checkpointing " << ck.layers;
    }
  }
}
