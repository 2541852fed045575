// Chat data with a SentencePiece model directory: its tokenizer_config.json's chat template and
// special tokens, and a conversation (`messages`) turned into tokens with the loss on the assistant
// turns — what scripts/tokenize_hf.py does with Transformers, for `ftdist prepare-data` and
// `ftdist train` reading JSONL.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "ftdist/data/chat_template.h"
#include "ftdist/data/tokenizer.h"

namespace ftdist::data {

// An added token as it stands in rendered text, with its id; lstrip / rstrip: it takes the
// whitespace on its left / right (tokenizer_config.json's added_tokens_decoder flags).
struct SpecialToken {
  std::string text;
  int64_t id = -1;  // -1: a named token whose id the tokenizer gives (Tokenizer::add_special_tokens)
  bool lstrip = false, rstrip = false;
  bool declared = false;  // an added_tokens_decoder entry (its flags stated), not BOS / EOS alone
  bool single_word = false, normalized = false;  // (a named token given as {"content": ..., ...})
};

struct ChatFormat {
  std::string origin;  // the tokenizer_config.json
  // The template; null with `error` when there is none or it does not parse (said when a
  // conversation needs it, so that text data still reads with the directory's tokenizer and its
  // special tokens).
  bool has_template = false;
  std::shared_ptr<const ChatTemplate> tmpl;           // "default"
  std::shared_ptr<const ChatTemplate> tool_use_tmpl;  // "tool_use": for conversations with tools (null: none)
  std::string error;           // why there is no "default" template
  std::string tool_use_error;  // why the "tool_use" template there is does not render ("": none, or it renders)
  std::string bos_token, eos_token;  // as the template sees them ("" when undefined)
  // Special tokens as they stand in rendered text, with their ids, longest first: the added
  // tokens of tokenizer_config.json and BOS / EOS (with a tokenizer.json, every token the config
  // names: Tokenizer::add_special_tokens).
  std::vector<SpecialToken> specials;
  // Text right after a special token: encoded as the start of a text (SentencePiece's word-start
  // marker first) when true, as Transformers' Llama tokenizers do unless tokenizer_config.json
  // says "legacy": false; as a continuation otherwise (Transformers' trick: encoded after
  // `unk_token`, whose tokens are then dropped).
  bool legacy = true;
  std::string unk_token = "<unk>";
  // What a "text" or prompt/completion document starts and ends with (-1: nothing), as
  // Transformers' tokenizer adds BOS and TRL appends eos_token: BOS the config's bos_token unless
  // "add_bos_token" is false or bos_token is null (a tokenizer.json: its post-processor's), EOS its
  // eos_token; the SentencePiece model's own where the config does not name them.
  int64_t text_bos = -1, text_eos = -1;
  // add_eos_token (a SentencePiece model's config): the tokenizer itself ends every text with EOS,
  // after which TRL's rule adds none (a text ending in EOS then ends in two).
  bool add_eos = false;
};

// The chat template file Transformers saves beside tokenizer_config.json (it wins over the config's
// "chat_template").
std::string chat_template_file_of(const std::string& config_path);
// The directory of named templates Transformers 5 saves beside it (<name>.jinja: "tool_use", ...).
constexpr const char* kAdditionalChatTemplates = "additional_chat_templates";
std::string additional_chat_templates_dir_of(const std::string& config_path);

// The special tokens and chat templates of a tokenizer_config.json (has_template false when neither
// it nor the files beside it have one; its "chat_template" may be a list of named templates, and
// additional_chat_templates/ add more: "default" renders, "tool_use" renders a line with "tools"). Error(BadInput) naming the file for a
// malformed config.
// A tokenizer.json takes the config's special tokens it lacks as added tokens here
// (Tokenizer::add_special_tokens).
std::shared_ptr<const ChatFormat> load_chat_format(const std::string& config_path, Tokenizer& tok);

// The template applied to `messages` (add_generation_prompt: the prompt for the next assistant
// turn), with `tools` (a data line's tool schemas; null when it has none) and `documents` null, as
// Transformers' apply_chat_template passes them.
std::string render_chat(const ChatFormat& chat, const nlohmann::ordered_json& messages, bool add_generation_prompt,
                        const nlohmann::ordered_json& tools = nullptr);

// The tokens of rendered text: special tokens by their ids, the text between them by the tokenizer.
std::vector<TokenAt> encode_chat(const ChatFormat& chat, const Tokenizer& tok, const std::string& text);
// The tokens of a document's text (no BOS or EOS added): its special tokens split out by their ids
// where the tokenizer came with a tokenizer_config.json, as Transformers' tokenizer(text) does (a
// "text" of pre-rendered ChatML keeps <|im_start|> one token), else tok.encode_at(text).
std::vector<TokenAt> encode_text(const Tokenizer& tok, const std::string& text);
// What a "text" or prompt/completion document starts with: BOS (ChatFormat::text_bos where the
// tokenizer has a config, else its own), or a tokenizer.json post-processor's opening tokens.
std::vector<int64_t> text_start(const Tokenizer& tok);
// What it ends with after its tokens `ids` (text_start's included): a post-processor's closing
// tokens, then EOS (ChatFormat::text_eos, else the tokenizer's own) unless `ids` already ends with
// it, as TRL appends it.
std::vector<int64_t> text_end(const Tokenizer& tok, const std::vector<int64_t>& ids);

// A conversation tokenized: each token's id, start byte in `text` (the rendered conversation) and
// whether it is trained.
struct ChatTokens {
  std::string text;
  std::vector<int64_t> ids;
  std::vector<size_t> starts;
  std::vector<bool> trained;
};

// A conversation, checked ({"role": system | user | assistant | tool | ipython | developer,
// "content": string, or null beside an assistant's "tool_calls"}, an assistant turn at least),
// rendered and tokenized, trained on each assistant turn up to the end-of-turn
// text the template closes it with (every token when `all_turns`). Errors name `where` (file:line).
// `line`: the data line (an object) holding "messages", and "tools" where it has them; parsed with
// its keys in order (nlohmann::ordered_json), as the template sees them. Messages before
// `first_trained` are context only (TRL's conversational prompt/completion: the prompt's).
ChatTokens chat_tokens(const nlohmann::ordered_json& line, const std::string& where, const Tokenizer& tok, bool all_turns,
                       size_t first_trained = 0);

// A data line's conversation as chat_tokens() takes it: the line itself when it holds "messages";
// TRL's conversational {"prompt": [messages], "completion": [messages]} as one "messages" list,
// *first_trained the prompt's count (its messages are context). Null for a line of another kind.
nlohmann::ordered_json conversation_of(const nlohmann::ordered_json& line, size_t* first_trained);

}  // namespace ftdist::data
