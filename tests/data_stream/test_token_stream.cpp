// Streaming data: the mapped token file, samples cut on demand, the streaming writer, the
// tokenized cache, and how much of a big file becomes resident.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <algorithm>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "expect_error.h"
#include "ftdist/core/text_file.h"
#include "ftdist/data/packing.h"
#include "ftdist/data/token_cache.h"
#include "ftdist/data/token_file.h"

using namespace ftdist;

namespace {

// A fresh, empty directory under the test tmp.
std::string fresh_dir(const std::string& name) {
  const std::string dir = std::string(FTDIST_TEST_TMP) + "/data_stream/" + name;
  remove_tree(dir, "test");
  make_directories(dir, "test");
  return dir;
}

std::string write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  return path;
}

data::Document doc(std::vector<int64_t> ids, std::vector<int64_t> labels, int64_t line) {
  return data::Document{std::move(ids), std::move(labels), line};
}

// Random documents: lengths 1..max_len (many of 1), ids below vocab, some tokens masked (-100).
std::vector<data::Document> random_docs(std::mt19937_64& rng, int n, int max_len, int64_t vocab, bool masks) {
  std::vector<data::Document> docs;
  for (int i = 0; i < n; ++i) {
    const int len = rng() % 4 == 0 ? 1 : 1 + int(rng() % uint64_t(max_len));
    data::Document d;
    d.line = i + 1;
    for (int t = 0; t < len; ++t) {
      d.ids.push_back(int64_t(rng() % uint64_t(vocab)));
      d.labels.push_back(masks && rng() % 3 == 0 ? -100 : d.ids.back());
    }
    docs.push_back(std::move(d));
  }
  return docs;
}

// The .ftok format, encoded independently of the library (byte by byte, little-endian).
template <typename T>
void le(std::string& out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(char((uint64_t(v) >> (8 * i)) & 0xff));
}

std::string encode_ftok(const std::vector<data::Document>& docs, uint32_t vocab) {
  uint64_t tokens = 0;
  bool masked = false;
  for (const auto& d : docs) {
    tokens += d.ids.size();
    for (int64_t l : d.labels) masked = masked || l == -100;
  }
  std::string out = "FTDTOK01";
  le<uint32_t>(out, 1);
  le<uint32_t>(out, vocab);
  le<uint64_t>(out, docs.size());
  le<uint64_t>(out, tokens);
  le<uint32_t>(out, masked ? 1 : 0);
  le<uint32_t>(out, 0);
  uint64_t at = 0;
  le<uint64_t>(out, 0);
  for (const auto& d : docs) le<uint64_t>(out, at += d.ids.size());
  for (const auto& d : docs)
    for (int64_t t : d.ids) le<uint32_t>(out, uint32_t(t));
  if (masked)
    for (const auto& d : docs)
      for (int64_t l : d.labels) out.push_back(l == -100 ? 0 : 1);
  return out;
}

void expect_samples_equal_pack(const data::PackedSamples& packed, const std::vector<data::Document>& docs,
                               int64_t seq_len) {
  const std::vector<data::Sample> want = data::pack(docs, seq_len);
  ASSERT_EQ(packed.num_samples(), int64_t(want.size())) << "seq_len " << seq_len;
  std::vector<int64_t> ids(static_cast<size_t>(seq_len)), labels(static_cast<size_t>(seq_len));
  for (int64_t i = 0; i < packed.num_samples(); ++i) {
    packed.sample(i, ids.data(), labels.data());
    ASSERT_EQ(ids, want[size_t(i)].ids) << "seq_len " << seq_len << ", sample " << i;
    ASSERT_EQ(labels, want[size_t(i)].labels) << "seq_len " << seq_len << ", sample " << i;
  }
}

std::shared_ptr<const data::TokenFile> open(const std::string& path, int64_t vocab) {
  return std::make_shared<const data::TokenFile>(path, vocab);
}

// ---- PackedSamples ----------------------------------------------------------------------------------

TEST(PackedSamples, EqualPackOverRandomDocuments) {
  const std::string dir = fresh_dir("equal_pack");
  std::mt19937_64 rng(7);
  for (bool masks : {false, true}) {
    const std::vector<data::Document> docs = random_docs(rng, 300, 40, 1000, masks);
    const std::string path = dir + (masks ? "/masked.ftok" : "/plain.ftok");
    data::write_token_file(path, docs, 1000);
    const auto file = open(path, 1000);
    ASSERT_EQ(file->masked(), masks);
    const int64_t total = file->num_tokens();
    int64_t divisor = 64;  // the largest seq_len <= 64 that divides T
    while (total % divisor != 0) --divisor;
    for (int64_t seq_len : {int64_t(2), int64_t(3), int64_t(7), int64_t(16), int64_t(61), divisor, total / 2, total})
      expect_samples_equal_pack(data::PackedSamples(file, seq_len), docs, seq_len);
  }
}

TEST(PackedSamples, JoinsAndMasksOnAHandMadeCase) {
  const std::string path = fresh_dir("hand") + "/hand.ftok";
  // Stream: [1 2 3] [4] [5 6] [7 8 9 10]; seq_len 3 -> [1 2 3] [4 5 6] [7 8 9] (10 dropped).
  data::write_token_file(path, {doc({1, 2, 3}, {1, -100, 3}, 1), doc({4}, {4}, 2), doc({5, 6}, {5, 6}, 3),
                                doc({7, 8, 9, 10}, {7, 8, 9, 10}, 4)}, 20);
  const data::PackedSamples packed(open(path, 20), 3);
  ASSERT_EQ(packed.num_samples(), 3);
  EXPECT_EQ(packed.sample(0).labels, (std::vector<int64_t>{1, -100, 3}));
  EXPECT_EQ(packed.sample(1).ids, (std::vector<int64_t>{4, 5, 6}));
  EXPECT_EQ(packed.sample(1).labels, (std::vector<int64_t>{4, -100, 6}));  // 4 starts the sample: predicted
  EXPECT_EQ(packed.sample(2).labels, (std::vector<int64_t>{7, 8, 9}));
  expect_bad_input([&] { (void)data::PackedSamples(open(path, 20), 11); },
                   "hand.ftok: the data holds fewer than seq_len = 11 tokens");
}

// Packing::Documents over random documents: every example placed whole exactly once (truncated to
// seq_len when longer), in one sample; positions restart at 0 per example; the first token of an
// example after another is not a target; the rest is padding (label -100); the efficiency and the
// counts match; drop leaves the long ones out.
TEST(PackedSamples, DocumentsPlaceEveryExampleWholeOnce) {
  const std::string dir = fresh_dir("documents");
  std::mt19937_64 rng(9);
  std::vector<data::Document> docs = random_docs(rng, 200, 40, 1000, true);
  for (data::Document& d : docs)  // (id 0 is the padding's: keep the examples' apart from it)
    for (size_t k = 0; k < d.ids.size(); ++k)
      if (d.ids[k] == 0) d.ids[k] = 1, d.labels[k] = d.labels[k] == -100 ? -100 : 1;
  data::write_token_file(dir + "/d.ftok", docs, 1000);
  const auto file = open(dir + "/d.ftok", 1000);
  for (data::LongExamples policy : {data::LongExamples::Truncate, data::LongExamples::Drop}) {
    const int64_t seq = 24;
    SCOPED_TRACE(data::long_examples_name(policy));
    const data::PackedSamples packed(file, seq, data::Packing::Documents, policy);
    std::vector<int64_t> ids(seq), labels(seq), pos(seq);
    std::map<std::vector<int64_t>, int> seen;  // each example's ids, as found in the samples
    int64_t used = 0;
    for (int64_t i = 0; i < packed.num_samples(); ++i) {
      packed.sample(i, ids.data(), labels.data(), pos.data());
      for (int64_t j = 0; j < seq;) {
        ASSERT_EQ(pos[size_t(j)], 0) << "sample " << i << ": an example starts at position 0";
        int64_t n = 1;
        while (j + n < seq && pos[size_t(j + n)] == n) ++n;
        const bool padding = std::all_of(labels.begin() + j, labels.begin() + j + n, [](int64_t l) { return l == -100; }) &&
                             std::all_of(ids.begin() + j, ids.begin() + j + n, [](int64_t t) { return t == 0; });
        if (!padding) {
          ++seen[std::vector<int64_t>(ids.begin() + j, ids.begin() + j + n)];
          used += n;
          if (j > 0) {
            EXPECT_EQ(labels[size_t(j)], -100) << "sample " << i << ": not predicted from the example before";
          }
        }
        j += n;
      }
    }
    int64_t expected_truncated = 0, expected_dropped = 0, expected_untrained = 0;
    std::map<std::vector<int64_t>, int> want;
    for (const data::Document& d : docs) {
      if (int64_t(d.ids.size()) > seq) {
        if (policy == data::LongExamples::Drop) {
          ++expected_dropped;
          continue;
        }
        if (std::all_of(d.labels.begin() + 1, d.labels.begin() + seq, [](int64_t l) { return l == -100; })) {
          ++expected_untrained;  // nothing trained within seq: left out
          continue;
        }
        ++expected_truncated;
        ++want[std::vector<int64_t>(d.ids.begin(), d.ids.begin() + seq)];
      } else {
        ++want[d.ids];
      }
    }
    EXPECT_EQ(seen, want);
    const data::PackingStats& st = packed.stats();
    EXPECT_EQ(st.tokens, used);
    EXPECT_EQ(st.slots, packed.num_samples() * seq);
    EXPECT_EQ(st.truncated, expected_truncated);
    EXPECT_EQ(st.dropped, expected_dropped);
    EXPECT_EQ(st.untrained, expected_untrained);
    EXPECT_GT(st.efficiency(), 0.9) << "best-fit decreasing over many short examples packs tightly";
  }
}

// A prompt longer than seq_len: truncating the example would keep none of its trained tokens, so it
// is left out (counted) instead of filling sequences that teach nothing; an example truncated with
// a trained token kept stays; unmasked data keeps every example.
TEST(PackedSamples, TruncatedExamplesWithoutATrainedTokenAreLeftOut) {
  const std::string dir = fresh_dir("untrained");
  auto doc = [](int64_t n, int64_t trained_from) {
    data::Document d;
    for (int64_t k = 0; k < n; ++k) d.ids.push_back(k + 1), d.labels.push_back(k >= trained_from ? k + 1 : -100);
    return d;
  };
  // (10 tokens, trained from 8): left out at seq 6; (10, trained from 5): kept, truncated; short ones kept.
  data::write_token_file(dir + "/m.ftok", {doc(10, 8), doc(10, 5), doc(4, 2), doc(3, 1)}, 100);
  const data::PackedSamples packed(open(dir + "/m.ftok", 100), 6, data::Packing::Documents);
  const data::PackingStats& st = packed.stats();
  EXPECT_EQ(st.untrained, 1);
  EXPECT_EQ(st.truncated, 1);
  EXPECT_EQ(st.tokens, 6 + 4 + 3);
  for (int64_t i = 0; i < packed.num_samples(); ++i) {
    const data::Sample s = packed.sample(i);
    EXPECT_TRUE(std::any_of(s.labels.begin() + 1, s.labels.end(), [](int64_t l) { return l != -100; })) << "sample " << i;
  }
  // Only such examples: an error naming the file and why.
  data::write_token_file(dir + "/all.ftok", {doc(10, 8), doc(12, 9)}, 100);
  expect_bad_input([&] { (void)data::PackedSamples(open(dir + "/all.ftok", 100), 6, data::Packing::Documents); },
                   "all.ftok: no example fits seq_len = 6 (all 2 are longer, their trained tokens beyond it)");
  // Unmasked: every example trains, none left out.
  std::vector<data::Document> plain = {doc(10, 0), doc(4, 0)};
  data::write_token_file(dir + "/p.ftok", plain, 100);
  EXPECT_EQ(data::PackedSamples(open(dir + "/p.ftok", 100), 6, data::Packing::Documents).stats().untrained, 0);
}

TEST(PackedSamples, DocumentsOnAHandMadeCase) {
  const std::string path = fresh_dir("documents_hand") + "/hand.ftok";
  // Examples of 3, 1, 2 and 4 tokens into samples of 4: [4-token] [3 + 1] [2 + padding 2].
  data::write_token_file(path, {doc({1, 2, 3}, {-100, 2, 3}, 1), doc({4}, {4}, 2), doc({5, 6}, {5, 6}, 3),
                                doc({7, 8, 9, 10}, {7, 8, 9, 10}, 4)}, 20);
  const data::PackedSamples packed(open(path, 20), 4, data::Packing::Documents);
  ASSERT_EQ(packed.num_samples(), 3);
  std::vector<int64_t> ids(4), labels(4), pos(4);
  packed.sample(0, ids.data(), labels.data(), pos.data());
  EXPECT_EQ(ids, (std::vector<int64_t>{7, 8, 9, 10}));
  EXPECT_EQ(pos, (std::vector<int64_t>{0, 1, 2, 3}));
  packed.sample(1, ids.data(), labels.data(), pos.data());
  EXPECT_EQ(ids, (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(labels, (std::vector<int64_t>{-100, 2, 3, -100}));
  EXPECT_EQ(pos, (std::vector<int64_t>{0, 1, 2, 0}));
  packed.sample(2, ids.data(), labels.data(), pos.data());
  EXPECT_EQ(ids, (std::vector<int64_t>{5, 6, 0, 0}));
  EXPECT_EQ(labels, (std::vector<int64_t>{5, 6, -100, -100}));
  EXPECT_EQ(pos, (std::vector<int64_t>{0, 1, 0, 1}));
  EXPECT_DOUBLE_EQ(packed.stats().efficiency(), 10.0 / 12.0);
  EXPECT_EQ(data::PackedSamples(open(path, 20), 2, data::Packing::Documents, data::LongExamples::Drop).stats().dropped, 2);
  const std::string long_only = fresh_dir("documents_long") + "/long.ftok";
  data::write_token_file(long_only, {doc({1, 2, 3}, {1, 2, 3}, 1), doc({7, 8, 9, 10}, {7, 8, 9, 10}, 2)}, 20);
  expect_bad_input([&] { (void)data::PackedSamples(open(long_only, 20), 2, data::Packing::Documents, data::LongExamples::Drop); },
                   "long.ftok: no example fits seq_len = 2");
}

// ---- validation -----------------------------------------------------------------------------------

TEST(TokenFile, TokenOutsideTheVocabularyIsReportedWhenItsSampleIsCut) {
  const std::string path = fresh_dir("vocab") + "/vocab.ftok";
  // Documents of 4 tokens; document 2's token at position 3 is stream token 11.
  std::vector<data::Document> docs;
  for (int d = 0; d < 4; ++d) docs.push_back(doc({1, 2, 3, 4}, {1, 2, 3, 4}, d + 1));
  std::string bytes = encode_ftok(docs, 50);
  bytes[40 + 8 * 5 + 4 * 11] = char(60);
  write(path, bytes);
  const data::PackedSamples packed(open(path, 64), 4);  // opening reads no token: it succeeds
  EXPECT_NO_THROW(packed.sample(0));
  EXPECT_NO_THROW(packed.sample(3));
  expect_bad_input([&] { packed.sample(2); },
                   path + ": token 60 (document 2) at position 3 of the document is outside the vocabulary [0, 50)");
  expect_bad_input([&] { data::read_token_file(path, 50); }, "token 60 (document 2)");
  expect_bad_input([&] { open(path, 45); }, path + ": written for a vocabulary of 50, the model has 45");
}

// The scan a run makes before its first step: the first bad position of a range, -1 for a clean one,
// across the 16 MiB pieces it hands back as it goes (the bad token in the second piece).
TEST(TokenFile, ScanFindsTheFirstTokenOutsideTheVocabulary) {
  const std::string path = fresh_dir("scan") + "/scan.ftok";
  const int64_t n = (int64_t(1) << 22) + 1000;  // one piece and then some
  std::string bytes = encode_ftok({doc(std::vector<int64_t>(size_t(n), 7), std::vector<int64_t>(size_t(n), 7), 1)}, 50);
  const size_t tokens_at = 40 + 8 * 2;
  for (int64_t bad : {(int64_t(1) << 22) + 500, (int64_t(1) << 22) + 900}) bytes[tokens_at + size_t(4 * bad)] = char(60);
  bytes[tokens_at + 4 * 3 + 1] = char(1);  // token 3: 7 + 256, also outside
  write(path, bytes);
  const auto file = open(path, 50);
  EXPECT_EQ(file->first_token_out_of_vocab(0, n), 3);
  EXPECT_EQ(file->first_token_out_of_vocab(4, n), (int64_t(1) << 22) + 500);
  EXPECT_EQ(file->first_token_out_of_vocab((int64_t(1) << 22) + 501, n), (int64_t(1) << 22) + 900);
  EXPECT_EQ(file->first_token_out_of_vocab(4, (int64_t(1) << 22) + 500), -1);
  EXPECT_EQ(file->first_token_out_of_vocab(n, n), -1);
  EXPECT_EQ(file->tokens()[(int64_t(1) << 22) + 10], 7u);  // pages handed back read again
  expect_bad_input([&] { file->check_token(3, file->doc_of(3)); }, "token 263 (document 0) at position 3 of the document");
}

TEST(TokenFile, MalformedFilesFailAtOpenNamingTheFile) {
  const std::string dir = fresh_dir("malformed");
  const std::vector<data::Document> docs = {doc({1, 2, 3}, {1, 2, 3}, 1), doc({4, 5}, {4, 5}, 2),
                                            doc({6}, {6}, 3)};
  const std::string good = encode_ftok(docs, 50);
  const auto with_offsets = [&](std::vector<uint64_t> offsets) {  // D + 1 = 4 of them
    std::string b = good;
    for (size_t k = 0; k < offsets.size(); ++k)
      for (size_t i = 0; i < 8; ++i) b[40 + 8 * k + i] = char((offsets[k] >> (8 * i)) & 0xff);
    return b;
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {good.substr(0, good.size() - 3), "(truncated or corrupt)"},
      {good + "x", "(truncated or corrupt)"},
      {"", "bad magic or shorter than the 40-byte header"},
      {"NOTATOKENFILE-------------------------------------------", "bad magic"},
      {with_offsets({1, 3, 5, 6}), "the first document offset must be 0"},
      {with_offsets({0, 3, 2, 6}), "document 1 has offsets 3..2 outside the 6 tokens"},
      {with_offsets({0, 3, 3, 6}), "document 1 is empty"},
      {with_offsets({0, 2, 4, 5}), "the last document offset must be the token count 6"},
      {with_offsets({0, 3, 5, 9}), "document 2 has offsets 5..9 outside the 6 tokens"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = write(dir + "/bad" + std::to_string(i) + ".ftok", cases[i].first);
    expect_bad_input([&] { open(path, 50); }, path + ": ");
    expect_bad_input([&] { open(path, 50); }, cases[i].second);
  }
  expect_bad_input([&] { open(dir + "/missing.ftok", 50); }, dir + "/missing.ftok: cannot read");
  EXPECT_NO_THROW(open(write(dir + "/good.ftok", good), 50));
}

TEST(TokenFile, MovesAndReleasesPages) {
  const std::string path = fresh_dir("move") + "/move.ftok";
  data::write_token_file(path, {doc({3, 4, 5}, {3, 4, 5}, 1), doc({6}, {-100}, 2)}, 10);
  data::TokenFile a(path, 10);
  data::TokenFile b(std::move(a));
  EXPECT_EQ(a.num_tokens(), 0);
  ASSERT_EQ(b.num_documents(), 2);
  b.release_pages();
  EXPECT_EQ(b.tokens()[3], 6u);
  EXPECT_EQ(b.mask()[3], 0);
  EXPECT_EQ(b.doc_of(2), 0);
  EXPECT_EQ(b.doc_of(3), 1);
  a = std::move(b);
  EXPECT_EQ(a.doc_size(0), 3);
}

// A token file is named by its suffix, in any case (data.train = "DATA.FTOK" is not read as JSONL).
TEST(TokenFile, TheSuffixNamesATokenFileInAnyCase) {
  EXPECT_TRUE(data::is_token_file_path("d/train.ftok"));
  EXPECT_TRUE(data::is_token_file_path("d/TRAIN.FTOK"));
  EXPECT_FALSE(data::is_token_file_path("d/train.jsonl"));
  EXPECT_FALSE(data::is_token_file_path("ftok"));
}

// The prediction targets of a range: masked tokens and each document's first token do not count.
TEST(TokenFile, TrainedTargetsLeaveOutMaskedAndFirstTokens) {
  const std::string dir = fresh_dir("targets");
  const std::string plain = dir + "/plain.ftok", masked = dir + "/masked.ftok";
  data::write_token_file(plain, {doc({1, 2, 3}, {1, 2, 3}, 1), doc({4, 5}, {4, 5}, 2)}, 10);
  data::write_token_file(masked, {doc({1, 2, 3}, {1, -100, 3}, 1), doc({4, 5}, {-100, -100}, 2), doc({6, 7}, {6, 7}, 3)}, 10);
  const data::TokenFile p(plain, 10), m(masked, 10);
  EXPECT_EQ(p.trained_targets(0, 5), 3);  // 5 tokens, 2 documents
  EXPECT_EQ(p.trained_targets(1, 4), 2);  // tokens 2, 3 (document 2 starts at 3)
  EXPECT_EQ(m.trained_targets(0, 7), 2);  // token 3 of document 1, token 7 of document 3
  EXPECT_EQ(m.trained_targets(3, 5), 0);
  EXPECT_EQ(m.trained_targets(2, 2), 0);
}

// A token file truncated on disk while it is mapped: reading past its new end is not a silent
// SIGBUS but a message naming the file, and exit code 2 (core/mapped_file.h).
TEST(TokenFileDeathTest, TruncatedWhileMappedNamesTheFile) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string path = fresh_dir("truncated") + "/shrinks.ftok";
  std::vector<data::Document> docs;
  for (int i = 0; i < 64; ++i) docs.push_back(doc(std::vector<int64_t>(256, 7), std::vector<int64_t>(256, 7), i + 1));
  data::write_token_file(path, docs, 10);
  EXPECT_EXIT(
      {
        data::TokenFile f(path, 10);
        ASSERT_EQ(::truncate(path.c_str(), 4096), 0);
        volatile uint32_t last = f.tokens()[f.num_tokens() - 1];  // beyond the file's new end
        (void)last;
        std::exit(0);
      },
      ::testing::ExitedWithCode(2), "'.*shrinks.ftok' changed on disk while it was being read \\(SIGBUS at byte [0-9]+ of the [0-9]+");
}

// ---- the writer -----------------------------------------------------------------------------------

TEST(TokenFileWriter, ByteIdenticalToTheFormat) {
  const std::string dir = fresh_dir("identical");
  std::mt19937_64 rng(11);
  std::vector<std::vector<data::Document>> sets = {random_docs(rng, 50, 30, 300, false),
                                                   random_docs(rng, 50, 30, 300, true)};
  // The first masked token after more than 64 Ki unmasked ones (the mask is filled in late).
  std::vector<data::Document> late = {doc(std::vector<int64_t>(70000, 7), std::vector<int64_t>(70000, 7), 1),
                                      doc({1, 2}, {-100, 2}, 2)};
  sets.push_back(late);
  for (size_t s = 0; s < sets.size(); ++s) {
    const std::string a = dir + "/whole" + std::to_string(s) + ".ftok";
    const std::string b = dir + "/stream" + std::to_string(s) + ".ftok";
    data::write_token_file(a, sets[s], 300);
    data::TokenFileWriter w(b, 300);
    for (const auto& d : sets[s]) w.add(d);
    w.finish();
    const std::string want = encode_ftok(sets[s], 300);
    EXPECT_EQ(read_text_file(a, "test"), want) << "set " << s;
    EXPECT_EQ(read_text_file(b, "test"), want) << "set " << s;
    const auto back = data::read_token_file(b, 300);
    ASSERT_EQ(back.size(), sets[s].size());
    for (size_t d = 0; d < back.size(); ++d) EXPECT_EQ(back[d].labels, sets[s][d].labels);
  }
  EXPECT_EQ(list_directory(dir).size(), 2 * sets.size());  // no temporary files left
}

TEST(TokenFileWriter, AnExceptionBeforeFinishLeavesNothing) {
  const std::string dir = fresh_dir("abort");
  const std::string path = dir + "/out.ftok";
  expect_bad_input(
      [&] {
        data::TokenFileWriter w(path, 50);
        w.add(doc({1, 2}, {1, -100}, 1));
        w.add(doc({3, 70}, {3, 70}, 2));
      },
      path + ":2: token 70 is outside the vocabulary [0, 50)");
  EXPECT_EQ(list_directory(dir), std::vector<std::string>{});
  // Labels that are not a mask over the ids (shifted, say) would train on other targets.
  expect_bad_input(
      [&] {
        data::TokenFileWriter w(path, 50);
        w.add(doc({1, 2, 3}, {-100, 2, 4}, 7), "given.jsonl");
      },
      "given.jsonl:7: \"labels\" differ from \"input_ids\" at position 2 (label 4, id 3)");
  EXPECT_EQ(list_directory(dir), std::vector<std::string>{});
  expect_bad_input([&] { data::write_token_file(path, {doc({1}, {1}, 1), doc({}, {}, 5)}, 50); },
                   path + ":5: the document is empty");
  EXPECT_EQ(list_directory(dir), std::vector<std::string>{});
  // An existing file stays as it was when a rewrite fails.
  data::write_token_file(path, {doc({1}, {1}, 1)}, 50);
  const std::string before = read_text_file(path, "test");
  try {
    data::TokenFileWriter w(path, 50);
    w.add(doc({4, 5, 6}, {4, 5, 6}, 1));
    throw std::runtime_error("stop");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(list_directory(dir), std::vector<std::string>{"out.ftok"});
  EXPECT_EQ(read_text_file(path, "test"), before);
}

// ---- the tokenized cache --------------------------------------------------------------------------

struct Stamp {
  ino_t inode;
  int64_t mtime_ns;
  bool operator==(const Stamp& o) const { return inode == o.inode && mtime_ns == o.mtime_ns; }
};

Stamp stamp_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return {st.st_ino, int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

void expect_cache_equals_jsonl(const std::string& ftok, const std::string& jsonl, int64_t seq_len) {
  const data::PackedSamples packed(open(ftok, 300), seq_len);
  expect_samples_equal_pack(packed, data::read_jsonl(jsonl, 300), seq_len);
}

const char* kCorpus = R"({"text": "hello there"}
{"input_ids": [5, 6, 7, 8], "labels": [-100, 6, 7, 8]}

{"prompt": "question", "completion": "answer"}
{"text": "a"}
)";

TEST(TokenizedCache, ReusedUntilTheInputChanges) {
  const std::string dir = fresh_dir("cache");
  const std::string jsonl = write(dir + "/train.jsonl", kCorpus);
  const std::string cache = dir + "/out/cache";
  EXPECT_FALSE(data::tokenized_cache_is_current({jsonl, "", 300}, cache));
  const std::string ftok = data::tokenized_cache({jsonl, "", 300}, nullptr, cache, "data.train");
  EXPECT_EQ(ftok, data::tokenized_cache_path({jsonl, "", 300}, cache));
  EXPECT_EQ(ftok.rfind(cache + "/train.", 0), 0u) << ftok;
  EXPECT_TRUE(data::tokenized_cache_is_current({jsonl, "", 300}, cache));
  expect_cache_equals_jsonl(ftok, jsonl, 5);
  expect_cache_equals_jsonl(ftok, jsonl, 2);

  const Stamp first = stamp_of(ftok);
  EXPECT_EQ(data::tokenized_cache({jsonl, "", 300}, nullptr, cache, "data.train"), ftok);
  EXPECT_TRUE(stamp_of(ftok) == first);  // reused, not rewritten

  // A new line (size and mtime change): tokenized again, and the samples follow the input.
  std::ofstream(jsonl, std::ios::app) << R"({"text": "one more document"})" << "\n";
  EXPECT_FALSE(data::tokenized_cache_is_current({jsonl, "", 300}, cache));
  EXPECT_EQ(data::tokenized_cache({jsonl, "", 300}, nullptr, cache, "data.train"), ftok);
  EXPECT_FALSE(stamp_of(ftok) == first);
  expect_cache_equals_jsonl(ftok, jsonl, 5);

  // The same size, another mtime: tokenized again.
  const Stamp second = stamp_of(ftok);
  struct timespec times[2] = {{0, UTIME_OMIT}, {1000000000, 123}};
  ASSERT_EQ(::utimensat(AT_FDCWD, jsonl.c_str(), times, 0), 0);
  EXPECT_FALSE(data::tokenized_cache_is_current({jsonl, "", 300}, cache));
  data::tokenized_cache({jsonl, "", 300}, nullptr, cache, "data.train");
  EXPECT_FALSE(stamp_of(ftok) == second);
  EXPECT_TRUE(data::tokenized_cache_is_current({jsonl, "", 300}, cache));

  // Edited with its size and mtime kept (as cp -p or rsync -t leave it): tokenized again.
  struct stat kept {};
  ASSERT_EQ(::stat(jsonl.c_str(), &kept), 0);
  std::string text = read_text_file(jsonl, "test");
  text[text.find("one more")] = 'O';
  { std::ofstream(jsonl, std::ios::trunc) << text; }
  const struct timespec same[2] = {kept.st_atim, kept.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, jsonl.c_str(), same, 0), 0);
  EXPECT_FALSE(data::tokenized_cache_is_current({jsonl, "", 300}, cache)) << "an edit with the size and mtime kept";
  data::tokenized_cache({jsonl, "", 300}, nullptr, cache, "data.train");
  expect_cache_equals_jsonl(ftok, jsonl, 5);

  // A fresh copy of the same bytes with the mtime kept (data staged to a node's disk each job, as
  // rsync -a does): another inode and ctime, the same content: reused, not tokenized again.
  const Stamp before_copy = stamp_of(ftok);
  ASSERT_EQ(::stat(jsonl.c_str(), &kept), 0);
  const std::string bytes = read_text_file(jsonl, "test");
  ASSERT_EQ(std::remove(jsonl.c_str()), 0);
  { std::ofstream(jsonl, std::ios::trunc) << bytes; }
  const struct timespec copied[2] = {kept.st_atim, kept.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, jsonl.c_str(), copied, 0), 0);
  EXPECT_TRUE(data::tokenized_cache_is_current({jsonl, "", 300}, cache)) << "a copy of the same bytes";
  bool reused = false;
  EXPECT_EQ(data::tokenized_cache({jsonl, "", 300}, nullptr, cache, "data.train", {}, {}, &reused), ftok);
  EXPECT_TRUE(reused);
  EXPECT_TRUE(stamp_of(ftok) == before_copy) << "reused, not rewritten";
  struct stat copy_stat {};
  ASSERT_EQ(::stat(jsonl.c_str(), &copy_stat), 0);
  const nlohmann::json side = nlohmann::json::parse(read_text_file(ftok + ".json", "test"));
  EXPECT_EQ(side["input_identity"]["inode"].get<uint64_t>(), uint64_t(copy_stat.st_ino)) << "the copy is recorded as the input";

  // Another vocabulary is another key.
  EXPECT_FALSE(data::tokenized_cache_is_current({jsonl, "", 301}, cache));
}

TEST(TokenizedCache, NeverReusesAnUnfinishedWriteAndKeepsInputsApart) {
  const std::string dir = fresh_dir("cache2");
  const std::string train = write(dir + "/data.jsonl", kCorpus);
  make_directories(dir + "/eval", "test");
  const std::string eval = write(dir + "/eval/data.jsonl", R"({"text": "something else"})" "\n");
  const std::string cache = dir + "/cache";
  const std::string a = data::tokenized_cache({train, "", 300}, nullptr, cache, "data.train");
  const std::string b = data::tokenized_cache({eval, "", 300}, nullptr, cache, "data.eval");
  EXPECT_NE(a, b);  // the same name, different inputs
  expect_cache_equals_jsonl(a, train, 3);
  expect_cache_equals_jsonl(b, eval, 3);
  // A write killed before its sidecar: not current.
  std::remove((a + ".json").c_str());
  EXPECT_FALSE(data::tokenized_cache_is_current({train, "", 300}, cache));
  data::tokenized_cache({train, "", 300}, nullptr, cache, "data.train");
  EXPECT_TRUE(data::tokenized_cache_is_current({train, "", 300}, cache));
  // A damaged token file: not current.
  ASSERT_EQ(::truncate(a.c_str(), 10), 0);
  EXPECT_FALSE(data::tokenized_cache_is_current({train, "", 300}, cache));
  expect_cache_equals_jsonl(data::tokenized_cache({train, "", 300}, nullptr, cache, "data.train"), train, 3);
}

TEST(TokenizedCache, RefusesWhatTheFileCannotHoldAndNamesTheLine) {
  const std::string dir = fresh_dir("cache3");
  const std::string jsonl =
      write(dir + "/shifted.jsonl", "{\"text\": \"x\"}\n{\"input_ids\": [1, 2], \"labels\": [2, 3]}\n");
  expect_bad_input([&] { data::tokenized_cache({jsonl, "", 300}, nullptr, dir + "/c", "data.train"); },
                   "shifted.jsonl:2: \"labels\" differ from \"input_ids\" at position 0");
  EXPECT_EQ(list_directory(dir + "/c"), std::vector<std::string>{});
  const std::string bad = write(dir + "/bad.jsonl", "{\"text\": \"x\"}\n{\"text\": \n");
  expect_bad_input([&] { data::tokenized_cache({bad, "", 300}, nullptr, dir + "/c", "data.train"); },
                   "bad.jsonl:2: not valid JSON");
  expect_bad_input([&] { data::tokenized_cache({dir + "/none.jsonl", "", 300}, nullptr, dir + "/c", "data.train"); },
                   "data.train: cannot read");
}

// ---- streaming JSONL ------------------------------------------------------------------------------

TEST(Jsonl, ForEachSeesWhatReadJsonlReturns) {
  const std::string path = write(fresh_dir("jsonl") + "/docs.jsonl", kCorpus);
  std::vector<data::Document> seen;
  const size_t n = data::for_each_jsonl_document(path, 300, "data", nullptr,
                                                 [&](data::Document&& d) { seen.push_back(std::move(d)); });
  const auto all = data::read_jsonl(path, 300);
  ASSERT_EQ(n, all.size());
  ASSERT_EQ(seen.size(), all.size());
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(seen[i].ids, all[i].ids);
    EXPECT_EQ(seen[i].labels, all[i].labels);
    EXPECT_EQ(seen[i].line, all[i].line);
  }
  EXPECT_EQ(seen[2].line, 4);
}

// A pipe reads like a file (no size for the progress bar); a directory is named as one.
TEST(Jsonl, PipesReadAndDirectoriesAreNamed) {
  const std::string dir = fresh_dir("jsonl_pipe");
  const std::string fifo = dir + "/docs.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::thread writer([&] { std::ofstream(fifo) << kCorpus; });
  uint64_t last_total = 1;
  std::vector<data::Document> seen;
  const size_t n = data::for_each_jsonl_document(
      fifo, 300, "--input", nullptr, [&](data::Document&& d) { seen.push_back(std::move(d)); },
      [&](uint64_t, uint64_t total, size_t) { last_total = total; });
  writer.join();
  EXPECT_EQ(n, data::read_jsonl(write(dir + "/docs.jsonl", kCorpus), 300).size());
  EXPECT_EQ(last_total, 0u);
  expect_bad_input([&] { data::read_jsonl(dir, 300, "--input"); }, "--input: '" + dir + "' is a directory (expected a JSONL file)");
}

// A token file's header: flags, the reserved field and the vocabulary as this version writes them;
// impossible counts named as such (not as a size comparison of wrapped numbers).
TEST(TokenFile, HeaderFieldsAreChecked) {
  const std::string path = fresh_dir("ftok_header") + "/ok.ftok";
  data::write_token_file(path, {{{1, 2, 3}, {1, 2, 3}, 1}}, 50);
  const std::string bytes = read_text_file(path, "test");
  auto with = [&](size_t at, const std::string& field) {
    std::string b = bytes;
    b.replace(at, field.size(), field);
    return write(path + ".bad", b);
  };
  EXPECT_NO_THROW(data::TokenFile(path, 50));
  expect_bad_input([&] { data::TokenFile(with(32, std::string("\x02\0\0\0", 4)), 50); }, "header flags 2 and reserved field 0");
  expect_bad_input([&] { data::TokenFile(with(36, std::string("\x01\0\0\0", 4)), 50); }, "reserved field 1 are not this version's");
  expect_bad_input([&] { data::TokenFile(with(12, std::string(4, '\0')), 50); }, "the header's vocabulary size is 0");
  expect_bad_input([&] { data::TokenFile(with(16, std::string(8, '\xff')), 50); }, "documents and 3 tokens: corrupt");
}

// ---- residency ------------------------------------------------------------------------------------

uint64_t rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // "VmRSS:  1234 kB"
  ADD_FAILURE() << "no VmRSS in /proc/self/status";
  return 0;
}

TEST(Residency, CuttingSamplesFromA2GBFileKeepsItOnDisk) {
  const std::string path = fresh_dir("sparse") + "/big.ftok";
  const uint64_t tokens = 1ull << 29;  // 2 GiB of token ids, one document of zeros
  std::string head = "FTDTOK01";
  le<uint32_t>(head, 1);
  le<uint32_t>(head, 258);
  le<uint64_t>(head, 1);
  le<uint64_t>(head, tokens);
  le<uint32_t>(head, 0);
  le<uint32_t>(head, 0);
  le<uint64_t>(head, 0);
  le<uint64_t>(head, tokens);
  write(path, head);
  const uint64_t size = head.size() + 4 * tokens;
  ASSERT_EQ(::truncate(path.c_str(), off_t(size)), 0);  // a hole: no disk blocks

  const uint64_t before = rss_bytes();
  {
    const data::PackedSamples packed(open(path, 258), 512);
    ASSERT_EQ(packed.num_samples(), int64_t(tokens / 512));
    std::vector<int64_t> ids(512), labels(512);
    const int64_t stride = packed.num_samples() / 160;
    for (int round = 0; round < 10; ++round)
      for (int k = 0; k < 16; ++k) {
        packed.sample((round * 16 + k) * stride + round, ids.data(), labels.data());
        ASSERT_EQ(ids, std::vector<int64_t>(512, 0));
      }
    const uint64_t after = rss_bytes();
    EXPECT_LT(after - std::min(after, before), size / 20)
        << "resident before " << before << " B, after " << after << " B, file " << size << " B";
  }
  std::remove(path.c_str());
}

}  // namespace
