// Chat data with a SentencePiece model directory (data/chat_format.h).
#include "ftdist/data/chat_format.h"

#include <map>

#include <algorithm>

#include "ftdist/core/check.h"
#include "ftdist/core/json.h"
#include "ftdist/core/suggest.h"
#include "ftdist/core/text_file.h"
#include "py_text.h"

namespace ftdist::data {

using json = nlohmann::ordered_json;  // (the config's keys in their order: named tokens are numbered so)

namespace {

// bos_token / eos_token: a string, or an AddedToken object {"content": ...}; "" when absent.
std::string token_text(const json& config, const char* key, const std::string& where) {
  if (!config.contains(key) || config[key].is_null()) return "";
  const json& t = config[key];
  if (t.is_string()) return t.get<std::string>();
  FT_CHECK_ARG(t.is_object() && t.contains("content") && t["content"].is_string(),
               where << ": \"" << key << "\" must be a string or {\"content\": string}, got " << json_excerpt(t));
  return t["content"].get<std::string>();
}

// A special token: a string, or an AddedToken object {"content": ..., "lstrip": ..., ...}. Where
// "normalized" is unsaid: an added_tokens_decoder entry (`named` false) is normalized unless special,
// as an AddedToken defaults; a named one (bos_token, ...) not, Transformers marking it special.
SpecialToken named_token(const json& t, const std::string& key, const std::string& where, bool named = true) {
  FT_CHECK_ARG(t.is_string() || (t.is_object() && t.contains("content") && t["content"].is_string()),
               where << ": \"" << key << "\" must be a string or {\"content\": string}, got " << json_excerpt(t));
  if (t.is_string()) return {t.get<std::string>()};
  auto flag = [&](const char* name) { return json_flag(t, name, false, where, key); };
  SpecialToken out{t["content"].get<std::string>(), -1, flag("lstrip"), flag("rstrip")};
  out.single_word = flag("single_word"), out.normalized = json_flag(t, "normalized", !named && !flag("special"), where, key);
  return out;
}

// The special tokens a config names, in the order Transformers 5 adds those its tokenizer lacks:
// bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token; any other "*_token"
// key's, those given as {"content": ...} objects first (Transformers reads them later, into a
// dictionary read first), then the strings with the named ones of extra_special_tokens (a {name:
// token} object, which replaces a key of its name); then the list of extra_special_tokens (or
// additional_special_tokens). Each once.
std::vector<SpecialToken> named_tokens(const json& config, const std::string& where) {
  static const char* const kNamed[] = {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"};
  std::vector<SpecialToken> out;
  auto add = [&](const json& t, const std::string& key) {
    if (t.is_null()) return;
    SpecialToken s = named_token(t, key, where);
    const bool seen = std::any_of(out.begin(), out.end(), [&](const SpecialToken& o) { return o.text == s.text; });
    if (!s.text.empty() && !seen) out.push_back(std::move(s));
  };
  for (const char* key : kNamed)
    if (config.contains(key)) add(config[key], key);
  const char* extra_key = config.contains("extra_special_tokens") ? "extra_special_tokens" : "additional_special_tokens";
  const json extra = config.contains(extra_key) ? config[extra_key] : json();
  FT_CHECK_ARG(extra.is_null() || extra.is_array() || extra.is_object(),
               where << ": \"" << extra_key << "\" must be a list of tokens or a {name: token} object, got " << json_excerpt(extra));
  // (the named ones of extra_special_tokens join the string-valued keys, one of the same name replaced)
  std::vector<std::pair<std::string, json>> objects, strings;
  for (auto it = config.begin(); it != config.end(); ++it) {
    const std::string& key = it.key();
    const bool other = key.size() > 6 && key.compare(key.size() - 6, 6, "_token") == 0 &&
                       std::none_of(std::begin(kNamed), std::end(kNamed), [&](const char* k) { return key == k; });
    if (other && it->is_object() && it->contains("content")) objects.emplace_back(key, *it);
    if (other && it->is_string()) strings.emplace_back(key, *it);
  }
  if (extra.is_object())
    for (auto it = extra.begin(); it != extra.end(); ++it) {
      const auto same = std::find_if(strings.begin(), strings.end(), [&](const auto& kv) { return kv.first == it.key(); });
      if (same != strings.end()) same->second = *it;
      else strings.emplace_back(it.key(), *it);
    }
  for (const auto* group : {&objects, &strings})
    for (const auto& [key, t] : *group) add(t, key);
  if (extra.is_array())
    for (size_t k = 0; k < extra.size(); ++k) add(extra[k], std::string(extra_key) + "[" + std::to_string(k) + "]");
  return out;
}

// tokenizer_config.json as Transformers 5 reads it: additional_special_tokens is extra_special_tokens,
// and where the config has no added_tokens_decoder (saved before Transformers 4.34), the
// special_tokens_map.json beside it overrides its tokens (objects there are special; its
// extra_special_tokens list joins the config's).
json read_config(const std::string& config_path) {
  json config = parse_ordered_json(read_text_file(config_path, "tokenizer_config.json"), config_path);
  FT_CHECK_ARG(config.is_object(), config_path << ": not a JSON object");
  if (config.contains("additional_special_tokens") && (!config.contains("extra_special_tokens") || config["extra_special_tokens"].empty()))
    config["extra_special_tokens"] = config["additional_special_tokens"], config.erase("additional_special_tokens");
  const std::string map_path = directory_of(config_path) + "/special_tokens_map.json";
  if (config.contains("added_tokens_decoder") || !file_exists(map_path)) return config;
  const json map = parse_ordered_json(read_text_file(map_path, "special_tokens_map.json"), map_path);
  FT_CHECK_ARG(map.is_object(), map_path << ": not a JSON object");
  for (auto it = map.begin(); it != map.end(); ++it) {
    json value = *it;
    if (it.key() == "extra_special_tokens" && value.is_array() && config.contains(it.key()) && config[it.key()].is_array()) {
      json merged = config[it.key()];
      for (const json& t : value)
        if (std::find(merged.begin(), merged.end(), t) == merged.end()) merged.push_back(t);
      value = merged;
    } else if (value.is_object() && it.key() != "extra_special_tokens") {
      value["special"] = true;
    }
    config[it.key()] = value;
  }
  return config;
}

// Every named template, as Transformers gathers them: the config's "chat_template" (a string: the
// "default"; or a list of {"name", "template"}), then chat_template.jinja beside it (the "default"),
// then additional_chat_templates/<name>.jinja. name -> {text, where it came from}.
std::map<std::string, std::pair<std::string, std::string>> named_templates(const json& config, const std::string& config_path) {
  std::map<std::string, std::pair<std::string, std::string>> named;
  if (config.contains("chat_template") && !config["chat_template"].is_null()) {
    const json& t = config["chat_template"];
    if (t.is_string()) {
      named["default"] = {t.get<std::string>(), config_path + " chat_template"};
    } else {
      FT_CHECK_ARG(t.is_array(), config_path << ": \"chat_template\" must be a string or a list of {\"name\", \"template\"}");
      for (const json& e : t) {
        FT_CHECK_ARG(e.is_object() && e.contains("name") && e["name"].is_string() && e.contains("template") && e["template"].is_string(),
                     config_path << ": \"chat_template\" entries must be {\"name\": string, \"template\": string}, got " << json_excerpt(e));
        named[e["name"].get<std::string>()] = {e["template"].get<std::string>(),
                                               config_path + " chat_template \"" + e["name"].get<std::string>() + "\""};
      }
    }
  }
  const std::string jinja = chat_template_file_of(config_path);
  if (file_exists(jinja)) named["default"] = {read_text_file(jinja, "chat template"), jinja};
  const std::string more = additional_chat_templates_dir_of(config_path);
  for (const std::string& f : list_directory(more))
    if (f.size() > 6 && f.compare(f.size() - 6, 6, ".jinja") == 0 && file_exists(more + "/" + f))
      named[f.substr(0, f.size() - 6)] = {read_text_file(more + "/" + f, "chat template"), more + "/" + f};
  return named;
}

// Where `part` stops being the beginning of `whole`: "\"<part's text>\" at byte N, against \"<whole's>\" in".
std::string first_difference(const std::string& part, const std::string& whole) {
  const size_t n = std::min(part.size(), whole.size());
  size_t at = 0;
  while (at < n && part[at] == whole[at]) ++at;
  return "\"" + excerpt(part.substr(at, 40)) + "\" at byte " + std::to_string(at) + ", against \"" +
         excerpt(whole.substr(at, 40)) + "\" in";
}

}  // namespace

std::string chat_template_file_of(const std::string& config_path) {
  return directory_of(config_path) + "/chat_template.jinja";
}

std::string additional_chat_templates_dir_of(const std::string& config_path) {
  return directory_of(config_path) + "/" + kAdditionalChatTemplates;
}

namespace {
// The "default" template, and the "tool_use" one for conversations with tools where there is one;
// each one's problem is said when a conversation needs it (text data reads without them).
void load_templates(ChatFormat& chat, const json& config, const std::string& config_path) {
  chat.has_template = (config.contains("chat_template") && !config["chat_template"].is_null()) ||
                      file_exists(chat_template_file_of(config_path)) || !list_directory(additional_chat_templates_dir_of(config_path)).empty();
  std::map<std::string, std::pair<std::string, std::string>> named;
  try {
    named = named_templates(config, config_path);
  } catch (const Error& e) {
    chat.error = chat.tool_use_error = e.message();
  }
  auto parse = [&](const std::string& name, std::shared_ptr<const ChatTemplate>& into, std::string& error) {
    const auto it = named.find(name);
    if (it == named.end()) return false;
    try {
      into = std::make_shared<const ChatTemplate>(it->second.first, it->second.second);
    } catch (const Error& e) {
      error = e.message();
    }
    return true;
  };
  parse("tool_use", chat.tool_use_tmpl, chat.tool_use_error);
  if (!parse("default", chat.tmpl, chat.error) && chat.error.empty()) {
    std::string names;
    for (const auto& [name, t] : named) names += (names.empty() ? "" : ", ") + name;
    chat.error = named.empty() ? config_path + ": no chat_template (and no chat_template.jinja beside it)"
                               : config_path + ": no chat template named \"default\" (it has " + names + ")";
  }
}
}  // namespace

std::shared_ptr<const ChatFormat> load_chat_format(const std::string& config_path, Tokenizer& tok) {
  const json config = read_config(config_path);
  auto chat = std::make_shared<ChatFormat>();
  chat->origin = config_path;
  load_templates(*chat, config, config_path);
  chat->bos_token = token_text(config, "bos_token", config_path);
  chat->eos_token = token_text(config, "eos_token", config_path);
  if (config.contains("legacy") && config["legacy"].is_boolean()) chat->legacy = config["legacy"].get<bool>();
  if (!token_text(config, "unk_token", config_path).empty()) chat->unk_token = token_text(config, "unk_token", config_path);
  // Special tokens: the added tokens (with their ids), then BOS and EOS by their pieces.
  if (config.contains("added_tokens_decoder") && config["added_tokens_decoder"].is_object())
    for (auto it = config["added_tokens_decoder"].begin(); it != config["added_tokens_decoder"].end(); ++it) {
      const json& t = *it;
      if (!t.is_object() || !t.contains("content") || !t["content"].is_string() || t["content"].get<std::string>().empty()) continue;
      int64_t id = -1;
      try {
        id = std::stoll(it.key());
      } catch (const std::exception&) {
        FT_CHECK_ARG(false, config_path << ": added_tokens_decoder key '" << it.key() << "' is not a token id");
      }
      // (ids past the SentencePiece model's pieces are the model's own, as Phi-3's 32000..32010 beside a
      // 32000-piece tokenizer.model: the model's vocabulary checks them where the data is read)
      FT_CHECK_ARG(id >= 0, config_path << ": added token " << t["content"] << " has id " << id << ", below 0");
      SpecialToken special = named_token(t, "added_tokens_decoder." + it.key(), config_path, /*named=*/false);
      special.id = id, special.declared = true;
      chat->specials.push_back(std::move(special));
    }
  // The named tokens become special tokens: a tokenizer.json takes those it lacks as its added tokens
  // (ids from the tokenizer); for a SentencePiece model, those that are its pieces (<unk>, a
  // user-defined <|im_start|>), split out of text with their ids as Transformers splits them.
  for (SpecialToken& t : named_tokens(config, config_path)) {
    const bool known = std::any_of(chat->specials.begin(), chat->specials.end(), [&](const SpecialToken& p) { return p.text == t.text; });
    if (!tok.post_processed() && !known) t.id = tok.piece_id(t.text);
    if (known || (!tok.post_processed() && t.id < 0)) continue;
    chat->specials.push_back(std::move(t));
  }
  if (tok.post_processed()) tok.add_special_tokens(chat->specials, config_path);
  // (a BOS or EOS the template writes must be one token: spelled out in pieces, the model would
  // learn the spelling, and a turn would end without the real EOS)
  for (const auto& [key, s] : {std::pair<const char*, std::string>{"bos_token", chat->bos_token}, {"eos_token", chat->eos_token}}) {
    const bool known = std::any_of(chat->specials.begin(), chat->specials.end(), [&](const SpecialToken& p) { return p.text == s; });
    FT_CHECK_ARG(s.empty() || known || tok.piece_id(s) >= 0 || !chat->has_template,
                 config_path << ": \"" << key << "\" is \"" << excerpt(s) << "\", which is neither an added token nor a piece of the "
                             << "tokenizer: the chat template would spell it out in pieces");
    if (!s.empty() && !known && tok.piece_id(s) >= 0) chat->specials.push_back({s, tok.piece_id(s)});
  }
  std::stable_sort(chat->specials.begin(), chat->specials.end(),
                   [](const SpecialToken& a, const SpecialToken& b) { return a.text.size() > b.text.size(); });
  // BOS / EOS of text documents: the config's (an added token or a piece, both among the specials by
  // now), else the SentencePiece model's
  auto id_of = [&](const std::string& text, int64_t fallback) {
    for (const SpecialToken& sp : chat->specials)
      if (!text.empty() && sp.text == text) return sp.id;
    return fallback;
  };
  const bool bos_null = config.contains("bos_token") && config["bos_token"].is_null();
  const bool no_bos = config.contains("add_bos_token") && config["add_bos_token"] == false;
  // (a tokenizer.json's post-processor says whether a text starts with BOS, text_start(): Transformers
  // 5 reads no add_bos_token for one)
  chat->text_bos = tok.post_processed() || no_bos || bos_null ? -1 : id_of(chat->bos_token, tok.bos());
  chat->text_eos = id_of(chat->eos_token, tok.post_processed() ? -1 : tok.eos());
  // (a tokenizer.json's post-processor says what ends a text, as add_bos_token's BOS)
  chat->add_eos = !tok.post_processed() && config.contains("add_eos_token") && config["add_eos_token"] == true;
  return chat;
}

std::vector<int64_t> text_start(const Tokenizer& tok) {
  if (tok.post_processed()) return tok.opening();
  const int64_t bos = tok.chat() ? tok.chat()->text_bos : tok.bos();
  return bos >= 0 ? std::vector<int64_t>{bos} : std::vector<int64_t>{};
}

std::vector<int64_t> text_end(const Tokenizer& tok, const std::vector<int64_t>& ids) {
  std::vector<int64_t> out = tok.closing();
  // (a tokenizer.json without a config has no EOS beyond its post-processor's)
  const int64_t eos = tok.chat() ? tok.chat()->text_eos : tok.post_processed() ? -1 : tok.eos();
  const int64_t last = !out.empty() ? out.back() : !ids.empty() ? ids.back() : -1;
  if (eos >= 0 && (last != eos || (tok.chat() && tok.chat()->add_eos))) out.push_back(eos);
  return out;
}

std::string render_chat(const ChatFormat& chat, const nlohmann::ordered_json& messages, bool add_generation_prompt,
                        const nlohmann::ordered_json& tools) {
  // (as Transformers picks: "tool_use" when the conversation has tools and there is one)
  const bool tool_use = !tools.is_null() && (chat.tool_use_tmpl || !chat.tool_use_error.empty());
  const std::shared_ptr<const ChatTemplate>& tmpl = tool_use ? chat.tool_use_tmpl : chat.tmpl;
  FT_CHECK_ARG(tmpl, (tool_use ? chat.tool_use_error : chat.error));
  return tmpl->render({{"messages", messages},
                           {"tools", tools},
                           {"documents", nullptr},
                           {"bos_token", chat.bos_token},
                           {"eos_token", chat.eos_token},
                           {"add_generation_prompt", add_generation_prompt}});
}

std::vector<TokenAt> encode_text(const Tokenizer& tok, const std::string& text) {
  return tok.chat() ? encode_chat(*tok.chat(), tok, text) : tok.encode_at(text);
}

std::vector<TokenAt> encode_chat(const ChatFormat& chat, const Tokenizer& tok, const std::string& text) {
  // (a tokenizer.json splits its added tokens itself, the config's among them: add_special_tokens())
  if (tok.post_processed()) return tok.encode_at(text);
  std::vector<TokenAt> out;
  size_t pos = 0, plain = 0;  // `plain`: where the text not yet encoded starts
  auto flush = [&](size_t end) {
    if (end <= plain) return;
    const std::string piece = text.substr(plain, end - plain);
    if (chat.legacy || plain == 0 || !tok.marks_word_start()) {
      for (const TokenAt& t : tok.encode_at(piece)) out.push_back({t.id, plain + t.start, t.end ? plain + t.end : 0});
      return;
    }
    const size_t skip = chat.unk_token.size();  // a continuation: after unk_token, whose tokens are dropped
    for (const TokenAt& t : tok.encode_at(chat.unk_token + piece))
      if (t.start >= skip) out.push_back({t.id, plain + t.start - skip});
  };
  // An added token with lstrip / rstrip takes the whitespace beside it (as Transformers' added tokens
  // do): Phi-3's "<|user|>\n" is one token, not two.
  bool starts[256] = {};  // the first bytes of the special tokens: other bytes are passed over at once
  for (const SpecialToken& s : chat.specials) starts[static_cast<unsigned char>(s.text[0])] = true;
  while (pos < text.size()) {
    const auto special = !starts[static_cast<unsigned char>(text[pos])]
                             ? chat.specials.end()
                             : std::find_if(chat.specials.begin(), chat.specials.end(),
                                            [&](const SpecialToken& s) { return text.compare(pos, s.text.size(), s.text) == 0; });
    if (special == chat.specials.end()) {
      ++pos;
      continue;
    }
    // (Unicode whitespace, as the tokenizers library strips it: NBSP and U+3000 too)
    const size_t begin = special->lstrip ? py_text::space_run_start(text, plain, pos) : pos;
    flush(begin);
    out.push_back({special->id, begin});
    pos += special->text.size();
    if (special->rstrip) pos = py_text::space_run_end(text, pos);
    plain = pos;
  }
  flush(text.size());
  return out;
}

namespace {
// A message as chat data sets and Transformers' templates have them: a known role (tool results as
// "tool", or Llama 3.1's "ipython"), content a string, or null / absent beside an assistant's
// "tool_calls". Only assistant turns are trained; the others are the context they answer.
void check_message(const nlohmann::ordered_json& m, size_t k, const std::string& where) {
  FT_CHECK_ARG(m.is_object() && m.contains("role"), where << ": message " << k << ": expected {\"role\": ..., \"content\": ...}");
  static const char* const kRoles[] = {"system", "user", "assistant", "tool", "ipython", "developer"};
  const bool role_ok = m["role"].is_string() && std::any_of(std::begin(kRoles), std::end(kRoles), [&](const char* r) { return m["role"] == r; });
  FT_CHECK_ARG(role_ok, where << ": message " << k << ": unknown role " << m["role"].dump()
                              << " (expected system, user, assistant, tool, ipython or developer)");
  // content: text; a list of parts ([{"type": "text", "text": ...}]) or a tool's result as an object,
  // which templates render themselves; null or absent beside tool_calls
  const bool calls = m.contains("tool_calls") && m["tool_calls"].is_array() && !m["tool_calls"].empty();
  const bool content_ok = m.contains("content") ? m["content"].is_string() || m["content"].is_array() || m["content"].is_object() ||
                                                      (calls && m["content"].is_null())
                                                : calls;
  FT_CHECK_ARG(content_ok, where << ": message " << k << ": \"content\" must be a string (or a list of parts, or an object)"
                                 << (m.contains("content") ? std::string(", got ") + m["content"].type_name() : std::string(" (it is missing)"))
                                 << (calls ? "" : "; null or absent only beside \"tool_calls\""));
}
}  // namespace

ChatTokens chat_tokens(const nlohmann::ordered_json& line, const std::string& where, const Tokenizer& tok, bool all_turns,
                       size_t first_trained) {
  using ojson = nlohmann::ordered_json;
  const ojson& msgs = line.at("messages");
  const ojson tools = line.contains("tools") ? line["tools"] : ojson(nullptr);
  FT_CHECK_ARG(tools.is_null() || tools.is_array(), where << ": \"tools\" must be a list of tool schemas, got " << tools.type_name());
  FT_CHECK_ARG(msgs.is_array() && !msgs.empty(), where << ": \"messages\" must be a non-empty list of {\"role\", \"content\"}");
  std::vector<size_t> turns;
  std::vector<ojson> normalized;  // keys whose value is null dropped, as Transformers 5 drops them ("tool_calls": null)
  for (size_t k = 0; k < msgs.size(); ++k) {
    check_message(msgs[k], k, where);
    if (msgs[k]["role"] == "assistant" && k >= first_trained) turns.push_back(k);
    ojson m = ojson::object();
    for (auto it = msgs[k].begin(); it != msgs[k].end(); ++it)
      if (!it->is_null()) m[it.key()] = *it;
    normalized.push_back(std::move(m));
  }
  FT_CHECK_ARG(!turns.empty(), where << (first_trained > 0 ? ": the completion has no assistant message (nothing to learn from)"
                                                            : ": the conversation has no assistant turn (nothing to learn from)"));
  const ChatFormat* chat = tok.chat();
  FT_CHECK_ARG(chat && chat->has_template, where << ": \"messages\" need the model's chat template: give a model directory whose "
                               "tokenizer_config.json has a chat_template, or with a chat_template.jinja (" << tok.name() << " has none)");
  auto render = [&](size_t n, bool prompt) {
    try {
      return render_chat(*chat, ojson(std::vector<ojson>(normalized.begin(), normalized.begin() + long(n))), prompt, tools);
    } catch (const Error& e) {
      FT_CHECK_ARG(false, where << ": " << e.message());
    }
    return std::string();
  };
  const std::string full = render(msgs.size(), false);
  // Each assistant turn's bytes: what its rendering adds after the prompt for it, up to the end of
  // its turn marker (whitespace after that marker belongs to the next turn).
  std::vector<std::pair<size_t, size_t>> spans;
  for (size_t k : turns) {
    const std::string before = render(k, true);
    std::string upto = render(k + 1, false);
    // A template that closes a conversation with EOS when no generation prompt follows (Phi-3)
    // renders it after the turn's end marker only where the conversation ends there.
    // (the whitespace after a turn, as Python's str.rstrip() strips it: NBSP and U+3000 too)
    const size_t content_end = py_text::strip(upto, "", true, false, true).size();
    const std::string& eos = chat->eos_token;
    if (k + 1 < msgs.size() && !eos.empty() && content_end >= eos.size() &&
        upto.compare(content_end - eos.size(), eos.size(), eos) == 0 && full.compare(0, upto.size(), upto) != 0)
      upto.resize(content_end - eos.size());
    const std::string turn = where + ": the chat template does not render a conversation's beginning as a prefix of it, so "
                             "its assistant turns cannot be located: message " + std::to_string(k) + " (assistant): ";
    FT_CHECK_ARG(upto.compare(0, before.size(), before) == 0,
                 turn << "the messages before it with the generation prompt render " << first_difference(before, upto)
                      << " the rendering up to it");
    FT_CHECK_ARG(full.compare(0, upto.size(), upto) == 0,
                 turn << "the messages up to it render " << first_difference(upto, full)
                      << " the whole conversation (the template renders a message differently once later ones exist: "
                         "it may place the system prompt in the last user message, as Mistral's does, or drop earlier "
                         "reasoning; split such a conversation into lines that each end at an assistant turn)");
    spans.push_back({before.size(), py_text::strip(upto, "", true, false, true).size()});
  }
  // A token is trained when its bytes (up to the next token's start) overlap a turn's: a piece that
  // carries the whitespace before the turn's first word (SentencePiece's "▁") counts.
  ChatTokens out;
  const std::vector<TokenAt> toks = encode_chat(*chat, tok, full);
  for (size_t i = 0; i < toks.size(); ++i) {
    const size_t a = toks[i].start, b = token_end(toks, i, full.size());
    out.ids.push_back(toks[i].id);
    out.starts.push_back(a);
    out.trained.push_back(all_turns || std::any_of(spans.begin(), spans.end(), [&](const auto& s) { return a < s.second && b > s.first; }));
  }
  out.text = full;
  return out;
}

nlohmann::ordered_json conversation_of(const nlohmann::ordered_json& line, size_t* first_trained) {
  *first_trained = 0;
  if (!line.is_object()) return nullptr;
  if (line.contains("messages")) return line;
  if (!(line.contains("prompt") && line.contains("completion") && line["prompt"].is_array() && line["completion"].is_array()))
    return nullptr;
  nlohmann::ordered_json conversation = line;
  nlohmann::ordered_json& msgs = conversation["messages"] = line["prompt"];
  for (const auto& m : line["completion"]) msgs.push_back(m);
  *first_trained = line["prompt"].size();
  return conversation;
}

}  // namespace ftdist::data
