// ftdist prepare-data --input data.jsonl --output data.ftok [--tokenizer tokenizer.model | tokenizer.json | DIR] [--vocab N]
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "options.h"
#include "ftdist/core/check.h"
#include "ftdist/core/progress.h"
#include "ftdist/core/stop_signal.h"
#include "ftdist/data/chat_format.h"
#include "ftdist/data/packing.h"
#include "ftdist/data/token_file.h"
#include "ftdist/plan/limits.h"

#include <limits>
#include "ftdist/data/tokenizer.h"

namespace ftdist::cli {
namespace {

// Whole examples into sequences of seq_len (data::Packing::Documents, as ftdist train packs them),
// and the planner's workload for them: the sequences themselves, which `ftdist plan --examples`
// counts (exact where examples are truncated or left out, which --tokens with --packing-efficiency,
// the data's tokens over the slots, is not).
void print_packing(const std::string& path, int64_t seq_len) {
  const data::PackedSamples packed(std::make_shared<const data::TokenFile>(path, std::numeric_limits<int32_t>::max()), seq_len,
                                   data::Packing::Documents);
  const data::PackingStats& st = packed.stats();
  std::printf("%s; an epoch for the planner: ftdist plan --packing documents --seq-len %lld --examples %lld\n",
              st.describe(packed.file().num_documents(), seq_len).c_str(), static_cast<long long>(seq_len),
              static_cast<long long>(packed.num_samples()));
}

// The first `n` conversations (`messages` lines and TRL's conversational prompt/completion) as
// training sees them, one JSON line each: the rendered text and the byte ranges of it that are trained.
void show_conversations(const std::string& input, const data::Tokenizer& tok, int64_t n, bool all_turns) {
  std::ifstream in(input);
  std::string line;
  for (int64_t k = 1, shown = 0; shown < n && std::getline(in, line); ++k) {
    const nlohmann::ordered_json j = nlohmann::ordered_json::parse(line, nullptr, false);
    size_t first_trained = 0;
    const nlohmann::ordered_json conversation = j.is_discarded() ? nullptr : data::conversation_of(j, &first_trained);
    if (conversation.is_null()) continue;  // (a text or token-id line)
    const data::ChatTokens c = data::chat_tokens(conversation, input + ":" + std::to_string(k), tok, all_turns, first_trained);
    nlohmann::json spans = nlohmann::json::array();
    int64_t trained = 0;
    for (size_t i = 0; i < c.ids.size(); ++i) {
      if (!c.trained[i]) continue;
      ++trained;
      const size_t end = i + 1 < c.ids.size() ? c.starts[i + 1] : c.text.size();
      if (!spans.empty() && spans.back()[1] == c.starts[i]) spans.back()[1] = end;
      else spans.push_back({c.starts[i], end});
    }
    std::printf("%s\n", nlohmann::json({{"line", k}, {"tokens", c.ids.size()}, {"trained_tokens", trained}, {"text", c.text},
                                        {"trained", spans}}).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    ++shown;
  }
}

}  // namespace

int prepare_data_main(int argc, char** argv) {
  cxxopts::Options options("ftdist prepare-data", "Converts JSONL documents to the packed token file (.ftok).");
  options.add_options()
      ("input", "JSONL: input_ids/labels, text, prompt/completion, or chat messages (with a model directory's chat template)",
       cxxopts::value<std::string>())
      ("output", "the .ftok file to write", cxxopts::value<std::string>())
      ("vocab", "vocabulary size the ids must stay below (default: the tokenizer's; 258 for bytes)", cxxopts::value<int64_t>()->default_value("0"))
      ("tokenizer", "SentencePiece tokenizer.model or byte-level BPE tokenizer.json for text, or a model directory with one "
       "(its tokenizer_config.json's chat template renders messages) (default: byte-level)", cxxopts::value<std::string>()->default_value(""))
      ("train-on", "chat messages: assistant (the loss on the assistant turns and their end-of-turn marker) | all",
       cxxopts::value<std::string>()->default_value("assistant"))
      ("show", "also print the first N conversations as rendered, with the byte ranges trained (JSON lines)",
       cxxopts::value<int64_t>()->default_value("0"))
      ("seq-len", "also print how whole examples pack into sequences of this length (data.packing = documents); "
       "with a .ftok --input, only that", cxxopts::value<int64_t>())
      ("h,help", "this help");
  cxxopts::ParseResult args = parse_options(options, argc, argv);
  if (print_help_if_asked(options, args)) return 0;
  FT_CHECK_ARG(args.count("input"), "ftdist prepare-data: --input is required");
  FT_CHECK_ARG(!args.count("seq-len") || (args["seq-len"].as<int64_t>() >= 2 && args["seq-len"].as<int64_t>() <= plan::kMaxSeqLen),
               "--seq-len: expected a number of tokens in 2.." << plan::kMaxSeqLen << ", got " << args["seq-len"].as<int64_t>());
  FT_CHECK_ARG(args["vocab"].as<int64_t>() >= 0, "--vocab: expected a vocabulary size (0: the tokenizer's), got " << args["vocab"].as<int64_t>());
  FT_CHECK_ARG(args["show"].as<int64_t>() >= 0, "--show: expected a number of conversations >= 0, got " << args["show"].as<int64_t>());
  if (data::is_token_file_path(args["input"].as<std::string>())) {  // an existing token file: its packing only
    FT_CHECK_ARG(args.count("seq-len") && !args.count("output"), "ftdist prepare-data: a .ftok --input takes --seq-len (and no --output)");
    print_packing(args["input"].as<std::string>(), args["seq-len"].as<int64_t>());
    return 0;
  }
  FT_CHECK_ARG(args.count("output"), "ftdist prepare-data: --output is required");
  const std::string out = args["output"].as<std::string>();
  FT_CHECK_ARG(out.size() > 5 && data::is_token_file_path(out), "--output: the file name must end in .ftok, got '" << out << "'");
  const std::string train_on = args["train-on"].as<std::string>();
  FT_CHECK_ARG(train_on == "assistant" || train_on == "all", "--train-on: expected assistant or all, got '" << train_on << "'");
  const auto tokenizer = data::load_tokenizer(args["tokenizer"].as<std::string>(), "--tokenizer");
  // (by default the tokenizer's pieces and the added tokens past them, as Phi-3's 32000..32010)
  int64_t vocab = tokenizer->vocab_size();
  if (tokenizer->chat())
    for (const data::SpecialToken& t : tokenizer->chat()->specials) vocab = std::max(vocab, t.id + 1);
  if (args["vocab"].as<int64_t>() > 0) vocab = args["vocab"].as<int64_t>();
  const std::string input = args["input"].as<std::string>();
  std::unique_ptr<ProgressBar> bar;
  const StopOnSignal stop;  // SIGTERM / SIGINT / SIGHUP: the temporaries removed, --output as it was
  data::TokenFileWriter writer(out, vocab);
  const size_t docs = data::for_each_jsonl_document(
      input, vocab, "--input", tokenizer.get(), [&](data::Document&& d) { writer.add(d, input); },
      [&](uint64_t done, uint64_t total, size_t n) {
        StopOnSignal::check();
        if (!bar) bar = std::make_unique<ProgressBar>("reading " + input, total, "B");
        bar->update(done, std::to_string(n) + " documents");
      },
      train_on == "all");
  if (bar) bar->finish(std::to_string(docs) + " documents");
  const int64_t tokens = writer.num_tokens();
  writer.finish();
  std::printf("wrote %s: %zu documents, %lld tokens\n", out.c_str(), docs, static_cast<long long>(tokens));
  if (args.count("seq-len")) print_packing(out, args["seq-len"].as<int64_t>());
  if (args["show"].as<int64_t>() > 0) show_conversations(input, *tokenizer, args["show"].as<int64_t>(), train_on == "all");
  return 0;
}

}  // namespace ftdist::cli
