// The run config's key table (train/run_config.cpp) is the one declaration of every key: each has
// its documentation, each is parsed and written back under its own name, and the reference lists it.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "../expect_error.h"
#include "ftdist/core/error.h"
#include "ftdist/train/run_config.h"

using namespace ftdist;

namespace {

std::string write_config(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

const char* kMinimal = "[model]\npreset = \"tiny\"\n[data]\ntrain = \"x.jsonl\"\n";

}  // namespace

TEST(ConfigKeys, EveryKeyHasADocTypeAndDefault) {
  const auto docs = train::run_config_key_docs();
  ASSERT_GT(docs.size(), 30u);
  std::set<std::string> seen;
  for (const train::ConfigKeyDoc& k : docs) {
    const std::string name = k.section + "." + k.key;
    EXPECT_TRUE(seen.insert(name).second) << name << " is declared twice";
    EXPECT_GE(k.doc.size(), 12u) << name << " has no doc string";
    EXPECT_FALSE(k.type.empty()) << name << " has no type";
    EXPECT_FALSE(k.default_value.empty()) << name << " has no default";
    if (k.type == "choice") {
      EXPECT_NE(k.allowed.find('|'), std::string::npos) << name << ": a choice lists its values";
    }
  }
}

TEST(ConfigKeys, TheResolvedJsonHoldsExactlyTheDeclaredKeys) {
  const nlohmann::ordered_json j = train::run_config_json(train::load_run_config(write_config("keys.toml", kMinimal), {}));
  std::set<std::string> in_json, declared;
  for (auto s = j.begin(); s != j.end(); ++s)
    for (auto k = s->begin(); k != s->end(); ++k) in_json.insert(s.key() + "." + k.key());
  for (const auto& k : train::run_config_key_docs()) declared.insert(k.section + "." + k.key);
  EXPECT_EQ(in_json, declared);
}

TEST(ConfigKeys, EveryKeyIsReadUnderItsOwnName) {
  // Writing a config from the resolved JSON of a non-default config and reading it back gives the
  // same JSON: every key is parsed into the member it is written from.
  const std::string path = write_config("nondefault.toml", kMinimal);
  const train::RunConfig c = train::load_run_config(
      path, {"data.train=y.jsonl", "data.tokenizer=t.model", "data.eval=e.jsonl", "data.seq_len=64", "data.packing=documents", "data.long_examples=drop", "data.train_on=all", "train.steps=7", "train.micro_batch=2", "train.global_batch=8", "train.lr=0.002",
             "train.min_lr=0.0001", "train.warmup_steps=2", "train.schedule=linear", "train.optimizer=adamw-8bit", "train.weight_decay=0.1", "train.beta1=0.8", "train.beta2=0.99", "train.eps=1e-6", "train.momentum=0.5", "train.grad_clip=0.5",
             "train.seed=3", "train.eval_every=2", "train.log_every=3", "train.loss_chunk=64", "train.nonfinite=abort", "train.nonfinite_limit=2", "train.peak_tflops=10",
             "parallel.device=cpu", "parallel.shard=hybrid", "parallel.shard_group=2", "parallel.precision=bf16-mixed",
             "parallel.reduce_dtype=bf16", "parallel.grad_accum_dtype=bf16", "parallel.checkpointing=3", "parallel.prefetch=3", "parallel.no_sync=true", "parallel.offload=optimizer",
             "parallel.auto=true", "parallel.memory_limit=1000", "checkpoint.dir=ck", "checkpoint.every=5", "checkpoint.keep=1",
             "checkpoint.resume=true", "output.dir=o", "output.metrics=m.jsonl", "output.export=true", "output.tensorboard=true", "output.export_dtype=fp32"});
  const nlohmann::ordered_json j = train::run_config_json(c);
  const nlohmann::ordered_json defaults = train::run_config_json(train::load_run_config(path, {}));
  std::string toml;
  for (auto s = j.begin(); s != j.end(); ++s) {
    toml += "[" + s.key() + "]\n";
    for (auto k = s->begin(); k != s->end(); ++k) {
      if (s.key() == "parallel" && k.key() == "gpu") continue;  // "" is not a catalog name
      if (s.key() == "model" && k.value() == "") continue;       // exactly one of the three
      toml += k.key() + " = " + k.value().dump() + "\n";
    }
  }
  const nlohmann::ordered_json back = train::run_config_json(train::load_run_config(write_config("back.toml", toml), {}));
  EXPECT_EQ(back, j);
  // Every key but the three model sources and parallel.gpu was set away from its default.
  EXPECT_EQ(train::changed_keys(defaults, j).size(), train::run_config_key_docs().size() - 4);
}

// Numbers are finite; the run's directory and the metrics file have names.
TEST(ConfigKeys, NonFiniteNumbersAndEmptyOutputNamesAreErrors) {
  auto load = [](const std::string& extra) {
    return train::load_run_config(write_config("v.toml", std::string(kMinimal) + extra), {});
  };
  for (const char* bad : {"[train]\neps = inf\n", "[train]\nweight_decay = inf\n", "[train]\nlr = nan\n", "[train]\ngrad_clip = inf\n"}) {
    SCOPED_TRACE(bad);
    expect_bad_input([&] { load(bad); }, "must be a finite number");
  }
  // The optimizers divide by eps in fp32: an eps that rounds to 0 or a denormal there is refused.
  expect_bad_input([&] { load("[train]\neps = 1e-46\n"); }, "\"eps\" must be > 0 and at least 1.17549e-38 (the least normal fp32), got 1e-46");
  EXPECT_NO_THROW(load("[train]\neps = 1e-30\nbeta2 = 0.9999999999\n"));  // (1 - beta is taken in double)
  expect_bad_input([&] { load("[output]\ndir = \"\"\n"); }, "v.toml [output]: \"dir\" must name the run's directory");
  expect_bad_input([&] { load("[output]\nmetrics = \"\"\n"); }, "v.toml [output]: \"metrics\" must be a plain file name");
}

// The metrics log is written into output.dir under a plain name: never over the data it trains on,
// a directory outside, or a file the run itself writes there.
TEST(ConfigKeys, TheMetricsLogIsAPlainNameThatNamesNoInput) {
  auto load = [](const std::string& extra) {
    return train::load_run_config(write_config("m.toml", std::string(kMinimal) + extra), {});
  };
  for (const char* bad : {"../corpus.jsonl", "sub/m.jsonl", "/tmp/m.jsonl", ".", ".."}) {
    SCOPED_TRACE(bad);
    expect_bad_input([&] { load(std::string("[output]\nmetrics = \"") + bad + "\"\n"); }, "must be a plain file name in output.dir");
  }
  for (const char* reserved : {"run_config.json", "memory.json", "checkpoints", "hf"}) {
    SCOPED_TRACE(reserved);
    expect_bad_input([&] { load(std::string("[output]\nmetrics = \"") + reserved + "\"\n"); }, "a name the run itself writes");
  }
  // output.dir = "." with data.train = "x.jsonl" (kMinimal): the log would overwrite the training data.
  expect_bad_input([&] { load("[output]\ndir = \".\"\nmetrics = \"x.jsonl\"\n"); },
                   "m.toml: data.train 'x.jsonl' is the file the run writes as");
  EXPECT_EQ(load("[output]\ndir = \".\"\nmetrics = \"log.jsonl\"\n").metrics, "log.jsonl");
}

// Nothing the run writes lands on what it reads: run_config.json and memory.json are no input, and
// the export it replaces holds neither an input nor the checkpoints.
TEST(ConfigKeys, TheRunsOutputsSpareItsInputs) {
  const std::string path = write_config("o.toml", kMinimal);
  auto load = [&](std::vector<std::string> sets) { return train::load_run_config(path, sets); };
  expect_bad_input([&] { load({"output.dir=/r", "data.train=/r/run_config.json"}); },
                   "data.train '/r/run_config.json' is the file the run writes as /r/run_config.json");
  expect_bad_input([&] { load({"output.dir=/r", "data.eval=/r/./memory.json"}); }, "data.eval '/r/./memory.json' is the file the run writes");
  expect_bad_input([&] { load({"output.dir=/r", "model.preset=", "model.path=/r/hf", "output.export=true"}); },
                   "model.path '/r/hf' is in /r/hf, which output.export replaces");
  expect_bad_input([&] { load({"output.dir=/r", "data.tokenizer=/r/hf/tokenizer.model", "output.export=true"}); },
                   "data.tokenizer '/r/hf/tokenizer.model' is in /r/hf");
  expect_bad_input([&] { load({"output.dir=/r", "checkpoint.dir=/r/hf/ck", "output.export=true"}); },
                   "checkpoint.dir '/r/hf/ck' is in /r/hf, which output.export replaces");
  EXPECT_EQ(load({"output.dir=/r", "model.preset=", "model.path=/r/hf"}).model_path, "/r/hf");  // no export: read only
  EXPECT_EQ(load({"output.dir=/r", "checkpoint.dir=/r/hf2", "output.export=true"}).checkpoint_dir, "/r/hf2");
  EXPECT_EQ(load({"output.dir=/r", "data.train=/r/data/x.ftok"}).train_data, "/r/data/x.ftok");  // a tokenized cache: read only
}

// The learning-rate schedule's errors name the config's keys, not the schedule's fields.
TEST(ConfigKeys, ScheduleErrorsNameTheKeys) {
  const std::string path = write_config("s.toml", kMinimal);
  expect_bad_input([&] { train::load_run_config(path, {"train.steps=7", "train.warmup_steps=20"}); },
                   "s.toml [train]: \"steps\" (7) must exceed \"warmup_steps\" (20) for the cosine schedule");
  expect_bad_input([&] { train::load_run_config(path, {"train.lr=0.001", "train.min_lr=0.01"}); },
                   "s.toml [train]: \"min_lr\" must be in [0, lr = 0.001], got 0.01");
  expect_bad_input([&] { train::load_run_config(path, {"train.lr=0"}); }, "s.toml [train]: \"lr\" must be a positive number");
  EXPECT_EQ(train::load_run_config(path, {"train.steps=7", "train.warmup_steps=20", "train.schedule=constant"}).steps, 7);
}

// A key's value has its own type: no integer reads as true or false, no float as an integer.
TEST(ConfigKeys, ValuesDoNotConvertBetweenTypes) {
  const std::string path = write_config("t.toml", kMinimal);
  expect_bad_input([&] { train::load_run_config(path, {"output.export=1"}); }, "t.toml [output]: \"export\" must be true or false");
  expect_bad_input([&] { train::load_run_config(path, {"checkpoint.resume=0"}); }, "\"resume\" must be true or false");
  expect_bad_input([&] { train::load_run_config(path, {"train.steps=2.0"}); }, "t.toml [train]: \"steps\" must be an integer");
  EXPECT_EQ(train::load_run_config(path, {"train.lr=1"}).lr, 1.0);  // an integer is a number
}

// A key written before any [section] is named with the section it belongs in.
TEST(ConfigKeys, AKeyOutsideASectionNamesItsSection) {
  expect_bad_input([] { train::load_run_config(write_config("top.toml", std::string("steps = 5\n") + kMinimal), {}); },
                   "top.toml: \"steps\" is outside any [section]; keys go under their section: [train] steps = ...");
}

// Evaluation asked for without data to evaluate on is an error, not a run without eval_loss.
TEST(ConfigKeys, EvalEveryNeedsEvalData) {
  const std::string path = write_config("e.toml", kMinimal);
  expect_bad_input([&] { train::load_run_config(path, {"train.eval_every=10"}); },
                   "e.toml [train]: \"eval_every\" = 10 needs data.eval");
  EXPECT_EQ(train::load_run_config(path, {"train.eval_every=10", "data.eval=e.jsonl"}).eval_every, 10);
}

// What a resume compares with its checkpoint: the keys that shape the trajectory; steps, logging and
// evaluation may change; a key the checkpoint predates counts as its default.
TEST(ConfigKeys, TrajectoryChangesNameWhatAResumeWouldTrainDifferently) {
  const train::RunConfig c = train::load_run_config(write_config("t.toml", kMinimal), {"train.lr=0.002"});
  nlohmann::ordered_json saved = train::run_config_json(c);
  EXPECT_EQ(train::trajectory_changes(saved, c), std::vector<std::string>{});
  saved["train"]["steps"] = 5, saved["train"]["log_every"] = 7, saved["train"]["eval_every"] = 3;
  saved["data"].erase("train_on");  // (a checkpoint from before data.train_on: the default)
  EXPECT_EQ(train::trajectory_changes(saved, c), std::vector<std::string>{});
  saved["train"]["lr"] = 0.001, saved["data"]["seq_len"] = 7;
  EXPECT_EQ(train::trajectory_changes(saved, c), (std::vector<std::string>{"data.seq_len", "train.lr"}));
  train::RunConfig all = c;
  all.train_on = "all";
  saved = train::run_config_json(c);
  saved["data"].erase("train_on");
  EXPECT_EQ(train::trajectory_changes(saved, all), std::vector<std::string>{"data.train_on"});
  // Another optimizer's hyper-parameters train nothing: not a change (AdamW's momentum, SGD's betas).
  saved = train::run_config_json(c);
  saved["train"]["momentum"] = 0.5;
  EXPECT_EQ(train::trajectory_changes(saved, c), std::vector<std::string>{});
  saved["train"]["beta1"] = 0.5;
  EXPECT_EQ(train::trajectory_changes(saved, c), std::vector<std::string>{"train.beta1"});
  train::RunConfig sgd = c;
  sgd.optimizer = plan::OptimizerKind::SgdMomentum;
  saved = train::run_config_json(sgd);
  saved["train"]["beta1"] = 0.5, saved["train"]["eps"] = 0.3;
  EXPECT_EQ(train::trajectory_changes(saved, sgd), std::vector<std::string>{});
  EXPECT_EQ(train::trajectory_hash(sgd), train::trajectory_hash([&] {
              train::RunConfig other = sgd;
              other.beta2 = 0.5;
              return other;
            }()));
}

// parallel.checkpointing: "none", "full" or a number of layers (an integer, or its digits); anything
// else is an error naming the key.
TEST(ConfigKeys, CheckpointingIsNoneFullOrANumberOfLayers) {
  auto load = [](const std::string& value) {
    return train::load_run_config(write_config("ck.toml", std::string(kMinimal) + "[parallel]\ncheckpointing = " + value + "\n"), {});
  };
  EXPECT_EQ(load("\"none\"").activation_checkpointing, plan::ActivationCheckpointing::None);
  EXPECT_EQ(load("\"full\"").activation_checkpointing, plan::ActivationCheckpointing::Full);
  EXPECT_EQ(load("5").activation_checkpointing, plan::ActivationCheckpointing::first(5));
  EXPECT_EQ(load("\"5\"").activation_checkpointing, plan::ActivationCheckpointing::first(5));
  EXPECT_EQ(train::run_config_json(load("5"))["parallel"]["checkpointing"], 5);
  EXPECT_EQ(train::run_config_json(load("\"full\""))["parallel"]["checkpointing"], "full");
  for (const char* bad : {"-1", "\"some\"", "2.5", "true", "\"-3\""}) {
    try {
      load(bad);
      ADD_FAILURE() << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(e.message().find("\"checkpointing\""), std::string::npos) << bad << ": " << e.message();
      EXPECT_NE(e.message().find("ck.toml"), std::string::npos) << bad << ": " << e.message();
    }
  }
}

TEST(ConfigKeys, TheReferenceListsEverySectionAndKey) {
  const std::string ref = train::run_config_reference();
  for (const auto& k : train::run_config_key_docs()) {
    EXPECT_NE(ref.find("### [" + k.section + "]"), std::string::npos) << k.section;
    EXPECT_NE(ref.find("| `" + k.key + "` |"), std::string::npos) << k.section << "." << k.key;
  }
}
