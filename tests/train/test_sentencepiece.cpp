// SentencePiece text data: a BPE model trained here on the bundled corpus tokenizes JSONL "text"
// and "prompt"/"completion" documents through data.tokenizer; the ids decode back to the text, BOS
// and EOS frame each document, the prompt's labels are masked, and a too-small model vocabulary or
// a missing/garbage model file is an error naming the key.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "../expect_error.h"
#include "ftdist/comm/communicator.h"
#include "ftdist/core/check.h"
#include "ftdist/core/text_file.h"
#include "ftdist/data/chat_format.h"
#include "ftdist/data/token_cache.h"
#include "ftdist/data/token_file.h"
#include "ftdist/data/documents.h"
#include "ftdist/data/tokenizer.h"
#include "ftdist/train/resolve.h"

using namespace ftdist;

namespace {

const std::string kDir = std::string(FTDIST_TEST_TMP) + "/spm";

// The bundled corpus's texts, a line each: what the test tokenizers are trained on.
void write_corpus_text(const std::string& path) {
  std::ifstream in(std::string(FTDIST_SOURCE_DIR) + "/examples/tiny/corpus.jsonl");
  std::ofstream txt(path);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) txt << nlohmann::json::parse(line)["text"].get<std::string>() << "\n";
}

const std::string& model_path() {
  static const std::string path = [] {
    make_directories(kDir, "test");
    write_corpus_text(kDir + "/corpus.txt");
    const auto status = sentencepiece::SentencePieceTrainer::Train(
        "--input=" + kDir + "/corpus.txt --model_prefix=" + kDir + "/tok --vocab_size=300 --model_type=bpe "
        "--bos_id=1 --eos_id=2 --unk_id=0 --pad_id=-1 --minloglevel=2");
    EXPECT_TRUE(status.ok()) << status.ToString();
    return kDir + "/tok.model";
  }();
  return path;
}

std::string write_jsonl(const std::string& name, const std::string& text) {
  const std::string path = kDir + "/" + name;
  write_text_file_atomic(path, text, "test");
  return path;
}

}  // namespace

TEST(SentencePiece, TextDocumentsRoundTrip) {
  auto tok = data::load_tokenizer(model_path(), "data.tokenizer");
  EXPECT_EQ(tok->vocab_size(), 300);
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(model_path()).ok());
  // A sentence of the corpus (every character is known to the model; unknown ones decode as ⁇).
  std::ifstream in(kDir + "/corpus.txt");
  std::string text;
  std::getline(in, text);
  text = text.substr(0, 80);
  const std::string path = write_jsonl("text.jsonl", nlohmann::json{{"text", text}}.dump() + "\n");
  auto docs = data::read_jsonl(path, 300, "data.train", tok.get());
  ASSERT_EQ(docs.size(), 1u);
  const auto& ids = docs[0].ids;
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(ids.back(), 2);
  EXPECT_LT(ids.size(), text.size());  // pieces, not bytes
  std::vector<int> inner(ids.begin() + 1, ids.end() - 1);
  std::string decoded;
  ASSERT_TRUE(sp.Decode(inner, &decoded).ok());
  EXPECT_EQ(decoded, text);
  EXPECT_EQ(docs[0].labels, ids);
}

TEST(SentencePiece, PromptCompletionMasksThePrompt) {
  auto tok = data::load_tokenizer(model_path(), "data.tokenizer");
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(model_path()).ok());
  using Case = std::pair<std::string, std::string>;
  for (const auto& [prompt, completion] : {Case{"what is it", " the answer"}, Case{"the cat ", "sat"}, Case{"the c", "at"}}) {
    const std::string path = write_jsonl("pc.jsonl", nlohmann::json{{"prompt", prompt}, {"completion", completion}}.dump() + "\n");
    auto docs = data::read_jsonl(path, 300, "data.train", tok.get());
    ASSERT_EQ(docs.size(), 1u);
    const data::Document& d = docs[0];
    // BOS prompt completion EOS as one text: the completion is not tokenized as a text of its own
    // start (no "▁" of its own, no second space after a prompt that ends in one).
    EXPECT_EQ(d.ids, tok->encode(prompt + completion)) << prompt << "|" << completion;
    EXPECT_EQ(d.labels.front(), -100) << "BOS";
    EXPECT_EQ(d.labels.back(), 2) << "EOS is trained";
    // The untrained tokens are the prompt's, the trained ones (EOS aside) reach into the completion.
    std::vector<int> untrained, trained;
    for (size_t i = 1; i + 1 < d.ids.size(); ++i) (d.labels[i] == -100 ? untrained : trained).push_back(int(d.ids[i]));
    std::string head, tail;
    ASSERT_TRUE(sp.Decode(untrained, &head).ok());
    ASSERT_TRUE(sp.Decode(trained, &tail).ok());
    EXPECT_EQ(prompt.rfind(head, 0), 0u) << "'" << head << "' begins '" << prompt << "'";
    EXPECT_FALSE(trained.empty());
    EXPECT_NE(tail.find(completion.substr(completion.find_first_not_of(' '))), std::string::npos) << tail;
    if (prompt == "what is it") {
      EXPECT_EQ(tail, "the answer");
    }
  }
}

TEST(SentencePiece, Errors) {
  auto tok = data::load_tokenizer(model_path(), "data.tokenizer");
  const std::string path = write_jsonl("small.jsonl", "{\"text\": \"hello\"}\n");
  expect_bad_input([&] { data::read_jsonl(path, 258, "data.train", tok.get()); },
                   "small.jsonl:1: text is tokenized by the SentencePiece tokenizer");
  expect_bad_input([&] { data::load_tokenizer(kDir + "/missing.model", "data.tokenizer"); },
                   "data.tokenizer: '" + kDir + "/missing.model' does not exist");
  write_text_file_atomic(kDir + "/garbage.model", "not a model", "test");
  expect_bad_input([&] { data::load_tokenizer(kDir + "/garbage.model", "data.tokenizer"); }, "is not a SentencePiece model");
}

// A model directory that ships a SentencePiece tokenizer.model tokenizes JSONL text without
// data.tokenizer; an explicit data.tokenizer keeps its own.

TEST(SentencePiece, TheModelDirectorysTokenizerIsUsedForJsonl) {
  const std::string dir = kDir + "/model_dir";
  make_directories(dir, "test");
  std::ifstream src(model_path(), std::ios::binary);
  std::ofstream(dir + "/tokenizer.model", std::ios::binary) << src.rdbuf();
  auto world = comm::make_communicator(at::kCPU);
  train::RunConfig c;
  c.model_path = dir;
  c.train_data = write_jsonl("dir_text.jsonl", "{\"text\": \"hello\"}\n");
  c.device = "cpu";
  const plan::ModelSpec spec = plan::ModelSpec{};
  EXPECT_EQ(train::resolve_run(c, spec, *world).config.tokenizer, dir + "/tokenizer.model");
  c.tokenizer = model_path();
  EXPECT_EQ(train::resolve_run(c, spec, *world).config.tokenizer, model_path());
}

namespace {

// A SentencePiece model with ChatML's turn markers as symbols and a ChatML chat template, written
// once to <test tmp>/chat-spm (tests/train/check_chat_sentencepiece.py renders templates with it),
// with chat.jsonl, one conversation.
const std::string& chat_model_dir() {
  static const std::string dir = [] {
    const std::string d = std::string(FTDIST_TEST_TMP) + "/chat-spm";
    make_directories(d, "test");
    write_corpus_text(d + "/corpus.txt");
    const auto status = sentencepiece::SentencePieceTrainer::Train(
        "--input=" + d + "/corpus.txt --model_prefix=" + d + "/tokenizer --vocab_size=600 --model_type=bpe "
        "--bos_id=1 --eos_id=2 --unk_id=0 --pad_id=-1 --user_defined_symbols=<|im_start|>,<|im_end|> --minloglevel=2 "
        "--normalization_rule_name=identity --remove_extra_whitespaces=false --byte_fallback=true");  // (as Llama's)
    FT_CHECK_ARG(status.ok(), "training the chat test tokenizer: " << status.ToString());
    sentencepiece::SentencePieceProcessor sp;
    FT_CHECK_ARG(sp.Load(d + "/tokenizer.model").ok(), "loading the chat test tokenizer");
    const int start = sp.PieceToId("<|im_start|>"), end = sp.PieceToId("<|im_end|>");
    const nlohmann::json config = {
        {"bos_token", "<s>"},
        {"eos_token", "<|im_end|>"},
        {"legacy", false},
        {"added_tokens_decoder", {{std::to_string(start), {{"content", "<|im_start|>"}, {"special", true}}},
                                  {std::to_string(end), {{"content", "<|im_end|>"}, {"special", true}}}}},
        {"chat_template",
         "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
         "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"}};
    write_text_file_atomic(d + "/tokenizer_config.json", config.dump(2), "test");
    write_text_file_atomic(d + "/chat.jsonl",
                           R"({"messages": [{"role": "user", "content": "the cat sat"}, {"role": "assistant", "content": "on the mat"}]})"
                           "\n",
                           "test");
    return d;
  }();
  return dir;
}

}  // namespace

// A ChatML conversation read from JSONL through a model directory trains exactly the assistant's
// words and its end-of-turn marker, which are single tokens.
TEST(SentencePieceChat, ModelDirectoryTrainsTheAssistantTurns) {
  const std::string& dir = chat_model_dir();
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(dir + "/tokenizer.model").ok());
  const int start = sp.PieceToId("<|im_start|>"), end = sp.PieceToId("<|im_end|>");

  auto tok = data::load_tokenizer(dir, "--tokenizer");
  ASSERT_NE(tok->chat(), nullptr);
  const std::vector<data::Document> docs = data::read_jsonl(dir + "/chat.jsonl", tok->vocab_size(), "--input", tok.get());
  ASSERT_EQ(docs.size(), 1u);
  const data::Document& d = docs[0];
  std::vector<int> trained, all;
  for (size_t i = 0; i < d.ids.size(); ++i) {
    all.push_back(int(d.ids[i]));
    if (d.labels[i] != -100) trained.push_back(int(d.labels[i]));
  }
  std::string decoded;
  ASSERT_TRUE(sp.Decode(all, &decoded).ok());
  EXPECT_EQ(decoded, "<|im_start|>user\nthe cat sat<|im_end|>\n<|im_start|>assistant\non the mat<|im_end|>\n") << "the whole conversation";
  ASSERT_FALSE(trained.empty());
  EXPECT_EQ(trained.back(), end) << "the end-of-turn marker is trained";
  trained.pop_back();
  std::string answer;
  ASSERT_TRUE(sp.Decode(trained, &answer).ok());
  EXPECT_EQ(answer, "on the mat");
  EXPECT_EQ(std::count(d.ids.begin(), d.ids.end(), int64_t(start)), 2) << "the markers are single tokens";
}

// data.train_on = "all" (TokenCacheSource::chat_all_turns): the run's tokenized cache of chat JSONL
// keeps every token trained, in a file of its own beside the assistant-turns one, both current.
TEST(SentencePieceChat, EveryTurnTrainedIsCachedApart) {
  const std::string& dir = chat_model_dir();
  auto tok = data::load_tokenizer(dir, "--tokenizer");
  const std::string cache = std::string(FTDIST_TEST_TMP) + "/chat-spm-cache";
  const data::TokenCacheSource assistant{dir + "/chat.jsonl", dir + "/tokenizer.model", tok->vocab_size(), false};
  data::TokenCacheSource all = assistant;
  all.chat_all_turns = true;
  const std::string a = data::tokenized_cache(assistant, tok.get(), cache, "data.train");
  const std::string b = data::tokenized_cache(all, tok.get(), cache, "data.train");
  EXPECT_NE(a, b);
  EXPECT_TRUE(data::tokenized_cache_is_current(assistant, cache));
  EXPECT_TRUE(data::tokenized_cache_is_current(all, cache));
  const data::TokenFile fa(a, tok->vocab_size()), fb(b, tok->vocab_size());
  ASSERT_TRUE(fa.masked());
  EXPECT_FALSE(fb.masked()) << "every token trained: no loss mask";
  ASSERT_EQ(fa.num_tokens(), fb.num_tokens());
  EXPECT_TRUE(std::equal(fa.tokens(), fa.tokens() + fa.num_tokens(), fb.tokens())) << "the same conversation";
  const int64_t trained = std::count(fa.mask(), fa.mask() + fa.num_tokens(), uint8_t(1));
  EXPECT_GT(trained, 0);
  EXPECT_LT(trained, fa.num_tokens());
}

// A BOS or EOS the chat template writes must be one token of the tokenizer: an unknown string, or a
// value that is not a string, is refused naming the file and the key (before, an unknown EOS was
// spelled out in pieces and trained, and a number rendered as nothing).
TEST(SentencePieceChat, SpecialTokensMustBeTokens) {
  const std::string& dir = chat_model_dir();
  const nlohmann::json good = nlohmann::json::parse(read_text_file(dir + "/tokenizer_config.json", "test"));
  const std::string bad = std::string(FTDIST_TEST_TMP) + "/chat-spm-bad-eos";
  make_directories(bad, "test");
  write_text_file_atomic(bad + "/tokenizer.model", read_text_file(dir + "/tokenizer.model", "test"), "test");
  auto with = [&](const nlohmann::json& eos) {
    nlohmann::json config = good;
    config["eos_token"] = eos;
    write_text_file_atomic(bad + "/tokenizer_config.json", config.dump(2), "test");
    return data::load_tokenizer(bad, "--tokenizer");
  };
  EXPECT_NO_THROW(with({{"content", "<|im_end|>"}}));  // (an AddedToken object)
  EXPECT_NO_THROW(with("</s>"));                       // a piece of the model
  expect_bad_input([&] { with("<|nope|>"); }, "tokenizer_config.json: \"eos_token\" is \"<|nope|>\", which is neither an added token nor a piece");
  expect_bad_input([&] { with(7); }, "tokenizer_config.json: \"eos_token\" must be a string or {\"content\": string}, got 7");
  // (an AddedToken's flags are true or false, as in tokenizer.json's added_tokens)
  expect_bad_input([&] { with({{"content", "<|im_end|>"}, {"lstrip", 1}}); }, "tokenizer_config.json: \"eos_token.lstrip\" must be true or false, got 1");
}

namespace {
// A copy of the chat test model directory (tokenizer.model, tokenizer_config.json, chat.jsonl) at
// <test tmp>/<name>, its config changed by `edit`.
std::string chat_model_copy(const std::string& name, const std::function<void(nlohmann::json&)>& edit) {
  const std::string& from = chat_model_dir();
  const std::string d = std::string(FTDIST_TEST_TMP) + "/" + name;
  make_directories(d, "test");
  for (const char* f : {"tokenizer.model", "chat.jsonl"})
    write_text_file_atomic(d + "/" + f, read_text_file(from + "/" + f, "test"), "test");
  nlohmann::json config = nlohmann::json::parse(read_text_file(from + "/tokenizer_config.json", "test"));
  edit(config);
  write_text_file_atomic(d + "/tokenizer_config.json", config.dump(2), "test");
  std::remove((d + "/chat_template.jinja").c_str());
  return d;
}
}  // namespace

// chat_template.jinja (where Transformers saves a template) wins over tokenizer_config.json's, and
// the token cache is made anew when any file of the tokenizer changes, whatever its mtime says.
TEST(SentencePieceChat, TheTemplateFileWinsAndTheCacheSeesEveryTokenizerFile) {
  const std::string dir = chat_model_copy("chat-spm-jinja", [](nlohmann::json&) {});
  const std::string cache = dir + "/cache";
  auto tok = data::load_tokenizer(dir, "--tokenizer");
  const data::TokenCacheSource src{dir + "/chat.jsonl", dir + "/tokenizer.model", tok->vocab_size(), false};
  const std::string first = data::tokenized_cache(src, tok.get(), cache, "data.train");
  ASSERT_TRUE(data::tokenized_cache_is_current(src, cache));
  const int64_t tokens = data::TokenFile(first, tok->vocab_size()).num_tokens();

  // The same template with a system line first, in the file Transformers writes.
  const std::string tmpl = data::render_chat(*tok->chat(), nlohmann::json::array(), false);  // "" (no messages)
  EXPECT_EQ(tmpl, "");
  write_text_file_atomic(dir + "/chat_template.jinja",
                         "{{ '<|im_start|>system\\nbe brief<|im_end|>\\n' }}{% for message in messages %}{{'<|im_start|>' + "
                         "message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}",
                         "test");
  EXPECT_FALSE(data::tokenized_cache_is_current(src, cache)) << "a template file added";
  tok = data::load_tokenizer(dir, "--tokenizer");
  EXPECT_EQ(data::render_chat(*tok->chat(), nlohmann::json::array(), false), "<|im_start|>system\nbe brief<|im_end|>\n");
  const std::string second = data::tokenized_cache(src, tok.get(), cache, "data.train");
  EXPECT_GT(data::TokenFile(second, tok->vocab_size()).num_tokens(), tokens);

  // tokenizer_config.json edited in place, its size and mtime kept (as cp -p or rsync -t leave it).
  const std::string config_path = dir + "/tokenizer_config.json";
  struct stat before {};
  ASSERT_EQ(::stat(config_path.c_str(), &before), 0);
  std::string text = read_text_file(config_path, "test");
  const size_t at = text.find("\"legacy\": false");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 15, "\"legacy\": true ");
  { std::ofstream(config_path, std::ios::trunc) << text; }
  const struct timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, config_path.c_str(), times, 0), 0);
  EXPECT_FALSE(data::tokenized_cache_is_current(src, cache)) << "tokenizer_config.json edited with its mtime kept";
}

// Phi-3's kind of tokenizer: added tokens past the SentencePiece model's pieces, turn markers that
// take the newline after them (rstrip), and a template that closes a conversation with EOS when no
// generation prompt follows. A conversation of two exchanges trains each answer and its <|end|>,
// and the last one's EOS; no newline token stands after a marker.
TEST(SentencePieceChat, AddedTokensPastTheModelStripAndEosClosedTemplates) {
  const int64_t pieces = data::load_tokenizer(chat_model_dir(), "--tokenizer")->vocab_size();
  const int64_t user = pieces, assistant = pieces + 1, end = pieces + 2, eos = pieces + 3;
  const std::string dir = chat_model_copy("chat-spm-phi3", [&](nlohmann::json& c) {
    auto added = [](const char* text, bool rstrip) {
      return nlohmann::json{{"content", text}, {"special", true}, {"rstrip", rstrip}, {"lstrip", false}};
    };
    c["added_tokens_decoder"] = {{std::to_string(user), added("<|user|>", true)},
                                 {std::to_string(assistant), added("<|assistant|>", true)},
                                 {std::to_string(end), added("<|end|>", true)},
                                 {std::to_string(eos), added("<|endoftext|>", false)}};
    c["eos_token"] = "<|endoftext|>";
    c["chat_template"] =
        "{% for message in messages %}{% if message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}"
        "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}";
  });
  write_text_file_atomic(dir + "/chat.jsonl",
                         R"({"messages": [{"role": "user", "content": "the cat"}, {"role": "assistant", "content": "sat"}, )"
                         R"({"role": "user", "content": "on"}, {"role": "assistant", "content": "the mat"}]})"
                         "\n",
                         "test");
  auto tok = data::load_tokenizer(dir, "--tokenizer");
  const auto docs = data::read_jsonl(dir + "/chat.jsonl", eos + 1, "--input", tok.get());
  ASSERT_EQ(docs.size(), 1u);
  const data::Document& d = docs[0];
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(dir + "/tokenizer.model").ok());
  std::string shown;  // the tokens, the added ones by name, "|" before each trained one
  for (size_t i = 0; i < d.ids.size(); ++i) {
    const int64_t id = d.ids[i];
    shown += std::string(d.labels[i] != -100 ? "|" : "") +
             (id == user ? "<U>" : id == assistant ? "<A>" : id == end ? "<E>" : id == eos ? "<EOS>" : sp.IdToPiece(int(id))) + " ";
  }
  EXPECT_EQ(std::count(d.ids.begin(), d.ids.end(), end), 4) << shown;
  EXPECT_EQ(d.ids.back(), eos) << shown;
  EXPECT_EQ(d.labels.back(), eos) << "the conversation's EOS closes the last answer and is trained: " << shown;
  EXPECT_EQ(shown.find("<0x0A>"), std::string::npos) << "the markers take the newline after them: " << shown;
  std::vector<int> trained;
  for (size_t i = 0; i < d.ids.size(); ++i)
    if (d.labels[i] != -100 && d.ids[i] < pieces) trained.push_back(int(d.ids[i]));
  std::string words;
  ASSERT_TRUE(sp.Decode(trained, &words).ok());
  EXPECT_EQ(words, "satthe mat") << shown;
  int64_t trained_ends = 0;
  for (size_t i = 0; i < d.ids.size(); ++i) trained_ends += d.ids[i] == end && d.labels[i] != -100;
  EXPECT_EQ(trained_ends, 2) << "each answer's <|end|>, not the questions': " << shown;
  // rstrip takes Unicode whitespace too (NBSP, U+3000), as the tokenizers library does.
  const std::vector<data::TokenAt> t = data::encode_chat(*tok->chat(), *tok, "<|user|>\n\u00a0\u3000the");
  ASSERT_GE(t.size(), 2u);
  EXPECT_EQ(t[0].id, user);
  std::vector<int> rest;
  for (size_t i = 1; i < t.size(); ++i) rest.push_back(int(t[i].id));
  std::string after;
  ASSERT_TRUE(sp.Decode(rest, &after).ok());
  EXPECT_EQ(after, "the");
}

// "text" and "prompt"/"completion" documents split the model directory's special tokens out by
// their ids, as Transformers' tokenizer(text) does, with or without a chat template: pre-rendered
// chat text keeps a marker that is no piece of the SentencePiece model one token instead of
// spelling it out.
TEST(SentencePieceChat, TextKeepsSpecialTokensWhole) {
  const int64_t turn = data::load_tokenizer(chat_model_dir(), "--tokenizer")->vocab_size();  // past the pieces
  auto add_turn = [&](nlohmann::json& c) {
    c["added_tokens_decoder"][std::to_string(turn)] = {{"content", "<|turn|>"}, {"special", true}};
  };
  const std::string with_template = chat_model_copy("chat-spm-turn", add_turn);
  const std::string without = chat_model_copy("chat-spm-no-template", [&](nlohmann::json& c) {
    add_turn(c);
    c.erase("chat_template");
  });
  for (const std::string& dir : {with_template, without}) {
    auto tok = data::load_tokenizer(dir, "--tokenizer");
    ASSERT_LT(tok->piece_id("<|turn|>"), 0) << "not a piece of the model";
    const std::string path = dir + "/text.jsonl";
    write_text_file_atomic(path,
                           R"({"text": "<|turn|>the cat<|turn|>"})"
                           "\n"
                           R"({"prompt": "<|turn|>the cat", "completion": "<|turn|>sat<|turn|>"})"
                           "\n",
                           "test");
    const auto docs = data::read_jsonl(path, turn + 1, "data.train", tok.get());
    ASSERT_EQ(docs.size(), 2u);
    for (const data::Document& d : docs) {
      EXPECT_EQ(d.ids[1], turn) << dir << " line " << d.line << ": after BOS";
      EXPECT_EQ(std::count(d.ids.begin(), d.ids.end(), turn), d.line == 1 ? 2 : 3) << dir << " line " << d.line;
    }
    const data::Document& pc = docs[1];
    EXPECT_EQ(pc.labels[pc.labels.size() - 2], turn) << "the completion's last marker is trained";
  }
  // Without a template, messages are still refused with the message that says what is missing.
  auto tok = data::load_tokenizer(without, "--tokenizer");
  write_text_file_atomic(without + "/chat.jsonl",
                         R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})"
                         "\n",
                         "test");
  expect_bad_input([&] { data::read_jsonl(without + "/chat.jsonl", turn + 1, "data.train", tok.get()); },
                   "chat.jsonl:1: \"messages\" need the model's chat template");
}

// A model directory's config decides what a text document starts and ends with, as Transformers'
// tokenizer and TRL do: its eos_token (Qwen's <|im_end|>, not the SentencePiece model's </s>), and
// no BOS where add_bos_token is false or bos_token is null.
TEST(SentencePieceChat, TextTakesTheConfigsBosAndEos) {
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(chat_model_dir() + "/tokenizer.model").ok());
  const int64_t im_end = sp.PieceToId("<|im_end|>");
  auto first_and_last = [&](const std::string& name, const std::function<void(nlohmann::json&)>& edit) {
    const std::string dir = chat_model_copy(name, edit);
    auto tok = data::load_tokenizer(dir, "--tokenizer");
    write_text_file_atomic(dir + "/text.jsonl", "{\"text\": \"the cat\"}\n{\"prompt\": \"the\", \"completion\": \" cat\"}\n", "test");
    const auto docs = data::read_jsonl(dir + "/text.jsonl", tok->vocab_size(), "data.train", tok.get());
    EXPECT_EQ(docs.at(0).ids.front(), docs.at(1).ids.front()) << name;
    EXPECT_EQ(docs.at(0).ids.back(), docs.at(1).ids.back()) << name;
    return std::make_pair(docs.at(0).ids.front(), docs.at(0).ids.back());
  };
  EXPECT_EQ(first_and_last("chat-spm-eos", [](nlohmann::json&) {}), std::make_pair(int64_t(sp.bos_id()), im_end));
  EXPECT_NE(first_and_last("chat-spm-no-bos", [](nlohmann::json& c) { c["add_bos_token"] = false; }).first, sp.bos_id());
  EXPECT_NE(first_and_last("chat-spm-null-bos", [](nlohmann::json& c) { c["bos_token"] = nullptr; }).first, sp.bos_id());
  EXPECT_EQ(first_and_last("chat-spm-sp-eos", [](nlohmann::json& c) { c.erase("eos_token"); }).second, sp.eos_id());
  // add_eos_token: the tokenizer ends every text with EOS, then TRL's rule adds none; a text already
  // ending in EOS ends in two, as Transformers' tokenizer gives it (without the flag: one).
  for (const bool add_eos : {false, true}) {
    const std::string dir = chat_model_copy(add_eos ? "chat-spm-add-eos" : "chat-spm-no-add-eos",
                                            [&](nlohmann::json& c) { c["add_eos_token"] = add_eos; });
    auto tok = data::load_tokenizer(dir, "--tokenizer");
    write_text_file_atomic(dir + "/eos.jsonl", "{\"text\": \"the cat<|im_end|>\"}\n{\"text\": \"the cat\"}\n", "test");
    const auto docs = data::read_jsonl(dir + "/eos.jsonl", tok->vocab_size(), "data.train", tok.get());
    const std::vector<int64_t>& ended = docs.at(0).ids;
    ASSERT_GE(ended.size(), 3u);
    EXPECT_EQ(ended.back(), im_end);
    EXPECT_EQ(ended[ended.size() - 2] == im_end, add_eos) << "add_eos_token " << add_eos;
    EXPECT_EQ(docs.at(1).ids.back(), im_end);
    EXPECT_NE(docs.at(1).ids[docs.at(1).ids.size() - 2], im_end);
  }
}

// Tokens the config names that are pieces of the model (<unk>, a user-defined <|im_start|>) are split
// out of text with their ids, as Transformers' tokenizer splits them, also without an
// added_tokens_decoder (a config saved before Transformers 4.34, or special_tokens_map.json).
TEST(SentencePieceChat, NamedPiecesAreSplitOutOfText) {
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(chat_model_dir() + "/tokenizer.model").ok());
  const int64_t im_start = sp.PieceToId("<|im_start|>");
  const std::string dir = chat_model_copy("chat-spm-named-pieces", [](nlohmann::json& c) {
    c.erase("added_tokens_decoder");
    c["unk_token"] = "<unk>";
    c["additional_special_tokens"] = {"<|im_start|>"};
  });
  auto tok = data::load_tokenizer(dir, "--tokenizer");
  const std::vector<data::TokenAt> a = data::encode_text(*tok, "<|im_start|>user");
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a.front().id, im_start) << "no word-start piece before a special token at the start";
  const std::vector<data::TokenAt> b = data::encode_text(*tok, "a <unk> b");
  EXPECT_TRUE(std::any_of(b.begin(), b.end(), [&](const data::TokenAt& t) { return t.id == sp.unk_id(); })) << "<unk> as its id";
}

// TRL's conversational prompt/completion: the conversation is the prompt's messages then the
// completion's, tokenized as the same "messages" line would be; only the completion's assistant
// turns are trained (an assistant turn inside the prompt is context).
TEST(SentencePieceChat, ConversationalPromptCompletionTrainsTheCompletion) {
  const std::string& dir = chat_model_dir();
  auto tok = data::load_tokenizer(dir, "--tokenizer");
  const std::string prompt = R"([{"role": "user", "content": "the cat"}, {"role": "assistant", "content": "sat"}, {"role": "user", "content": "on"}])";
  const std::string completion = R"([{"role": "assistant", "content": "the mat"}])";
  write_text_file_atomic(dir + "/pc-conv.jsonl",
                         "{\"prompt\": " + prompt + ", \"completion\": " + completion + "}\n" +
                             "{\"messages\": " + prompt.substr(0, prompt.size() - 1) + ", " + completion.substr(1) + "}\n" +
                             "{\"prompt\": " + prompt + ", \"completion\": [{\"role\": \"user\", \"content\": \"x\"}]}\n",
                         "test");
  expect_bad_input([&] { data::read_jsonl(dir + "/pc-conv.jsonl", tok->vocab_size(), "--input", tok.get()); },
                   "pc-conv.jsonl:3: the completion has no assistant message");
  write_text_file_atomic(dir + "/pc-conv.jsonl",
                         "{\"prompt\": " + prompt + ", \"completion\": " + completion + "}\n" +
                             "{\"messages\": " + prompt.substr(0, prompt.size() - 1) + ", " + completion.substr(1) + "}\n",
                         "test");
  const auto docs = data::read_jsonl(dir + "/pc-conv.jsonl", tok->vocab_size(), "--input", tok.get());
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].ids, docs[1].ids) << "the same conversation";
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(dir + "/tokenizer.model").ok());
  auto trained_text = [&](const data::Document& d) {
    std::vector<int> t;
    for (size_t i = 0; i < d.ids.size(); ++i)
      if (d.labels[i] != -100) t.push_back(int(d.ids[i]));
    std::string text;
    EXPECT_TRUE(sp.Decode(t, &text).ok());
    return text;
  };
  EXPECT_EQ(trained_text(docs[0]), "the mat<|im_end|>") << "only the completion";
  EXPECT_EQ(trained_text(docs[1]), "sat<|im_end|>the mat<|im_end|>") << "a messages line trains every assistant turn";
}

// A template that renders a message differently once later ones exist (Mistral's puts the system
// prompt in the last user message) cannot have its turns located: refused, saying why.
TEST(SentencePieceChat, TemplatesThatRewriteEarlierTurnsAreRefusedWithTheReason) {
  const std::string dir = chat_model_copy("chat-spm-last-user", [](nlohmann::json& c) {
    c["chat_template"] =
        "{%- set ns = namespace(last=0) %}{%- for m in messages %}{%- if m.role == 'user' %}{%- set ns.last = loop.index0 %}{%- endif %}"
        "{%- endfor %}{%- for m in messages %}{%- if m.role == 'user' %}[U]{% if loop.index0 == ns.last %}(sys){% endif %}"
        "{{ m.content }}{%- elif m.role == 'assistant' %}[A]{{ m.content }}{% endif %}{%- endfor %}";
  });
  auto tok = data::load_tokenizer(dir, "--tokenizer");
  write_text_file_atomic(dir + "/chat.jsonl",
                         R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, )"
                         R"({"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]})"
                         "\n",
                         "test");
  expect_bad_input([&] { data::read_jsonl(dir + "/chat.jsonl", tok->vocab_size(), "--input", tok.get()); },
                   "chat.jsonl:1: the chat template does not render a conversation's beginning as a prefix of it");
  expect_bad_input([&] { data::read_jsonl(dir + "/chat.jsonl", tok->vocab_size(), "--input", tok.get()); },
                   "place the system prompt in the last user message");
}
