#include "ftdist/data/packing.h"

#include <algorithm>
#include <iomanip>
#include <map>
#include <random>
#include <sstream>
#include <utility>

#include "ftdist/core/check.h"

namespace ftdist::data {

std::string PackingStats::describe(int64_t examples, int64_t seq_len) const {
  std::ostringstream os;
  os << examples << " examples packed whole into " << samples << " sequences of " << seq_len << " tokens, packing efficiency "
     << std::fixed << std::setprecision(1) << 100 * efficiency() << "% (tokens used / slots)";
  if (truncated) os << ", " << truncated << " longer than seq_len truncated";
  if (untrained)
    os << ", " << untrained << " left out: longer than seq_len, with no trained token within it (a prompt longer than seq_len)";
  if (dropped) os << ", " << dropped << " longer than seq_len dropped (" << dropped_tokens << " tokens)";
  return os.str();
}

std::vector<Sample> pack(const std::vector<Document>& docs, int64_t seq_len) {
  FT_CHECK_ARG(seq_len >= 2, "seq_len must be >= 2, got " << seq_len);
  std::vector<Sample> out;
  Sample cur;
  for (const Document& d : docs) {
    for (size_t i = 0; i < d.ids.size(); ++i) {
      cur.ids.push_back(d.ids[i]);
      // A document's first token joined to an earlier one is not predicted from it.
      cur.labels.push_back(i == 0 && !cur.labels.empty() ? -100 : d.labels[i]);
      if (int64_t(cur.ids.size()) == seq_len) {
        out.push_back(std::move(cur));
        cur = Sample{};
      }
    }
  }
  FT_CHECK_ARG(!out.empty(), "the data holds fewer than seq_len = " << seq_len << " tokens");
  return out;
}

Packing packing_from_name(const std::string& name, const std::string& where) {
  if (name == "documents") return Packing::Documents;
  if (name == "stream") return Packing::Stream;
  FT_CHECK_ARG(false, where << ": expected \"documents\" or \"stream\", got \"" << name << "\"");
  return Packing::Stream;
}

const char* long_examples_name(LongExamples l) { return l == LongExamples::Drop ? "drop" : "truncate"; }

LongExamples long_examples_from_name(const std::string& name, const std::string& where) {
  if (name == "truncate") return LongExamples::Truncate;
  if (name == "drop") return LongExamples::Drop;
  FT_CHECK_ARG(false, where << ": expected \"truncate\" or \"drop\", got \"" << name << "\"");
  return LongExamples::Truncate;
}

PackedSamples::PackedSamples(std::shared_ptr<const TokenFile> file, int64_t seq_len, Packing packing, LongExamples long_examples)
    : file_(std::move(file)), seq_len_(seq_len), packing_(packing) {
  FT_CHECK(file_ != nullptr, ErrorKind::Internal, "PackedSamples needs a token file");
  FT_CHECK_ARG(seq_len >= 2, file_->path() << ": seq_len must be >= 2, got " << seq_len);
  if (packing_ == Packing::Documents) {
    place_documents(long_examples);
    num_samples_ = stats_.samples;
    FT_CHECK_ARG(num_samples_ > 0, file_->path() << ": no example fits seq_len = " << seq_len << " (all "
                                                 << stats_.dropped + stats_.untrained << " are longer"
                                                 << (stats_.dropped ? " and data.long_examples = \"drop\")" : ", their trained tokens beyond it)"));
    return;
  }
  num_samples_ = file_->num_tokens() / seq_len;
  FT_CHECK_ARG(num_samples_ > 0, file_->path() << ": the data holds fewer than seq_len = " << seq_len
                                               << " tokens (it has " << file_->num_tokens() << ")");
}

bool PackedSamples::trains_within(int64_t d, int64_t n) const {
  const TokenFile& f = *file_;
  if (!f.masked()) return true;
  const uint8_t* mask = f.mask() + f.doc_begin(d);
  for (int64_t p = 1; p < n; ++p)  // (an example's first token is never a target)
    if (mask[p]) return true;
  return false;
}

void PackedSamples::place_documents(LongExamples long_examples) {
  const TokenFile& f = *file_;
  std::vector<std::pair<int64_t, int64_t>> order;  // (tokens taken, document)
  order.reserve(size_t(f.num_documents()));
  for (int64_t d = 0; d < f.num_documents(); ++d) {
    int64_t n = f.doc_size(d);
    if (n > seq_len_) {
      if (long_examples == LongExamples::Drop) {
        ++stats_.dropped, stats_.dropped_tokens += n;
        continue;
      }
      if (!trains_within(d, seq_len_)) {
        ++stats_.untrained;
        continue;
      }
      ++stats_.truncated, n = seq_len_;
    }
    if (n > 0) order.push_back({n, d});
  }
  // Best-fit decreasing: longest first, each into the open sample with the least room that holds it.
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::multimap<int64_t, int64_t> room;  // free tokens -> sample
  std::vector<int64_t> sample_of(order.size()), count;
  for (size_t k = 0; k < order.size(); ++k) {
    const int64_t n = order[k].first;
    auto it = room.lower_bound(n);
    int64_t at, left;
    if (it == room.end()) {
      at = int64_t(count.size()), left = seq_len_ - n;
      count.push_back(0);
    } else {
      at = it->second, left = it->first - n;
      room.erase(it);
    }
    if (left > 0) room.insert({left, at});
    sample_of[k] = at;
    ++count[size_t(at)];
    stats_.tokens += n;
  }
  sample_begin_.assign(count.size() + 1, 0);
  for (size_t i = 0; i < count.size(); ++i) sample_begin_[i + 1] = sample_begin_[i] + count[i];
  items_.resize(order.size());
  std::vector<int64_t> next(sample_begin_.begin(), sample_begin_.end() - 1);
  for (size_t k = 0; k < order.size(); ++k) items_[size_t(next[size_t(sample_of[k])]++)] = {order[k].second, order[k].first};
  stats_.samples = int64_t(count.size());
  stats_.slots = stats_.samples * seq_len_;
}

void PackedSamples::document_sample(int64_t i, int64_t* ids, int64_t* labels, int64_t* positions) const {
  const TokenFile& f = *file_;
  int64_t j = 0;
  for (int64_t k = sample_begin_[size_t(i)]; k < sample_begin_[size_t(i) + 1]; ++k) {
    const auto [d, n] = items_[size_t(k)];
    for (int64_t p = 0; p < n; ++p, ++j) {
      const int64_t t = f.doc_begin(d) + p;
      f.check_token(t, d);
      ids[j] = f.tokens()[t];
      const bool masked = f.masked() && f.mask()[t] == 0;
      labels[j] = masked || (p == 0 && j > 0) ? -100 : ids[j];  // (never predicted from the example before)
      if (positions) positions[j] = p;
    }
  }
  for (int64_t p = 0; j < seq_len_; ++j, ++p) {  // padding: not counted, an example of its own
    ids[j] = 0;
    labels[j] = -100;
    if (positions) positions[j] = p;
  }
}

void PackedSamples::sample(int64_t i, int64_t* ids, int64_t* labels, int64_t* positions) const {
  FT_CHECK(i >= 0 && i < num_samples_, ErrorKind::Internal,
           file_->path() << ": sample " << i << " is outside [0, " << num_samples_ << ")");
  if (packing_ == Packing::Documents) return document_sample(i, ids, labels, positions);
  if (positions)
    for (int64_t j = 0; j < seq_len_; ++j) positions[j] = j;
  const TokenFile& f = *file_;
  const int64_t begin = i * seq_len_;
  int64_t d = f.doc_of(begin);
  int64_t next = f.doc_begin(d + 1);  // where the next document starts
  for (int64_t j = 0; j < seq_len_; ++j) {
    const int64_t t = begin + j;
    if (t == next) next = f.doc_begin(++d + 1);  // documents are never empty: one step suffices
    f.check_token(t, d);
    const int64_t id = f.tokens()[t];
    const bool masked = f.masked() && f.mask()[t] == 0;
    // A document's first token joined to an earlier one is not predicted from it (as in pack()).
    const bool joined = j > 0 && t == f.doc_begin(d);
    ids[j] = id;
    labels[j] = masked || joined ? -100 : id;
  }
}

Sample PackedSamples::sample(int64_t i) const {
  Sample s;
  s.ids.resize(size_t(seq_len_));
  s.labels.resize(size_t(seq_len_));
  sample(i, s.ids.data(), s.labels.data());
  return s;
}

GlobalSampler::GlobalSampler(int64_t num_samples, uint64_t seed) : n_(num_samples), seed_(seed) {
  FT_CHECK_ARG(num_samples > 0, "the data set is empty");
}

const std::vector<int64_t>& GlobalSampler::order(int64_t epoch) const {
  if (epoch == cached_epoch_) return cached_order_;
  std::vector<int64_t>& idx = cached_order_;
  idx.resize(static_cast<size_t>(n_));
  for (int64_t i = 0; i < n_; ++i) idx[size_t(i)] = i;
  std::mt19937_64 rng(seed_ * 1000003ull + uint64_t(epoch));
  for (int64_t i = n_ - 1; i > 0; --i) {  // Fisher-Yates with a fixed generator: the same everywhere
    int64_t j = int64_t(rng() % uint64_t(i + 1));
    std::swap(idx[size_t(i)], idx[size_t(j)]);
  }
  cached_epoch_ = epoch;
  return idx;
}

int64_t GlobalSampler::position(int64_t step, int64_t global_batch) const {
  return base_position_ + (step - base_step_) * global_batch;
}

void GlobalSampler::resume_at(int64_t step, int64_t position) {
  FT_CHECK_ARG(step >= 0 && position >= 0, "sampler: resuming at step " << step << ", sample " << position);
  base_step_ = step, base_position_ = position;
}

std::vector<int64_t> GlobalSampler::step_samples(int64_t step, int64_t global_batch, int rank, int world) const {
  FT_CHECK_ARG(global_batch % world == 0, "the global batch (" << global_batch << " sequences) must be a multiple of the "
                                                               << world << " data-parallel ranks");
  const int64_t share = global_batch / world;
  std::vector<int64_t> out;
  for (int64_t k = 0; k < share; ++k) {
    const int64_t global = position(step, global_batch) + rank * share + k;  // position in the endless stream
    const int64_t epoch = global / n_;
    out.push_back(order(epoch)[size_t(global % n_)]);
  }
  return out;
}

}  // namespace ftdist::data
