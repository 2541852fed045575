// ftdist eval — mean loss, token count and perplexity of a Hugging Face model (or of an ftdist
// checkpoint's weights) over a JSONL token file ({"input_ids": [...], "labels": [...] optional, -100 = ignored}). Runs as a plain process
// or under mpirun (lines are dealt out to ranks; each rank holds the whole model).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "options.h"
#include "ftdist/comm/communicator.h"
#include "ftdist/comm/device_binding.h"
#include "ftdist/core/check.h"
#include "ftdist/core/text_file.h"
#include "ftdist/core/dtype.h"
#include "ftdist/core/log.h"
#include "ftdist/data/documents.h"
#include "ftdist/data/token_file.h"
#include "ftdist/data/tokenizer.h"
#include "ftdist/io/hf_checkpoint.h"
#include "ftdist/io/weight_source.h"
#include "ftdist/model/llama.h"
#include "ftdist/model/loss.h"

namespace ftdist::cli {
namespace {

// The documents of this rank (document i goes to rank i % size), truncated to seq_len.
std::vector<data::Document> rank_documents(const std::string& path, int64_t vocab, const data::Tokenizer& tokenizer,
                                           int64_t seq_len, int rank, int size, int64_t* truncated) {
  std::vector<data::Document> mine;
  std::vector<data::Document> all = data::read_jsonl(path, vocab, "--data", &tokenizer);
  for (size_t i = 0; i < all.size(); ++i) {
    data::Document& d = all[i];
    if (seq_len > 0 && int64_t(d.ids.size()) > seq_len) {
      d.ids.resize(size_t(seq_len));
      d.labels.resize(size_t(seq_len));
      ++*truncated;
    }
    if (int(i % size_t(size)) == rank) mine.push_back(std::move(d));
  }
  return mine;
}

void add_eval_options(cxxopts::Options& options) {
  options.add_options()
      ("model", "Hugging Face model directory (config.json + safetensors), or an ftdist checkpoint directory", cxxopts::value<std::string>())
      ("data", "JSONL file: {\"input_ids\": [...], \"labels\": [...]}, text, prompt/completion or chat messages per line",
       cxxopts::value<std::string>())
      ("tokenizer", "the tokenizer of text lines: tokenizer.model, tokenizer.json, ftdist-tokenizer.json (byte-level) or a "
       "directory holding one (default: the --model directory's)", cxxopts::value<std::string>()->default_value(""))
      ("seq-len", "truncate longer sequences to this many tokens (0: keep)", cxxopts::value<int64_t>()->default_value("0"))
      ("dtype", "compute dtype: auto (config.json's dtype, else as most weights are stored) | fp32 | bf16 | fp16", cxxopts::value<std::string>()->default_value("auto"))
      ("device", "cpu | cuda | auto", cxxopts::value<std::string>()->default_value("auto"))
      ("attention", "flash (fused SDPA) | eager", cxxopts::value<std::string>()->default_value("flash"))
      ("loss-chunk", "compute the loss in chunks of this many tokens (0: all logits at once)", cxxopts::value<int64_t>()->default_value("0"))
      ("json", "print {\"loss\", \"tokens\", \"ppl\"} as JSON")
      ("dump-logits", "debug: write every sequence's fp32 logits to this safetensors file (one rank)", cxxopts::value<std::string>())
      ("write-model", "debug: write the loaded weights with ftdist's safetensors writer into this directory", cxxopts::value<std::string>())
      ("h,help", "this help");
}

void check_args(const cxxopts::ParseResult& args) {
  FT_CHECK_ARG(args.count("model") && args.count("data"), "ftdist eval: --model DIR and --data FILE are required");
  FT_CHECK_ARG(!data::is_token_file_path(args["data"].as<std::string>()),
               "--data: ftdist eval reads JSONL ({\"input_ids\": [...], \"labels\": [...]} lines), not a token file: '"
                   << args["data"].as<std::string>() << "'");
  FT_CHECK_ARG(args["seq-len"].as<int64_t>() >= 0, "--seq-len: expected a number of tokens (0: keep every sequence whole), got "
                                                       << args["seq-len"].as<int64_t>());
}

std::string real_path(const std::string& p) {
  char buf[PATH_MAX];
  return ::realpath(p.c_str(), buf) ? std::string(buf) : p;
}

// --write-model must not write into the model being read; --dump-logits over no file of the model
// or the data.
void refuse_overwriting(const cxxopts::ParseResult& args, const io::WeightSource& weights) {
  const std::string model = real_path(weights.dir());
  if (args.count("write-model"))
    FT_CHECK_ARG(real_path(args["write-model"].as<std::string>()) != model,
                 "--write-model: '" << args["write-model"].as<std::string>() << "' is the model being read; give another directory");
  if (args.count("dump-logits")) {
    const std::string out = args["dump-logits"].as<std::string>(), file = real_path(out);
    FT_CHECK_ARG(file != model && directory_of(file) != model, "--dump-logits: '" << out << "' is in the model being read; give another file");
    FT_CHECK_ARG(file != real_path(args["data"].as<std::string>()), "--dump-logits: '" << out << "' is the --data file; give another file");
  }
}

// The loaded weights as a Hugging Face directory, tensors as Transformers stores them (Phi-3's q/k/v
// and gate/up fused).
void write_loaded_model(const std::string& out, const model::LlamaModel& model, const io::WeightSource& weights) {
  const plan::ModelSpec& spec = weights.spec();
  std::vector<std::pair<std::string, at::Tensor>> named;
  const std::vector<plan::ModelSpec::Unit> units = spec.units();
  for (size_t u = 0; u < units.size(); ++u) {
    int64_t offset = 0;
    for (const auto& t : spec.hf_tensors(units[u])) {
      const int64_t n = plan::shape_numel(t.shape);
      named.push_back({t.name, model.units()[u].flat.narrow(0, offset, n).view(t.shape)});
      offset += n;
    }
  }
  io::save_hf_model(out, weights.config_text(), named);
}

// The tokenizer of text lines: --tokenizer, else the model directory's own, as training on it takes
// it; a model directory without one reads token ids only (its vocabulary is not bytes).
std::unique_ptr<data::Tokenizer> text_tokenizer(const std::string& given, const std::string& model_dir, int rank) {
  const std::string path = given.empty() ? data::tokenizer_file_of(model_dir) : given;
  if (!path.empty() && rank == 0) FT_LOG_INFO("eval: text lines are tokenized by " << path);
  if (!given.empty()) return data::load_tokenizer(path, "--tokenizer");
  if (path.empty()) return data::missing_tokenizer(model_dir, "--tokenizer");
  return data::load_tokenizer_when_used(path, model_dir + " tokenizer");
}

}  // namespace

int eval_main(int argc, char** argv) {
  cxxopts::Options options("ftdist eval", "Loss, token count and perplexity of a Hugging Face model over a JSONL token file.");
  add_eval_options(options);
  cxxopts::ParseResult args = parse_options(options, argc, argv);
  if (print_help_if_asked(options, args)) return 0;
  check_args(args);
  std::unique_ptr<io::WeightSource> weights = io::open_weights(args["model"].as<std::string>());
  refuse_overwriting(args, *weights);
  const plan::ModelSpec& spec = weights->spec();
  std::string dtype_arg = args["dtype"].as<std::string>();
  FT_CHECK_ARG(dtype_arg == "auto" || dtype_arg == "fp32" || dtype_arg == "bf16" || dtype_arg == "fp16",
               "--dtype: expected auto, fp32, bf16 or fp16, got '" << dtype_arg << "'");
  at::ScalarType dtype = dtype_arg == "auto" ? weights->stored_dtype() : dtype_from_name(dtype_arg, "--dtype");
  FT_CHECK_ARG(at::isFloatingType(dtype), "--dtype: the model computes in a floating dtype, got " << dtype_name(dtype));
  const bool cuda = cuda_from_device_option(args["device"].as<std::string>());
  plan::Attention attention = plan::attention_from_name(args["attention"].as<std::string>());
  const int64_t chunk = args["loss-chunk"].as<int64_t>();
  FT_CHECK_ARG(chunk >= 0, "--loss-chunk must be >= 0");

  auto comm = comm::make_communicator(at::kCPU);  // sums over ranks; tiny, so on the CPU
  const bool dump = args.count("dump-logits") > 0;
  FT_CHECK_ARG(!dump || comm->size() == 1, "--dump-logits works on one rank; run without mpirun");
  // The data first: a bad file stops the run before anything is loaded or written.
  int64_t truncated = 0;
  const std::unique_ptr<data::Tokenizer> tokenizer = text_tokenizer(args["tokenizer"].as<std::string>(), weights->dir(), comm->rank());
  std::vector<data::Document> examples = rank_documents(args["data"].as<std::string>(), spec.vocab, *tokenizer,
                                                        args["seq-len"].as<int64_t>(), comm->rank(), comm->size(), &truncated);
  at::Device device(at::kCPU);
  if (cuda) device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(comm::bind_local_gpu()));

  model::LlamaModel model(spec, at::TensorOptions().dtype(dtype).device(device), attention);
  for (size_t u = 0; u < model.units().size(); ++u) weights->read_unit_range(u, 0, model.units()[u].flat);
  FT_LOG_INFO("eval: " << weights->dir() << " (" << spec.model_type << ", " << spec.param_count() << " parameters) in "
              << dtype_name(dtype) << " on " << device << ", " << comm->size() << " rank(s)");

  if (args.count("write-model") && comm->rank() == 0) write_loaded_model(args["write-model"].as<std::string>(), model, *weights);
  std::vector<std::pair<std::string, at::Tensor>> dumped;

  double loss_sum = 0;
  int64_t tokens = 0;
  {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < examples.size(); ++i) {
      const data::Document& ex = examples[i];
      at::Tensor ids = at::tensor(ex.ids, at::kLong).view({1, -1}).to(device);
      at::Tensor labels = at::tensor(ex.labels, at::kLong).view({1, -1}).to(device);
      model::LossSum l;
      if (chunk > 0 && !dump) {
        l = model::chunked_causal_lm_loss(model.forward_hidden(ids), model.lm_head_weight(), labels, chunk);
      } else {
        at::Tensor logits = model.forward(ids);
        l = model::causal_lm_loss(logits, labels);
        if (dump) dumped.push_back({"logits." + std::to_string(i), logits[0].to(at::kCPU, at::kFloat)});
      }
      loss_sum += l.sum.item<double>();
      tokens += l.count;
    }
  }
  at::Tensor totals = at::tensor({loss_sum, double(tokens)}, at::kDouble);
  comm->all_reduce(totals, comm::ReduceOp::Sum);
  const double total_loss = totals[0].item<double>();
  const int64_t total_tokens = static_cast<int64_t>(totals[1].item<double>());
  FT_CHECK_ARG(total_tokens > 0, "--data: no token counts towards the loss (every label is -100 or every sequence has one token)");
  const double mean = total_loss / double(total_tokens);
  if (dump) io::save_safetensors(args["dump-logits"].as<std::string>(), dumped, {{"format", "pt"}});
  if (truncated > 0) FT_LOG_WARN(truncated << " sequences were truncated to --seq-len " << args["seq-len"].as<int64_t>());
  if (comm->rank() == 0) {
    if (args.count("json")) {
      nlohmann::ordered_json j = {{"loss", mean}, {"tokens", total_tokens}, {"ppl", std::exp(mean)}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("loss %.6f  tokens %lld  ppl %.4f\n", mean, static_cast<long long>(total_tokens), std::exp(mean));
    }
  }
  // (printed first, as measured; every rank has the same sum)
  FT_CHECK(std::isfinite(mean), ErrorKind::Numerics,
           "eval: the loss is not finite (" << mean << "): " << weights->dir() << " computes NaN or Inf on this data "
           "(weights that hold NaN or Inf, or a reduced-precision overflow: try --dtype fp32)");
  return 0;
}

}  // namespace ftdist::cli
