// data/ and the run config: formats, packing, the sampler, validation and --set.
#include <gtest/gtest.h>

#include "ftdist/plan/gpu_catalog.h"

#include <algorithm>
#include <fstream>
#include <set>

#include "expect_error.h"
#include "ftdist/comm/communicator.h"
#include "ftdist/core/text_file.h"
#include "ftdist/data/packing.h"
#include "ftdist/data/token_file.h"
#include "ftdist/train/memory_fit.h"
#include "ftdist/train/resolve.h"
#include "ftdist/train/run_config.h"

using namespace ftdist;

namespace {

std::string write(const std::string& name, const std::string& text) {
  std::string path = std::string(FTDIST_TEST_TMP) + "/" + name;
  std::ofstream(path, std::ios::trunc) << text;
  return path;
}

TEST(Documents, EveryFormat) {
  auto docs = data::read_jsonl(write("fmt.jsonl", R"({"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}
{"text": "hi"}

{"prompt": "ab", "completion": "c"}
)"), 300);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].labels, (std::vector<int64_t>{-100, 2, 3}));
  EXPECT_EQ(docs[1].ids, (std::vector<int64_t>{data::kByteBos, 'h', 'i', data::kByteEos}));
  EXPECT_EQ(docs[2].ids, (std::vector<int64_t>{data::kByteBos, 'a', 'b', 'c', data::kByteEos}));
  EXPECT_EQ(docs[2].labels, (std::vector<int64_t>{-100, -100, -100, 'c', data::kByteEos}));  // completion only
  EXPECT_EQ(docs[1].line, 2);
  EXPECT_EQ(docs[2].line, 4);
}

TEST(Documents, BadFilesNameFileAndLine) {
  expect_bad_input([] { data::read_jsonl(write("b1.jsonl", "{\"input_ids\": [1, 99]}\n"), 50); },
                   "b1.jsonl:1: token 99 in \"input_ids\" is outside the vocabulary [0, 50)");
  expect_bad_input([] { data::read_jsonl(write("b2.jsonl", "{\"text\": \"x\"}\n{\"text\": \n"), 300); }, "b2.jsonl:2: not valid JSON");
  expect_bad_input([] { data::read_jsonl(write("b3.jsonl", "{\"text\": \"x\"}\n"), 100); }, "b3.jsonl:1: text is tokenized by the byte-level tokenizer (ids up to 257)");
  expect_bad_input([] { data::read_jsonl(write("b4.jsonl", "{\"words\": 1}\n"), 100); }, "b4.jsonl:1: expected \"input_ids\"");
  // two kinds of text on one line: refused, naming both; input_ids wins over its text
  expect_bad_input([] { data::read_jsonl(write("b5.jsonl", "{\"text\": \"x\"}\n{\"messages\": [], \"text\": \"x\"}\n"), 300); },
                   "b5.jsonl:2: the line holds both \"text\" and \"messages\"");
  expect_bad_input([] { data::read_jsonl(write("b6.jsonl", "{\"text\": \"x\", \"prompt\": \"a\", \"completion\": \"b\"}\n"), 300); },
                   "b6.jsonl:1: the line holds both \"text\" and \"prompt\"/\"completion\"");
  EXPECT_EQ(data::read_jsonl(write("b7.jsonl", "{\"input_ids\": [7, 8], \"text\": \"xyz\"}\n"), 300).at(0).ids,
            (std::vector<int64_t>{7, 8}));
  expect_bad_input([] { data::read_jsonl("/nonexistent.jsonl", 100, "data.train"); }, "data.train: cannot read");
  // attention_mask: all ones is the same document; padding (a 0) would be attended to and trained
  // on, so it is refused rather than ignored
  EXPECT_EQ(data::read_jsonl(write("m1.jsonl", "{\"input_ids\": [7, 8], \"attention_mask\": [1, 1]}\n"), 300).at(0).ids,
            (std::vector<int64_t>{7, 8}));
  expect_bad_input([] { data::read_jsonl(write("m2.jsonl", "{\"input_ids\": [7, 8, 0], \"attention_mask\": [1, 1, 0]}\n"), 300); },
                   "m2.jsonl:1: \"attention_mask\" is 0 at position 2 (padding)");
  expect_bad_input([] { data::read_jsonl(write("m3.jsonl", "{\"input_ids\": [7, 8], \"attention_mask\": [1]}\n"), 300); },
                   "m3.jsonl:1: \"attention_mask\" must be a list of 2 0s and 1s");
}

TEST(TokenFile, RoundTripAndMalformedFiles) {
  std::vector<data::Document> docs = {{{1, 2, 3}, {-100, 2, 3}, 1}, {{40, 41}, {40, 41}, 2}};
  const std::string path = std::string(FTDIST_TEST_TMP) + "/rt.ftok";
  data::write_token_file(path, docs, 50);
  auto back = data::read_documents(path, 50, "test");
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].ids, docs[0].ids);
  EXPECT_EQ(back[0].labels, docs[0].labels);  // the loss mask survives
  EXPECT_EQ(back[1].labels, docs[1].labels);
  expect_bad_input([&] { data::read_token_file(path, 45); }, "written for a vocabulary of 50, the model has 45");
  std::string bytes = read_text_file(path, "test");
  write("trunc.ftok", bytes.substr(0, bytes.size() - 3));
  expect_bad_input([] { data::read_token_file(std::string(FTDIST_TEST_TMP) + "/trunc.ftok", 50); }, "truncated or corrupt");
  write("magic.ftok", "NOTATOKENFILE-------------------------------------------");
  expect_bad_input([] { data::read_token_file(std::string(FTDIST_TEST_TMP) + "/magic.ftok", 50); }, "bad magic");
  std::string bad = bytes;
  bad[40 + 8 * 3] = char(60);  // the first token: 60 >= vocabulary 50
  write("tok.ftok", bad);
  expect_bad_input([] { data::read_token_file(std::string(FTDIST_TEST_TMP) + "/tok.ftok", 50); }, "token 60 (document 0)");
}

TEST(Packing, CutsToSeqLenAndMasksJoins) {
  std::vector<data::Document> docs = {{{1, 2, 3}, {1, 2, 3}, 1}, {{4, 5, 6, 7, 8}, {4, 5, 6, 7, 8}, 2}};
  auto samples = data::pack(docs, 4);
  ASSERT_EQ(samples.size(), 2u);  // 8 tokens -> two samples of 4
  EXPECT_EQ(samples[0].ids, (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(samples[0].labels, (std::vector<int64_t>{1, 2, 3, -100}));  // 4 is not predicted from 3
  EXPECT_EQ(samples[1].labels, (std::vector<int64_t>{5, 6, 7, 8}));
}

TEST(Sampler, WorldSizeIndependentDisjointAndResumable) {
  data::GlobalSampler s(37, 5);
  for (int64_t step : {0, 1, 7}) {
    std::vector<int64_t> one = s.step_samples(step, 8, 0, 1);
    std::vector<int64_t> four;
    for (int r = 0; r < 4; ++r) {
      auto part = s.step_samples(step, 8, r, 4);
      four.insert(four.end(), part.begin(), part.end());
    }
    EXPECT_EQ(one, four) << "step " << step;  // the same samples, dealt to ranks in order
    EXPECT_EQ(std::set<int64_t>(one.begin(), one.end()).size(), one.size());
  }
  // One epoch covers every sample exactly once; the next epoch is another order.
  std::multiset<int64_t> seen;
  for (int64_t i = 0; i < 37; ++i) seen.insert(s.step_samples(i, 1, 0, 1)[0]);
  for (int64_t i = 0; i < 37; ++i) EXPECT_EQ(seen.count(i), 1u);
  EXPECT_NE(s.step_samples(0, 10, 0, 1), s.step_samples(37, 10, 0, 1)) << "epoch 1 reshuffles";
  // Resuming at step k needs nothing but k.
  EXPECT_EQ(data::GlobalSampler(37, 5).step_samples(7, 8, 0, 1), s.step_samples(7, 8, 0, 1));
  expect_bad_input([&] { s.step_samples(0, 10, 0, 4); }, "multiple of the 4 data-parallel ranks");
}

// A run resumed with another global batch (4 sequences a step, then 6) draws the stream on from where
// the saved run stopped: every sample of the epoch once, none skipped or repeated.
TEST(Sampler, ResumedWithAnotherGlobalBatchGoesOnWhereItStopped) {
  const data::GlobalSampler saved(36, 3);
  std::vector<int64_t> drawn;
  for (int64_t step = 0; step < 3; ++step)
    for (int64_t i : saved.step_samples(step, 4, 0, 1)) drawn.push_back(i);
  data::GlobalSampler resumed(36, 3);
  resumed.resume_at(3, saved.position(3, 4));
  EXPECT_EQ(resumed.position(3, 6), 12);
  for (int64_t step = 3; step < 7; ++step)
    for (int r = 0; r < 3; ++r)
      for (int64_t i : resumed.step_samples(step, 6, r, 3)) drawn.push_back(i);
  std::vector<int64_t> epoch(drawn.begin(), drawn.end());
  std::sort(epoch.begin(), epoch.end());
  for (int64_t i = 0; i < 36; ++i) EXPECT_EQ(epoch[size_t(i)], i) << "each sample once in the epoch";
  EXPECT_NE(resumed.step_samples(7, 6, 0, 1), saved.step_samples(7, 6, 0, 1));  // (the position, not the step, picks them)
}

const char* kConfig = R"(
[model]
preset = "tinyllama-1.1b"
[data]
train = "t.jsonl"
seq_len = 32
[train]
steps = 10
lr = 1e-3
)";

TEST(RunConfig, ReadsDefaultsAndOverrides) {
  auto c = train::load_run_config(write("ok.toml", kConfig), {"train.lr=0.5", "parallel.shard=zero2", "output.dir=somewhere"});
  EXPECT_EQ(c.model_preset, "tinyllama-1.1b");
  EXPECT_EQ(c.seq_len, 32);
  EXPECT_EQ(c.steps, 10);
  EXPECT_DOUBLE_EQ(c.lr, 0.5);
  EXPECT_EQ(c.shard, plan::Stage::GradOp);
  EXPECT_EQ(c.output_dir, "somewhere");
  EXPECT_FALSE(c.precision.has_value());  // "auto": decided with the device
}

TEST(RunConfig, EveryBadValueNamesTheKey) {
  const std::string path = write("bad.toml", kConfig);
  expect_bad_input([&] { train::load_run_config(path, {"train.stpes=3"}); }, "unknown key train.stpes; did you mean train.steps?");
  expect_bad_input([&] { train::load_run_config(path, {"trian.steps=3"}); }, "unknown section [trian]");
  expect_bad_input([&] { train::load_run_config(path, {"train.steps=0"}); }, "\"steps\" must be >= 1");
  expect_bad_input([&] { train::load_run_config(path, {"train.steps=many"}); }, "\"steps\" must be an integer");
  expect_bad_input([&] { train::load_run_config(path, {"parallel.shard=zero4"}); }, "unknown stage 'zero4'");
  expect_bad_input([&] { train::load_run_config(path, {"model.path=/x"}); }, "give exactly one of path");
  expect_bad_input([&] { train::load_run_config(path, {"train.schedule=step"}); }, "unknown learning-rate schedule");
  expect_bad_input([&] { train::load_run_config(path, {"bad"}); }, "expected section.key=value");
  expect_bad_input([&] { train::load_run_config(write("broken.toml", "[model\n"), {}); }, "broken.toml:");
  expect_bad_input([&] { train::load_run_config(path, {"parallel.memory_limit=lots"}); }, "memory_limit");
  expect_bad_input([&] { train::load_run_config(path, {"parallel.memory_limit=-5"}); }, "\"memory_limit\" must be >= 0 bytes");
  expect_bad_input([&] { train::load_run_config(path, {"parallel.auto=maybe"}); }, "\"auto\"");
  expect_bad_input([&] { train::load_run_config(path, {"parallel.gpu=h1000"}); }, "h100");
  expect_bad_input([&] { train::load_run_config(path, {"parallel.device=tpu"}); }, "\"device\" must be \"auto\", \"cpu\" or \"cuda\"");
}

TEST(RunConfig, DeviceDecidesTheRuntimesDeviceAndAttention) {
  const std::string path = write("dev.toml", kConfig);
  auto c = train::load_run_config(path, {});
  EXPECT_EQ(c.device, "auto");
  EXPECT_EQ(train::resolved_device(c), comm::cuda_device_present() ? "cuda" : "cpu");
  c = train::load_run_config(path, {"parallel.device=cpu"});
  EXPECT_EQ(train::resolved_device(c), "cpu");
  EXPECT_TRUE(train::fsdp_config(c).device.is_cpu());
  EXPECT_EQ(train::runtime_attention(c), plan::Attention::Eager);
  EXPECT_EQ(train::fsdp_config(c).precision, plan::Precision::Fp32);  // precision "auto" on the CPU
  c = train::load_run_config(path, {"parallel.device=cuda"});
  EXPECT_TRUE(train::fsdp_config(c).device.is_cuda());
  EXPECT_EQ(train::runtime_attention(c), plan::Attention::Flash);
  EXPECT_EQ(train::fsdp_config(c).precision, plan::Precision::Bf16Mixed);  // the planner's default on a GPU
  c = train::load_run_config(path, {"parallel.device=cuda", "parallel.precision=bf16-pure"});
  EXPECT_EQ(train::fsdp_config(c).precision, plan::Precision::Bf16Pure);  // an explicit precision stays
  EXPECT_EQ(train::run_config_json(c)["parallel"]["precision"], "bf16-pure");
  c = train::load_run_config(path, {"parallel.device=cpu", "parallel.precision=auto"});
  EXPECT_EQ(train::run_config_json(c)["parallel"]["precision"], "auto");
  // grad_accum_dtype bf16 needs an explicit bf16-mixed: "auto" could be fp32.
  expect_bad_input([&] { train::load_run_config(path, {"parallel.grad_accum_dtype=bf16"}); },
                   "applies to precision = \"bf16-mixed\" only; precision is \"auto\"");
  expect_bad_input([&] { train::load_run_config(path, {"parallel.precision=fp16"}); },
                   "\"precision\" must be auto, fp32, bf16-mixed or bf16-pure, got \"fp16\"");
}

TEST(RunConfig, HybridShardGroupAndNoSyncReachTheRuntimeAndThePlan) {
  const std::string path = write("hyb.toml", kConfig);
  auto c = train::load_run_config(path, {"parallel.shard=hybrid", "parallel.shard_group=2", "parallel.no_sync=true"});
  EXPECT_EQ(c.shard_group, 2);
  EXPECT_TRUE(c.no_sync);
  const fsdp::FsdpConfig fc = train::fsdp_config(c);
  EXPECT_EQ(fc.shard_group, 2);
  EXPECT_TRUE(fc.no_sync);
  const plan::RunSetup s = train::runtime_setup(c, 8, 1);
  EXPECT_EQ(s.shard_group, 2);
  EXPECT_EQ(s.replicas, 4);
  EXPECT_TRUE(s.no_sync);
  // defaults: reduce-scatter every micro-batch; the group is resolved by the trainer (one node)
  c = train::load_run_config(path, {"parallel.shard=hybrid"});
  EXPECT_EQ(c.shard_group, 0);
  EXPECT_FALSE(train::fsdp_config(c).no_sync);
  expect_bad_input([&] { train::load_run_config(path, {"parallel.shard_group=2"}); },
                   "\"shard_group\" (2) applies to shard = \"hybrid\" only; shard is \"full\"");
  expect_bad_input([&] { train::load_run_config(path, {"parallel.shard=hybrid", "parallel.shard_group=-1"}); },
                   "\"shard_group\" must be >= 0");
  expect_bad_input([&] { train::load_run_config(path, {"parallel.no_sync=sometimes"}); }, "\"no_sync\"");
}

TEST(RunConfig, ParallelAutoMemoryLimitAndGpuPeak) {
  const std::string path = write("par.toml", kConfig);
  auto c = train::load_run_config(path, {"parallel.auto=true", "parallel.memory_limit=\"1.5GiB\"", "parallel.gpu=a100-80gb"});
  EXPECT_TRUE(c.auto_parallel);
  EXPECT_EQ(c.memory_limit, 1536ull << 20);
  EXPECT_EQ(c.gpu, "a100-80gb");
  EXPECT_DOUBLE_EQ(c.peak_tflops, plan::GpuCatalog::load_default().find("a100-80gb").bf16_tflops);  // mfu's peak
  EXPECT_GT(c.peak_tflops, 100);
  // an explicit peak wins; a plain number of bytes is accepted
  c = train::load_run_config(path, {"train.peak_tflops=50", "parallel.gpu=a100-80gb", "parallel.memory_limit=4096"});
  EXPECT_DOUBLE_EQ(c.peak_tflops, 50);
  EXPECT_EQ(c.memory_limit, 4096u);
  EXPECT_FALSE(c.auto_parallel);
}

}  // namespace

// data.packing = "auto" decides a JSONL file as it would decide the .ftok made of it: whole
// examples where a token is masked, a stream otherwise.
TEST(Packing, AutoDecidesAJsonlAsItsTokenFile) {
  auto world = comm::make_communicator(at::kCPU);
  const plan::ModelSpec spec = plan::ModelSpec{};
  auto resolved = [&](const std::string& name, const std::string& first_line) {
    train::RunConfig c;
    c.model_preset = "tiny";
    c.device = "cpu";
    c.train_data = write(name, first_line + "\n");
    const std::string jsonl = train::resolve_run(c, spec, *world).config.packing;
    c.train_data = std::string(FTDIST_TEST_TMP) + "/" + name + ".ftok";  // the same data, tokenized
    data::write_token_file(c.train_data, data::read_jsonl(write(name, first_line + "\n"), 300, name), 300);
    EXPECT_EQ(train::resolve_run(c, spec, *world).config.packing, jsonl) << first_line;
    return jsonl;
  };
  EXPECT_EQ(resolved("auto_text.jsonl", R"({"text": "plain text"})"), "stream");
  EXPECT_EQ(resolved("auto_ids.jsonl", R"({"input_ids": [1, 2, 3]})"), "stream");
  EXPECT_EQ(resolved("auto_labels.jsonl", R"({"input_ids": [1, 2, 3], "labels": [1, 2, 3]})"), "stream");
  EXPECT_EQ(resolved("auto_masked.jsonl", R"({"input_ids": [1, 2, 3], "labels": [-100, 2, 3]})"), "documents");
  EXPECT_EQ(resolved("auto_prompt.jsonl", R"({"prompt": "question", "completion": "answer"})"), "documents");
  // a mask on any line counts, not only on the first (pre-tokenized data where some examples have
  // no prompt, so no labels)
  EXPECT_EQ(resolved("auto_masked_later.jsonl",
                     "{\"input_ids\": [1, 2, 3]}\n\n{\"input_ids\": [4, 5], \"labels\": [4, 5]}\n"
                     "{\"input_ids\": [6, 7, 8], \"labels\": [-100, 7, 8]}"),
            "documents");
  EXPECT_EQ(resolved("auto_ids_many.jsonl", "{\"input_ids\": [1, 2, 3]}\n{\"input_ids\": [4, 5], \"labels\": [4, 5]}"),
            "stream");
  // text first, masked examples later: masked data (was: a stream from the first line)
  EXPECT_EQ(resolved("auto_text_then_prompt.jsonl",
                     "{\"text\": \"plain, with the word \\\"prompt\\\" in it\"}\n{\"prompt\": \"q\", \"completion\": \"a\"}"),
            "documents");
  EXPECT_TRUE(data::jsonl_masked_text_lines(write("auto_text_then_messages.jsonl",  // (chat needs a template to tokenize)
                                                  "{\"text\": \"plain\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, "
                                                  "{\"role\": \"assistant\", \"content\": \"a\"}]}\n")));
  EXPECT_EQ(resolved("auto_text_mentions_prompt.jsonl", "{\"text\": \"a \\\"prompt\\\": not a key\"}\n{\"text\": \"b\"}"), "stream");
  // The eval data decides its own: its loss does not depend on the training data's format.
  train::RunConfig c;
  c.model_preset = "tiny";
  c.device = "cpu";
  c.train_data = write("auto_train_masked.jsonl", R"({"prompt": "question", "completion": "answer"})");
  c.eval_data = write("auto_eval_text.jsonl", R"({"text": "plain text"})");
  const train::RunConfig r = train::resolve_run(c, spec, *world).config;
  EXPECT_EQ(r.packing, "documents");
  EXPECT_EQ(r.eval_packing, "stream");
  std::swap(c.train_data, c.eval_data);
  EXPECT_EQ(train::resolve_run(c, spec, *world).config.eval_packing, "documents");
  c.packing = "stream";  // (a packing given applies to both)
  EXPECT_EQ(train::resolve_run(c, spec, *world).config.eval_packing, "stream");
}
