#include "training_data.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "ftdist/core/check.h"
#include "ftdist/core/log.h"
#include "ftdist/core/progress.h"
#include "ftdist/data/token_cache.h"
#include "ftdist/data/token_file.h"
#include "ftdist/model/loss.h"

namespace ftdist::train {

void on_rank0_while_others_wait(comm::Communicator& world, const std::function<void(const std::function<void()>&)>& work) {
  at::Tensor flag = at::zeros({1}, at::TensorOptions().dtype(at::kLong).device(world.device()));  // 1: still working, 0: done
  if (world.rank() != 0) {
    do world.broadcast(flag, 0);
    while (flag.item<int64_t>() != 0);
    return;
  }
  auto last = std::chrono::steady_clock::now();
  work([&] {
    if (std::chrono::steady_clock::now() - last < std::chrono::seconds(5)) return;
    flag.fill_(1);
    world.broadcast(flag, 0);
    last = std::chrono::steady_clock::now();
  });
  flag.fill_(0);
  world.broadcast(flag, 0);
}

namespace {
// Every token of the file below its vocabulary, checked before the first step: each rank scans its
// share (a progress bar on rank 0 when that takes more than a second) and all learn the first bad
// position, so every rank stops with the same error naming the file, the document and the position,
// rather than one rank when a sample reaches the token hours in. The same pass counts the
// prediction targets (and checks the loss mask): a file without one would train nothing.
void check_every_token(const data::TokenFile& file, const std::string& what, comm::Communicator& world) {
  const int64_t total = file.num_tokens(), rank = world.rank(), ranks = world.size();
  const int64_t begin = total / ranks * rank + std::min(rank, total % ranks);
  const int64_t end = begin + total / ranks + (rank < total % ranks ? 1 : 0);
  constexpr int64_t kPiece = int64_t(1) << 26;  // tokens between progress updates (256 MiB)
  std::optional<ProgressBar> bar;
  if (rank == 0) {
    bar.emplace(what + ": checking the tokens of " + file.path(), uint64_t(4 * (end - begin)), "B");
    bar->quiet_for(1.0);
  }
  int64_t bad = -1, trained = 0;
  std::string mask_problem;  // a corrupt mask byte in this rank's share
  for (int64_t at = begin; at < end && bad < 0 && mask_problem.empty(); at += kPiece) {
    bad = file.first_token_out_of_vocab(at, std::min(end, at + kPiece));
    try {
      trained += file.trained_targets(at, std::min(end, at + kPiece));
    } catch (const Error& e) {
      mask_problem = e.message();
    }
    if (bar) bar->update(uint64_t(4 * (std::min(end, at + kPiece) - begin)));
  }
  if (bar) bar->finish();
  // the smallest bad position over the ranks, as a maximum: total - position (0: none); whether any
  // rank's mask is corrupt; the targets
  at::Tensor found = at::tensor({bad < 0 ? int64_t(0) : total - bad, int64_t(!mask_problem.empty()), trained},
                                at::TensorOptions().dtype(at::kLong)).to(world.device());
  at::Tensor sums = found.narrow(0, 2, 1).clone();
  world.all_reduce(found, comm::ReduceOp::Max);
  world.all_reduce(sums, comm::ReduceOp::Sum);
  const at::Tensor host = found.cpu();
  const int64_t first = host[0].item<int64_t>();
  if (first > 0) file.check_token(total - first, file.doc_of(total - first));  // throws, naming it
  const std::string mask_error = mask_problem.empty() ? file.path() + ": a loss mask byte is not 0 or 1 (another rank names it): corrupt"
                                                      : mask_problem;
  FT_CHECK_ARG(host[1].item<int64_t>() == 0, mask_error);
  FT_CHECK_ARG(sums.cpu().item<int64_t>() > 0,
               what << ": " << file.path() << " has no token to train on: every label is masked (a chat or prompt/completion "
                    << "file whose completions are empty, or a .ftok written with an all-zero mask); nothing would be learned");
}
}  // namespace

data::PackedSamples open_samples(const std::string& path, const std::string& what, const std::string& packing_name, const RunConfig& c,
                                 const data::Tokenizer& tokenizer, int64_t vocab, comm::Communicator& world) {
  std::string ftok = path;
  if (!data::is_token_file_path(path)) {  // JSONL
    const std::string dir = c.output_dir + "/data";
    const data::TokenCacheSource source{path, c.tokenizer, vocab, c.train_on == "all"};
    on_rank0_while_others_wait(world, [&](const std::function<void()>& heartbeat) {
      bool reused = false;
      std::optional<ProgressBar> bar;  // made at the first report, which knows the size
      const std::string out = data::tokenized_cache(source, &tokenizer, dir, what,
                                                    [&](uint64_t done, uint64_t total, size_t docs) {
                                                      if (!bar) {
                                                        bar.emplace("tokenizing " + path, total, "B");
                                                        bar->quiet_for(1.0);  // shown once it takes more than a second
                                                      }
                                                      bar->update(done, std::to_string(docs) + " documents");
                                                      heartbeat();
                                                    },
                                                    heartbeat, &reused);
      if (bar) bar->finish();
      if (reused) FT_LOG_INFO(what << ": reusing the tokenized " << path << " (" << out << ")");
      else FT_LOG_INFO(what << ": tokenized " << path << " into " << out);
    });
    ftok = data::tokenized_cache_path(source, dir);
  }
  auto file = std::make_shared<const data::TokenFile>(ftok, vocab);
  check_every_token(*file, what, world);
  const data::Packing packing = data::packing_from_name(packing_name, c.origin + " [data] packing");
  const data::LongExamples long_examples = data::long_examples_from_name(c.long_examples, c.origin + " [data] long_examples");
  std::optional<data::PackedSamples> made;
  try {
    made.emplace(file, c.seq_len, packing, long_examples);
  } catch (const Error& e) {  // named by the key and the file the user gave, not only the tokenized cache
    std::string why = e.message();
    if (why.rfind(ftok + ": ", 0) == 0) why = why.substr(ftok.size() + 2);
    FT_CHECK_ARG(false, what << ": " << path << (ftok != path ? " (tokenized into " + ftok + ")" : std::string()) << ": " << why);
  }
  data::PackedSamples samples = std::move(*made);
  if (packing == data::Packing::Documents)
    FT_LOG_INFO(what << ": " << samples.stats().describe(file->num_documents(), c.seq_len));
  else
    FT_LOG_INFO(what << ": " << file->num_documents() << " documents joined into one stream, cut into "
                     << samples.num_samples() << " sequences of " << c.seq_len << " tokens (data.packing = stream)");
  return samples;
}

std::vector<fsdp::MicroBatch> micro_batches(const data::PackedSamples& samples, const std::vector<int64_t>& idx,
                                            int64_t micro) {
  const int64_t s = samples.seq_len();
  std::vector<fsdp::MicroBatch> out;
  const bool documents = samples.packing() == data::Packing::Documents;  // positions restart per example
  for (size_t start = 0; start < idx.size(); start += size_t(micro)) {
    at::Tensor ids = at::empty({micro, s}, at::kLong), labels = at::empty({micro, s}, at::kLong);
    at::Tensor positions = documents ? at::empty({micro, s}, at::kLong) : at::Tensor();
    for (int64_t k = 0; k < micro; ++k)
      samples.sample(idx[start + size_t(k)], ids.data_ptr<int64_t>() + k * s, labels.data_ptr<int64_t>() + k * s,
                     documents ? positions.data_ptr<int64_t>() + k * s : nullptr);
    out.push_back({ids, labels, positions});
  }
  return out;
}

std::optional<double> evaluate(fsdp::FsdpModel& fsdp, const data::PackedSamples& eval, comm::Communicator& world) {
  const int n = world.size();
  const int64_t size = eval.num_samples(), per_rank = (size + n - 1) / n;
  double sum = 0;
  int64_t count = 0;
  for (int64_t k = 0; k < per_rank; ++k) {
    const int64_t i = k * n + world.rank();
    fsdp::MicroBatch mb = micro_batches(eval, {std::min(i, size - 1)}, 1).front();
    if (i >= size) mb.labels.fill_(model::kIgnoreIndex);
    fsdp::StepResult e = fsdp.eval_sums(mb);
    sum += e.loss;
    count += e.tokens;
  }
  at::Tensor t = at::tensor({sum, double(count)}, at::kDouble);
  world.all_reduce(t, comm::ReduceOp::Sum);
  if (t[1].item<double>() <= 0) return std::nullopt;
  return t[0].item<double>() / t[1].item<double>();
}

TrainingData open_training_data(const RunConfig& c, int64_t vocab, comm::Communicator& world) {
  // (loaded when text needs it: input_ids lines and token files never do)
  // (a model directory without a tokenizer reads token ids only: its vocabulary is not bytes)
  const std::unique_ptr<data::Tokenizer> tokenizer =
      c.tokenizer.empty() && !c.model_path.empty()
          ? data::missing_tokenizer(c.model_path, c.origin + " data.tokenizer to the model's tokenizer (a file or a directory)")
          : data::load_tokenizer_when_used(c.tokenizer, c.origin + " [data] tokenizer");
  // (data.packing = "auto" is decided with the rest of the run, for each file: train::resolve_run())
  TrainingData d{open_samples(c.train_data, "data.train", c.packing, c, *tokenizer, vocab, world), std::nullopt};
  if (!c.eval_data.empty()) d.eval = open_samples(c.eval_data, "data.eval", c.eval_packing, c, *tokenizer, vocab, world);
  return d;
}

void TrainingData::release_pages() const {
  train.file().release_pages();
  if (eval) eval->file().release_pages();
}

}  // namespace ftdist::train
