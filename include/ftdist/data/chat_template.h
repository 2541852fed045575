// Hugging Face chat templates: the `chat_template` of a model's tokenizer_config.json, a Jinja
// template, rendered the way Transformers' apply_chat_template renders it (trim_blocks and
// lstrip_blocks on; raise_exception, namespace, range and strftime_now; the tojson filter) so that
// `ftdist prepare-data` reads chat `messages` with a SentencePiece model directory.
//
//   ChatTemplate t(config["chat_template"], "model/tokenizer_config.json");
//   std::string text = t.render({{"messages", msgs}, {"bos_token", "<s>"}, {"eos_token", "</s>"},
//                                {"add_generation_prompt", false}});
//
// The subset chat templates use: text, {{ }}, {% %} and {# #} with `-` whitespace control; if /
// elif / else, for (tuple targets, `loop.*`, an `if` filter, else, break, continue), set (names and
// namespace attributes), generation blocks; literals, lists and dicts, attribute and subscript
// access, slices, calls with keyword arguments, the string and dict methods templates call (strip,
// split, startswith, items, get, ...), the usual operators, `is` tests (defined, none, equalto,
// ne, gt, in, divisibleby, ...) and filters (trim, length, tojson, join, default, list, select,
// reject, selectattr, rejectattr, map, ...). Anything else is an Error(BadInput) naming the template and line.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace ftdist::data {

class ChatTemplate {
 public:
  // Parses `source`; `origin` names it in errors (e.g. "model/tokenizer_config.json chat_template").
  ChatTemplate(const std::string& source, const std::string& origin);
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  // The variables in `context` (an object) as the template's globals; dicts keep their keys in the
  // order given (Python's: tojson, items() and loops over a dict follow it). A raise_exception() in
  // the template, or an operation on the wrong types, is an Error(BadInput) with its message.
  std::string render(const nlohmann::ordered_json& context) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ftdist::data
