// Packing documents into fixed-length samples, and the sampler that deals them out.
//
//   std::vector<data::Sample> samples = data::pack(docs, seq_len);          // everything in memory
//
//   data::PackedSamples packed(std::make_shared<const data::TokenFile>("train.ftok", vocab), seq_len);
//   std::vector<int64_t> ids(seq_len), labels(seq_len);
//   packed.sample(i, ids.data(), labels.data());                           // == pack(docs, seq_len)[i]
//
// pack(): documents are concatenated in order and cut into seq_len tokens; a document's first
// token is never a prediction target from the previous document (its label is -100 at every join),
// so no loss crosses documents. The last partial sample is dropped.
//
// PackedSamples: the same samples, cut from a memory-mapped token file when they are needed; ids
// stay uint32 in the file and become int64 only in the caller's buffers. With Packing::Documents
// (fine-tuning data) examples are placed whole instead: best-fit decreasing over their lengths, the
// rest of a sample padded (label -100), an example longer than seq_len truncated or dropped (a
// truncated one that keeps no trained token, a prompt longer than seq_len, is left out), and
// position ids that restart at 0 for each example, from which the model masks attention to the
// example (model::LlamaModel::context()).
//
// GlobalSampler: the samples of global step k are a pure function of (seed, k, global batch) —
// the same on 1 rank and on 8 — drawn from a per-epoch shuffle; a rank takes its contiguous share.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ftdist/data/documents.h"
#include "ftdist/data/token_file.h"

namespace ftdist::data {

struct Sample {
  std::vector<int64_t> ids, labels;  // seq_len each
};

// Stream: documents concatenated and cut every seq_len tokens (pre-training-style text).
// Documents: each sample holds whole examples, attention and positions per example.
enum class Packing { Stream, Documents };
enum class LongExamples { Truncate, Drop };  // Documents: an example longer than seq_len
Packing packing_from_name(const std::string& name, const std::string& where);
const char* long_examples_name(LongExamples l);
LongExamples long_examples_from_name(const std::string& name, const std::string& where);

// What Packing::Documents made of a file: tokens used over the samples' slots, and what did not fit.
struct PackingStats {
  int64_t samples = 0, slots = 0, tokens = 0;  // slots = samples x seq_len; tokens placed
  int64_t truncated = 0, dropped = 0, dropped_tokens = 0;
  int64_t untrained = 0;  // truncated examples left out: no trained token within seq_len (their prompt is longer)
  double efficiency() const { return slots ? double(tokens) / double(slots) : 0; }
  // One line for the log and `ftdist prepare-data`: "51 examples packed whole into 28 sequences of
  // 256 tokens, packing efficiency 81.5% (tokens used / slots)", then what was truncated, left out
  // or dropped, where anything was.
  std::string describe(int64_t examples, int64_t seq_len) const;
};

std::vector<Sample> pack(const std::vector<Document>& docs, int64_t seq_len);

// pack() over a token file's documents, without materializing it: sample i is the stream's tokens
// [i * seq_len, (i + 1) * seq_len). Cutting one costs O(log D + seq_len) and touches only the pages
// that hold those tokens (and the offsets around them). Thread-safe (const, no mutable state).
class PackedSamples {
 public:
  // Error(BadInput) naming the file when seq_len < 2 or the file holds fewer than seq_len tokens
  // (Stream) or no example (Documents, every one dropped).
  PackedSamples(std::shared_ptr<const TokenFile> file, int64_t seq_len, Packing packing = Packing::Stream,
                LongExamples long_examples = LongExamples::Truncate);

  int64_t num_samples() const { return num_samples_; }  // floor(T / seq_len); the tail is dropped
  int64_t seq_len() const { return seq_len_; }
  const TokenFile& file() const { return *file_; }

  // Writes sample i (0 <= i < num_samples()) to `ids` and `labels`, seq_len int64 each: label = the
  // id, or -100 where the loss mask is 0 and at a document's first token when that token is not the
  // sample's first. Error(BadInput) naming the file, document and position for a token outside the
  // file's vocabulary. `positions` (seq_len int64, may be null): each token's position in its
  // example (Documents; padding counts on from 0 as an example of its own) or 0..seq_len-1 (Stream).
  void sample(int64_t i, int64_t* ids, int64_t* labels, int64_t* positions = nullptr) const;
  Sample sample(int64_t i) const;

  Packing packing() const { return packing_; }
  const PackingStats& stats() const { return stats_; }  // Documents (zeros for Stream)

 private:
  void place_documents(LongExamples long_examples);  // best-fit decreasing into items_/sample_begin_
  bool trains_within(int64_t d, int64_t n) const;    // document d has a trained token among its first n
  void document_sample(int64_t i, int64_t* ids, int64_t* labels, int64_t* positions) const;

  std::shared_ptr<const TokenFile> file_;
  int64_t seq_len_;
  int64_t num_samples_;
  Packing packing_;
  PackingStats stats_;
  // Documents: sample i holds examples items_[sample_begin_[i] .. sample_begin_[i + 1]) in order,
  // each (document, tokens taken from its start).
  std::vector<std::pair<int64_t, int64_t>> items_;
  std::vector<int64_t> sample_begin_;
};

class GlobalSampler {
 public:
  GlobalSampler(int64_t num_samples, uint64_t seed);
  // Sample indices of global step `step` (from 0), `global_batch` of them; the share of `rank` out of
  // `world` is the contiguous block [rank * global_batch / world, (rank + 1) * global_batch / world).
  std::vector<int64_t> step_samples(int64_t step, int64_t global_batch, int rank, int world) const;
  // Where step `step` starts in the endless stream of epochs (samples drawn before it).
  int64_t position(int64_t step, int64_t global_batch) const;
  // A resumed run: step `step` starts at `position` (what the saved run had drawn), whatever global
  // batch the steps before it had, so a resumed run with another global batch neither skips nor
  // repeats samples.
  void resume_at(int64_t step, int64_t position);

 private:
  // The shuffled sample indices of `epoch` (n of them), made once per epoch and kept: a step then
  // costs its share of samples, not a shuffle of the whole data set.
  const std::vector<int64_t>& order(int64_t epoch) const;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> cached_order_;
  int64_t n_;
  uint64_t seed_;
  int64_t base_step_ = 0, base_position_ = 0;  // (resume_at)
};

}  // namespace ftdist::data
