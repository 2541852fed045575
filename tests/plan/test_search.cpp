// The search: the worked example, objectives, constraints, clusters, reports.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "expect_error.h"

#include "ftdist/core/error.h"
#include "ftdist/core/toml_util.h"
#include "ftdist/plan/cluster.h"
#include "ftdist/plan/launch_script.h"
#include "ftdist/plan/limits.h"
#include "ftdist/plan/presets.h"
#include "ftdist/plan/report.h"
#include "ftdist/plan/search.h"

using namespace ftdist::plan;

namespace {

GpuCatalog catalog() { return GpuCatalog::load(FTDIST_SOURCE_DIR "/cluster/gpus.toml"); }

PlanRequest worked_example() {
  PlanRequest r;
  r.model = preset_model("mistral-7b");
  GpuSpec g = catalog().find("a100-80gb");  // a copy: the catalog is a temporary
  r.hardware.push_back({"", g, g.gpus_per_node, 64});
  r.base.seq_len = 1024;
  r.total_tokens = 10000.0 * 1024;
  return r;
}

TEST(Search, WorkedExampleOneGpuDoesNotFitAndTheRecommendationDoes) {
  PlanRequest req = worked_example();
  PlanResult res = search(req);
  ASSERT_GE(res.recommended, 0);
  const Candidate& best = res.candidates[res.recommended];
  EXPECT_TRUE(best.fits);
  EXPECT_LE(best.memory.total(), best.usable_bytes);
  EXPECT_GE(best.gpus, 2);
  EXPECT_TRUE(best.setup.sharded_params() || best.setup.stage == Stage::Optimizer) << stage_name(best.setup.stage);
  EXPECT_TRUE(best.rejected_because.empty());
  EXPECT_GT(best.time.cost_usd, 0);
  int one_gpu = 0;
  for (const Candidate& c : res.candidates) {
    if (c.gpus != 1) continue;
    ++one_gpu;
    EXPECT_FALSE(c.fits) << "1 GPU, mb " << c.setup.micro_batch;
    EXPECT_NE(c.rejected_because.find("needs"), std::string::npos) << c.rejected_because;
  }
  EXPECT_GT(one_gpu, 0);
  // No other fitting candidate is meaningfully cheaper (2% near-tie rule, then fewer GPUs).
  for (const Candidate& c : res.candidates) {
    if (c.fits) {
      EXPECT_GE(c.time.cost_usd * 1.02 + 1e-9, best.time.cost_usd);
    }
  }
}

TEST(Search, FixedChoicesAreRespectedAndTimeObjectiveIsFastest) {
  PlanRequest req = worked_example();
  req.gpus = 8;
  req.stage = Stage::Full;
  req.activation_checkpointing = ActivationCheckpointing::Full;
  PlanResult res = search(req);
  for (const Candidate& c : res.candidates) {
    EXPECT_EQ(c.gpus, 8);
    EXPECT_EQ(c.setup.stage, Stage::Full);
    EXPECT_EQ(c.setup.activation_checkpointing, ActivationCheckpointing::Full);
  }
  req = worked_example();
  req.objective = Objective::Time;
  res = search(req);
  ASSERT_GE(res.recommended, 0);
  const Candidate& best = res.candidates[res.recommended];
  for (const Candidate& c : res.candidates) {
    if (c.fits) {
      EXPECT_GE(c.time.total_s * 1.02 + 1e-9, best.time.total_s);
    }
  }
}

TEST(Search, NothingFitsIsReportedNotHidden) {
  PlanRequest req = worked_example();
  req.gpus = 1;
  PlanResult res = search(req);
  EXPECT_EQ(res.recommended, -1);
  EXPECT_GE(least_memory_candidate(res), 0);
}

// Partial activation checkpointing: a GPU sized so that the first 3 of 8 layers checkpointed fit
// and 2 do not. `auto` picks 3 (the fewest that fit, the fastest), not `full`, and plans it faster
// than `full`; each K is priced layer by layer (K layers' inputs instead of their activations).
TEST(Search, CheckpointingAutoPicksTheFewestLayersThatFit) {
  PlanRequest req = worked_example();
  req.model.layers = 8;
  req.gpus = 1;
  req.stage = Stage::None;
  req.micro_batch = 4;
  auto fixed = [&](ActivationCheckpointing ck) {
    PlanRequest r = req;
    r.activation_checkpointing = ck;
    const PlanResult res = search(r);
    EXPECT_EQ(res.candidates.size(), 1u);
    return res.candidates.front();
  };
  std::vector<uint64_t> needed;
  for (int64_t k = 0; k <= 8; ++k) needed.push_back(fixed(ActivationCheckpointing::first(k)).needed_bytes());
  for (int64_t k = 1; k < 8; ++k) EXPECT_LT(needed[k], needed[k - 1]) << "checkpointing layer " << k - 1 << " lowers the peak";
  // The usable memory halfway between K = 3's need and K = 2's.
  const double usable = 0.5 * (double(needed[3]) + double(needed[2]));
  req.hardware[0].gpu.memory_gib = usable / (1.0 - req.headroom) / double(1ull << 30);

  const PlanResult res = search(req);
  ASSERT_GE(res.recommended, 0);
  const Candidate& best = res.candidates[size_t(res.recommended)];
  EXPECT_EQ(best.setup.activation_checkpointing, ActivationCheckpointing::first(3)) << activation_checkpointing_name(best.setup.activation_checkpointing);
  EXPECT_EQ(activation_checkpointing_name(best.setup.activation_checkpointing), "3");
  const Candidate full = fixed(ActivationCheckpointing::Full);
  EXPECT_TRUE(full.fits);
  EXPECT_LT(best.time.step_s, full.time.step_s);
  EXPECT_LT(best.time.hw_flops_per_token, full.time.hw_flops_per_token);
  // One more forward per checkpointed layer: K = 3 adds 3/8 of what full adds.
  const Candidate none = fixed(ActivationCheckpointing::None);
  EXPECT_NEAR(best.time.hw_flops_per_token - none.time.hw_flops_per_token,
              3.0 / 8.0 * (full.time.hw_flops_per_token - none.time.hw_flops_per_token), 1e-6 * none.time.hw_flops_per_token);
  // The candidate table shows K; the none candidate it beat is rejected for memory.
  const std::string table = plan_table(PlanReport{req, res, {}, nlohmann::ordered_json::object(), "test", "launch"});
  EXPECT_NE(table.find("checkpointing 3 of 8 layers"), std::string::npos) << table;
  bool none_rejected = false;
  for (const Candidate& c : res.candidates)
    none_rejected |= c.setup.activation_checkpointing == ActivationCheckpointing::None && !c.fits;
  EXPECT_TRUE(none_rejected);
  // More layers than the model has: an error naming the option.
  req.activation_checkpointing = ActivationCheckpointing::first(9);
  try {
    search(req);
    ADD_FAILURE() << "9 of 8 layers accepted";
  } catch (const ftdist::Error& e) {
    EXPECT_NE(e.message().find("--checkpointing"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("8"), std::string::npos) << e.message();
  }
}

TEST(Search, GlobalBatchSetsAccumulationOrRejects) {
  PlanRequest req = worked_example();
  req.global_batch = 64;
  PlanResult res = search(req);
  ASSERT_GE(res.recommended, 0);
  for (const Candidate& c : res.candidates) {
    if (!c.rejected_because.empty() && c.rejected_because.find("global batch") != std::string::npos) continue;
    EXPECT_EQ(c.grad_accum * c.setup.micro_batch * c.setup.data_parallel(), 64) << c.gpus << " " << c.setup.micro_batch;
  }
}

TEST(Search, MoreHeadroomNeverAllowsMoreMemory) {
  PlanRequest req = worked_example();
  for (double h : {0.0, 0.1, 0.3}) {
    req.headroom = h;
    PlanResult res = search(req);
    ASSERT_GE(res.recommended, 0) << h;
    EXPECT_LE(double(res.candidates[res.recommended].memory.total()), (1 - h) * 80.0 * (1ull << 30)) << h;
  }
}

TEST(Search, ClusterChoosesNodesAndHybridAppearsAcrossNodes) {
  Cluster cl = load_cluster(FTDIST_SOURCE_DIR "/cluster/example-mixed-64x8.toml", catalog());
  ASSERT_EQ(cl.node_types.size(), 2u);
  PlanRequest req;
  req.model = preset_model("llama-3.1-70b");
  for (const NodeType& nt : cl.node_types) req.hardware.push_back({nt.name, nt.gpu, nt.gpus_per_node, nt.count, true});
  req.base.seq_len = 4096;
  req.total_tokens = 1e9;
  PlanResult res = search(req);
  ASSERT_GE(res.recommended, 0);
  const Candidate& best = res.candidates[res.recommended];
  EXPECT_LE(best.nodes, cl.node_types[best.hardware].count);
  EXPECT_EQ(best.gpus % best.nodes, 0);
  bool hybrid = false;
  for (const Candidate& c : res.candidates) hybrid |= c.setup.stage == Stage::Hybrid && c.nodes > 1;
  EXPECT_TRUE(hybrid);
  EXPECT_NE(sbatch_text(req, best).find("#SBATCH --nodes=" + std::to_string(best.nodes)), std::string::npos);
  EXPECT_NE(mpirun_command(req, best).find("-np " + std::to_string(best.gpus)), std::string::npos);
  // The time limit: the estimate + 20% + 15 minutes, as days-hours:minutes:seconds, however long.
  Candidate c = best;
  c.time.total_s = 3000.0 * 3600 / 1.2;  // 3000 h + 15 min = 125 days 0:15
  EXPECT_NE(sbatch_text(req, c).find("#SBATCH --time=125-00:15:00\n"), std::string::npos) << sbatch_text(req, c);
  c.time.total_s = 1e13;  // (an int of minutes would wrap)
  EXPECT_NE(sbatch_text(req, c).find("#SBATCH --time=138888888-"), std::string::npos) << sbatch_text(req, c);
  // Whole nodes are the job's alone; part of one is shared (--exclusive would bill the whole node,
  // the plan prices the GPUs it uses).
  c.nodes = 1, c.gpus = req.hardware[c.hardware].gpus_per_node;
  EXPECT_NE(sbatch_text(req, c).find("#SBATCH --exclusive\n"), std::string::npos) << sbatch_text(req, c);
  c.gpus = 2;
  EXPECT_EQ(sbatch_text(req, c).find("#SBATCH --exclusive"), std::string::npos) << sbatch_text(req, c);
  // A model named with spaces and quotes still makes a one-word job name.
  PlanRequest named = req;
  named.model.name = "org/My Model \"v2\"";
  EXPECT_NE(sbatch_text(named, c).find("#SBATCH --job-name=ftdist-org_My_Model__v2_\n"), std::string::npos) << sbatch_text(named, c);
  // A name or path from the user's files ends no comment line and no TOML string early: a config.json
  // naming its model "x\ntouch ..." runs nothing, and a path with quotes reads back as itself.
  named.model.name = "my-model\ntouch /tmp/PWNED\n#";
  EXPECT_EQ(sbatch_text(named, c).find("\ntouch"), std::string::npos) << sbatch_text(named, c);
  EXPECT_EQ(run_config_text(named, c, ModelSource{ModelSource::Preset, "llama-3.1-70b"}).find("\ntouch"), std::string::npos);
  for (const std::string& path : {std::string("/data/we\"ird\\dir/config.json"), std::string("/data/line\nbreak\x01/config.json")}) {
    const toml::table t = ftdist::parse_toml_text(run_config_text(named, c, ModelSource{ModelSource::ConfigFile, path}), "run.toml");
    EXPECT_EQ(t["model"]["config"].value<std::string>().value_or("?"), path);
  }
  // A plan priced with eager attention says the trainer's GPU path uses flash.
  EXPECT_EQ(run_config_text(req, c, ModelSource{ModelSource::Preset, "llama-3.1-70b"}).find("eager"), std::string::npos);
  c.setup.attention = Attention::Eager;
  EXPECT_NE(run_config_text(req, c, ModelSource{ModelSource::Preset, "llama-3.1-70b"}).find("planned with eager attention"),
            std::string::npos);
  // A workload of more steps than ftdist train runs gets no run.toml.
  c.time.steps = kMaxSteps + 1;
  expect_bad_input([&] { run_config_text(req, c, ModelSource{ModelSource::Preset, "llama-3.1-70b"}); },
                   "more than ftdist train runs");
}

// A cluster of thousands of nodes: every node count up to 16, then steps of about an eighth, and
// all of them (trying each of 4096 took over a minute).
TEST(Search, ClusterOfThousandsOfNodesTriesCountsAnEighthApart) {
  PlanRequest req;
  req.model = preset_model("llama-3.1-70b");
  req.hardware.push_back({"one-gpu-vm", catalog().find("h100"), 1, 4096, true});
  req.max_gpus = 4096;
  req.base.seq_len = 1024;
  req.total_tokens = 1e9;
  std::set<int> counts;
  for (const Candidate& c : search(req).candidates) counts.insert(c.gpus);
  for (int n : {1, 2, 3, 15, 16, 18, 4096}) EXPECT_EQ(counts.count(n), 1u) << n;
  EXPECT_LT(counts.size(), 80u);
  for (auto it = std::next(counts.begin()); it != counts.end(); ++it)
    EXPECT_LE(*it - *std::prev(it), std::max(1, *std::prev(it) / 8)) << *it;
}

TEST(Report, JsonSchemaIsStable) {
  PlanRequest req = worked_example();
  PlanResult res = search(req);
  PlanReport report{req, res, {}, nlohmann::ordered_json::object(), "test", "launch"};
  nlohmann::ordered_json j = plan_json(report);
  for (const char* k : {"name", "params_total", "layers", "hidden", "vocab"}) EXPECT_TRUE(j["model"].contains(k)) << k;
  EXPECT_EQ(j["model"]["params_total"], 7241732096);
  ASSERT_TRUE(j.contains("inputs"));
  const nlohmann::ordered_json& rec = j["recommendation"];
  for (const char* k : {"gpus", "nodes", "shard", "micro_batch", "grad_accum", "checkpointing", "memory_per_gpu_bytes",
                        "gpu_memory_bytes", "fits", "time", "gpu_hours", "cost_usd"})
    EXPECT_TRUE(rec.contains(k)) << k;
  for (const char* k : {"step_s", "tokens_per_s", "total_s"}) EXPECT_TRUE(rec["time"].contains(k)) << k;
  EXPECT_TRUE(rec["time"]["steps"].is_number_integer()) << rec["time"]["steps"];
  // An epoch is its own whole steps, as the text says: with 0.01 epochs (7 steps in all), 625 steps'
  // time, not the total's 7 steps x 100.
  PlanRequest sliver = req;
  sliver.epochs = 0.01;
  sliver.total_tokens = req.total_tokens * 0.01;
  const nlohmann::ordered_json time = plan_json({sliver, search(sliver), {}, nlohmann::ordered_json::object(), "test", "launch"})
                                          ["recommendation"]["time"];
  const double step_s = time["step_s"].get<double>(), tokens_per_step = time["tokens_per_s"].get<double>() * step_s;
  EXPECT_DOUBLE_EQ(time["epoch_s"].get<double>(), std::ceil(req.total_tokens / tokens_per_step - 1e-9) * step_s);
  uint64_t sum = 0;
  for (MemCategory c : all_mem_categories()) {
    ASSERT_TRUE(rec["memory_per_gpu_bytes"].contains(mem_category_name(c))) << mem_category_name(c);
    sum += rec["memory_per_gpu_bytes"][mem_category_name(c)].get<uint64_t>();
  }
  EXPECT_EQ(rec["memory_per_gpu_bytes"]["total"].get<uint64_t>(), sum);
  ASSERT_TRUE(j["candidates"].is_array());
  EXPECT_EQ(j["candidates"].size(), res.candidates.size());
  int rejected = 0;
  for (const auto& c : j["candidates"]) rejected += c.contains("rejected_because");
  EXPECT_EQ(rejected, int(res.candidates.size()) - 1);
}

TEST(Catalog, FindsNamesAndAliasesAndSuggests) {
  GpuCatalog cat = catalog();
  EXPECT_EQ(cat.find("H100").name, "h100-80gb-sxm");
  EXPECT_EQ(cat.find("a100-80gb").memory_gib, 80.0);
  for (const char* name : {"a100-40gb", "a100-80gb", "h100-80gb-sxm", "h100-80gb-pcie", "h200", "l4", "l40s", "a10g",
                           "rtx-4090", "b200"})
    EXPECT_NO_THROW(cat.find(name)) << name;
  try {
    cat.find("a100-80");
    ADD_FAILURE();
  } catch (const ftdist::Error& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean"), std::string::npos) << e.what();
  }
  EXPECT_THROW(GpuCatalog::parse("[gpu.x]\nmemory_gib = 'a lot'\n", "bad.toml"), ftdist::Error);
  EXPECT_THROW(GpuCatalog::parse("[gpu.x\n", "broken.toml"), ftdist::Error);
  EXPECT_THROW(parse_cluster("name = 'c'\n", "c.toml", cat), ftdist::Error);
  EXPECT_THROW(parse_cluster("[[node_type]]\ngpu = 'h100'\n", "c.toml", cat), ftdist::Error);  // no count
  // Values past what can be represented: refused naming the key, never wrapped or ignored.
  const std::string gpu = "[gpu.x]\nbf16_tflops = 312\nhbm_gbs = 1000\nlink_busbw_gbs = 200\nnetwork_busbw_gbs = 20\nprice_per_hour = 2\n";
  EXPECT_NO_THROW(GpuCatalog::parse(gpu + "memory_gib = 80\n", "ok.toml"));
  expect_bad_input([&] { GpuCatalog::parse(gpu + "memory_gib = 2e10\n", "big.toml"); }, "big.toml [gpu.x]: memory_gib must be at most");
  expect_bad_input([&] { GpuCatalog::parse(gpu + "memory_gib = 80\ngpus_per_node = 4294967297\n", "n.toml"); }, "gpus_per_node must be 1..1024");
  expect_bad_input([&] { GpuCatalog::parse(gpu + "memory_gib = 80\nefficiency = 1e-30\n", "e.toml"); }, "efficiency must be in [0.001, 1]");
  auto node = [&](const std::string& extra) {
    return parse_cluster("name = 'c'\n[[node_type]]\nname = 'n'\ngpu = 'h100'\n" + extra, "c.toml", cat);
  };
  EXPECT_EQ(node("count = 4\nprice_per_node_hour = 16\n").node_types.at(0).gpu.price_per_hour, 2.0);
  expect_bad_input([&] { node("count = 100000000000\n"); }, "c.toml [[node_type]] n: count must be 1..1048576 nodes, got 100000000000");
  expect_bad_input([&] { node("count = 4\nprice_per_node_hour = -24\n"); }, "price_per_node_hour must be 0..1e9, got -24");
  // A misspelt key is an error, not its default read in silence; inf is no number to plan with.
  expect_bad_input([&] { node("count = 4\nprice_per_node_hr = 1\n"); },
                   "c.toml [[node_type]] n: unknown key \"price_per_node_hr\"; did you mean price_per_node_hour?");
  expect_bad_input([&] { parse_cluster("nam = 'c'\n[[node_type]]\ngpu = 'h100'\ncount = 1\n", "c.toml", cat); },
                   "c.toml: unknown key \"nam\"");
  expect_bad_input([&] { GpuCatalog::parse(gpu + "memory_gib = 80\neffeciency = 0.9\n", "t.toml"); },
                   "t.toml [gpu.x]: unknown key \"effeciency\"; did you mean efficiency?");
  expect_bad_input([&] { GpuCatalog::parse("[gpus.y]\nmemory_gib = 1\n" + gpu + "memory_gib = 80\n", "g.toml"); },
                   "g.toml: unknown key \"gpus\"");
  expect_bad_input([&] { GpuCatalog::parse("[gpu.x]\nbf16_tflops = inf\nhbm_gbs = 1000\nlink_busbw_gbs = 200\n"
                                           "network_busbw_gbs = 20\nprice_per_hour = 2\nmemory_gib = 80\n", "i.toml"); },
                   "i.toml [gpu.x]: \"bf16_tflops\" must be a finite number, got inf");
  expect_bad_input([&] { node("count = 4\nnetwork_busbw_gbs = inf\n"); }, "\"network_busbw_gbs\" must be a finite number");
  expect_bad_input([&] { node("count = 4\nnvlink_busbw_gbs = 0\n"); }, "c.toml [[node_type]] n: nvlink_busbw_gbs must be at least 0.001 GB/s, got 0");
  // Rates so small that a step would take forever (inf, then NaN in the plan): refused by name.
  expect_bad_input([&] { node("count = 4\nnetwork_busbw_gbs = 1e-300\n"); }, "network_busbw_gbs must be at least 0.001 GB/s, got 1e-300");
  const std::string rates = "link_busbw_gbs = 200\nnetwork_busbw_gbs = 20\nprice_per_hour = 2\nmemory_gib = 80\n";
  expect_bad_input([&] { GpuCatalog::parse("[gpu.x]\nbf16_tflops = 1e-300\nhbm_gbs = 1000\n" + rates, "r.toml"); },
                   "r.toml [gpu.x]: bf16_tflops must be at least 0.001, got 1e-300");
  expect_bad_input([&] { GpuCatalog::parse("[gpu.x]\nbf16_tflops = 312\nhbm_gbs = 1e-9\n" + rates, "r.toml"); },
                   "r.toml [gpu.x]: hbm_gbs must be at least 0.001 GB/s, got 1e-09");
  // Every name and alias names one GPU, every node type is named once: --gpu and the plan's rows
  // would otherwise pick one of them in silence.
  const std::string body = "bf16_tflops = 312\nhbm_gbs = 1000\nlink_busbw_gbs = 200\nnetwork_busbw_gbs = 20\nprice_per_hour = 2\nmemory_gib = 80\n";
  expect_bad_input([&] { GpuCatalog::parse("[gpu.x1]\naliases = ['x2']\n" + body + "[gpu.x2]\n" + body, "a.toml"); },
                   "a.toml [gpu.x2]: \"x2\" already names [gpu.x1]");
  expect_bad_input([&] { GpuCatalog::parse("[gpu.X1]\n" + body + "[gpu.x1]\n" + body, "c.toml"); }, "already names [gpu.x1]");
  expect_bad_input([&] { GpuCatalog::parse("[gpu.x1]\naliases = ['a', 'A']\n" + body, "d.toml"); }, "d.toml [gpu.x1]: \"a\" is given twice");
  expect_bad_input([&] { node("count = 4\n[[node_type]]\nname = 'n'\ngpu = 'a100-80gb'\ncount = 1\n"); },
                   "c.toml [[node_type]] n: a node type of that name is given already");
  expect_bad_input([&] { parse_cluster("[[node_type]]\nname = 'n'\ngpu = 'h1000'\ncount = 1\n", "c.toml", cat); },
                   "c.toml [[node_type]] n: \"gpu\": unknown GPU 'h1000'");
}

}  // namespace

// Auto loss chunking (the trainer's train.loss_chunk = -1) is decided per candidate from its own
// micro-batch's tokens, not once for a micro-batch of one: with a large vocabulary a micro-batch
// of 16 chunks where one sequence alone would not, so a longer sequence never needs more memory
// only because its logits were chunked.
TEST(Search, AutoLossChunkFollowsEachCandidatesMicroBatch) {
  PlanRequest req;
  req.model = preset_model("qwen2.5-0.5b");  // vocabulary 151936
  GpuSpec g = catalog().find("a10g");
  req.hardware.push_back({"", g, 1, 1});
  req.gpus = 1;
  req.activation_checkpointing = ActivationCheckpointing::None;
  req.total_tokens = 1e6;
  req.auto_loss_chunk = true;
  auto at = [&](int64_t mb, int64_t seq) {
    req.micro_batch = mb;
    req.base.seq_len = seq;
    req.base.loss_chunk = default_loss_chunk(req.model, seq);  // (what a micro-batch of one would take)
    const PlanResult r = search(req);
    for (const Candidate& c : r.candidates)
      EXPECT_EQ(c.setup.loss_chunk, default_loss_chunk(req.model, mb * seq)) << "mb " << mb << " seq " << seq;
    return r.candidates.at(0).needed_bytes();
  };
  EXPECT_EQ(default_loss_chunk(req.model, 512), 0) << "one sequence of 512 is not chunked";
  EXPECT_GT(default_loss_chunk(req.model, 16 * 512), 0) << "16 of them are";
  EXPECT_LE(at(16, 512), at(16, 1024));
}

// The time model's hardware: an H100 SXM of the catalog.
static Hardware h100(GpuSpec* spec = nullptr) {
  const GpuSpec g = catalog().find("h100-80gb-sxm");
  if (spec) *spec = g;
  return hardware_for({"", g, g.gpus_per_node, 64}, PlanRequest{});
}

// Precision fp32 computes without tensor cores (TF32 stays off): priced at the catalog's plain fp32
// peak, with its MFU against that peak.
TEST(Time, Fp32IsPricedAtThePlainFp32Peak) {
  GpuSpec g;
  const Hardware hw = h100(&g);
  ASSERT_GT(g.fp32_tflops, 0);
  ASSERT_LT(g.fp32_tflops, g.bf16_tflops / 10);
  const ModelSpec m = preset_model("qwen2.5-0.5b");
  RunSetup s;
  s.seq_len = 1024;
  s.micro_batch = 2;
  const TimeEstimate bf16 = estimate_time(m, s, hw, {1e7, 1});
  s.precision = Precision::Fp32;
  const TimeEstimate fp32 = estimate_time(m, s, hw, {1e7, 1});
  EXPECT_NEAR(fp32.compute_s_per_micro / bf16.compute_s_per_micro, g.bf16_tflops / g.fp32_tflops, 1e-9);
  EXPECT_GT(fp32.step_s, 8 * bf16.step_s);
  EXPECT_NEAR(fp32.mfu, fp32.tokens_per_s * fp32.flops_per_token / (g.fp32_tflops * 1e12), 1e-12);
}

// no_sync reduce-scatters once per step, not once per micro-batch; the optimizer stage's gradients
// travel in the reduce dtype.
TEST(Time, NoSyncReducesOncePerStepAndTheOptimizerStageReducesInTheReduceDtype) {
  const Hardware hw = h100();
  const ModelSpec m = preset_model("llama-3.1-8b");
  RunSetup s;
  s.seq_len = 1024;
  s.micro_batch = 1;
  s.shard_group = 8;
  for (Stage stage : {Stage::Full, Stage::GradOp}) {
    s.stage = stage;
    s.no_sync = false;
    const TimeEstimate each = estimate_time(m, s, hw, {1e7, 4});
    s.no_sync = true;
    const TimeEstimate once = estimate_time(m, s, hw, {1e7, 4});
    EXPECT_LT(once.comm_s_per_micro, each.comm_s_per_micro) << stage_name(stage);
    EXPECT_GT(once.comm_s_per_step, each.comm_s_per_step) << stage_name(stage);
    // 4 micro-batches' reduce-scatters become one
    EXPECT_NEAR(4 * (each.comm_s_per_micro - once.comm_s_per_micro), 4 * (once.comm_s_per_step - each.comm_s_per_step), 1e-9)
        << stage_name(stage);
  }
  // hybrid: no_sync hides its own reduce-scatter, never the replicas' all-reduce across nodes
  s.stage = Stage::Hybrid;
  s.replicas = 4;
  s.no_sync = false;
  const TimeEstimate hybrid = estimate_time(m, s, hw, {1e7, 1});
  s.no_sync = true;
  const TimeEstimate hybrid_once = estimate_time(m, s, hw, {1e7, 1});
  EXPECT_GT(hybrid.comm_s_per_step, 0);
  EXPECT_GE(hybrid_once.exposed_comm_s, hybrid.comm_s_per_step * (1 - 1e-9));
  // The replicas all-reduce the accumulated gradient shard: bf16 in bf16-pure (half fp32's bytes),
  // whatever grad_accum_dtype says (it is bf16-mixed's setting).
  RunSetup pure = s;
  pure.precision = Precision::Bf16Pure;
  pure.grad_accum_dtype = FloatType::Fp32;
  pure.no_sync = false;  // (the all-reduce alone per step)
  RunSetup full_precision = pure;
  full_precision.precision = Precision::Fp32;
  full_precision.grad_accum_dtype = FloatType::Bf16;
  EXPECT_NEAR(estimate_time(m, pure, hw, {1e7, 1}).comm_s_per_step * 2, estimate_time(m, full_precision, hw, {1e7, 1}).comm_s_per_step,
              1e-12);
  s.replicas = 1;
  s.stage = Stage::Optimizer;
  s.no_sync = false;
  s.reduce_dtype = FloatType::Bf16;
  const TimeEstimate bf16 = estimate_time(m, s, hw, {1e7, 1});
  s.reduce_dtype = FloatType::Fp32;
  const TimeEstimate fp32 = estimate_time(m, s, hw, {1e7, 1});
  EXPECT_NEAR(fp32.comm_s_per_step / bf16.comm_s_per_step, 1.5, 1e-6);  // (4 + 2) / (2 + 2) bytes per element
}

// The candidates table shows the recommendation as its group's row, also where a cheaper variant of
// the same GPU count and stage lost to it on the near-tie rule (more memory left).
TEST(Report, TheTableShowsTheRecommendedRow) {
  for (const char* model : {"qwen3-0.6b", "qwen2.5-0.5b", "mistral-7b"}) {
    PlanRequest req = worked_example();
    req.model = preset_model(model);
    req.total_tokens = 1e8;
    PlanResult res = search(req);
    ASSERT_GE(res.recommended, 0) << model;
    PlanReport report{req, res, {}, nlohmann::ordered_json::object(), "test", "launch"};
    EXPECT_NE(plan_table(report).find("<- recommended"), std::string::npos) << model;
  }
}

// A candidate never laid out (the global batch rules it out) has null memory, time and cost in
// --json, never 0 (a consumer sorting by cost would pick it).
TEST(Report, CandidatesNeverLaidOutHaveNullNumbers) {
  PlanRequest req = worked_example();
  req.global_batch = 6;  // not a multiple of micro-batch x GPUs for most layouts
  PlanResult res = search(req);
  PlanReport report{req, res, {}, nlohmann::ordered_json::object(), "test", "launch"};
  const nlohmann::ordered_json j = plan_json(report);
  int never = 0;
  for (const auto& c : j["candidates"]) {
    if (c.contains("needed_bytes")) {
      EXPECT_GT(c["time"]["step_s"].get<double>(), 0);
      continue;
    }
    ++never;
    for (const char* k : {"memory_per_gpu_bytes", "host_memory_bytes", "host_memory", "cost_usd", "cost_per_mtok_usd", "gpu_hours"})
      EXPECT_TRUE(c[k].is_null()) << k << " = " << c[k].dump();
    for (const char* k : {"step_s", "tokens_per_s", "total_s", "steps", "mfu"}) EXPECT_TRUE(c["time"][k].is_null()) << k;
    EXPECT_TRUE(c.contains("rejected_because"));
  }
  EXPECT_GT(never, 0);
}

// Each row of the table is its group's best fitting variant by the search's own order: with a
// workload its cost, without one its cost per million tokens (every total is 0 then, which must not
// make the first variant win).
TEST(Report, EachRowIsItsGroupsBestWithOrWithoutAWorkload) {
  for (double tokens : {1e8, 0.0}) {
    PlanRequest req = worked_example();
    req.model = preset_model("llama-3-8b");
    req.total_tokens = tokens;
    PlanResult res = search(req);
    PlanReport report{req, res, {}, nlohmann::ordered_json::object(), "test", "launch"};
    int checked = 0;
    for (int i : shown_candidates(report, res.recommended)) {
      const Candidate& row = res.candidates[i];
      if (!row.fits || i == res.recommended) continue;
      for (const Candidate& c : res.candidates) {
        if (!c.fits || c.gpus != row.gpus || c.setup.stage != row.setup.stage) continue;
        EXPECT_FALSE(better_candidate(c, row, req.objective))
            << "tokens " << tokens << ": " << row.gpus << " GPUs " << stage_name(row.setup.stage) << " shows mb "
            << row.setup.micro_batch << ", mb " << c.setup.micro_batch << " ranks before it";
      }
      ++checked;
    }
    EXPECT_GT(checked, 3) << tokens;
  }
}

// Where the model states fit one GPU but the step does not, the table does not say they are over.
TEST(Report, OneGpuNamesWhatDoesNotFit) {
  PlanRequest req = worked_example();
  req.model = preset_model("qwen2.5-0.5b");
  req.base.seq_len = 65536;
  req.activation_checkpointing = ActivationCheckpointing::None;
  PlanResult res = search(req);
  PlanReport report{req, res, {}, nlohmann::ordered_json::object(), "test", "launch"};
  const std::string table = plan_table(report);
  EXPECT_EQ(table.find("model states alone"), std::string::npos) << table;
  EXPECT_NE(table.find("One GPU does not fit: the model states (params_sharded, master, optimizer, grads_sharded) are 16.0 bytes/param"),
            std::string::npos) << table;
  EXPECT_NE(table.find("GiB usable; the step's peak, during the"), std::string::npos) << table;
}
