#include "ftdist/core/toml_util.h"

#include <algorithm>
#include <cmath>

#include "ftdist/core/suggest.h"
#include "ftdist/core/text_file.h"

namespace ftdist {

toml::table parse_toml_text(const std::string& text, const std::string& origin) {
  try {
    return toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    FT_CHECK_ARG(false, origin << ":" << where.line << ":" << where.column << ": " << e.description());
  }
  return {};
}

toml::table parse_toml_file(const std::string& path, const std::string& what) {
  return parse_toml_text(read_text_file(path, what), path);
}

std::vector<std::string> toml_string_list(const toml::table& table, const std::string& key, const std::string& where) {
  std::vector<std::string> out;
  const toml::node* node = table.get(key);
  if (node == nullptr) return out;
  const toml::array* arr = node->as_array();
  FT_CHECK_ARG(arr != nullptr, where << ": \"" << key << "\" must be a list of strings");
  for (const auto& item : *arr) {
    auto s = item.value<std::string>();
    FT_CHECK_ARG(s.has_value(), where << ": \"" << key << "\" must be a list of strings");
    out.push_back(*s);
  }
  return out;
}

void toml_check_keys(const toml::table& table, const std::vector<std::string>& known, const std::string& where) {
  for (const auto& [key, node] : table) {
    const std::string k(key.str());
    if (std::find(known.begin(), known.end(), k) != known.end()) continue;
    const std::vector<std::string> close = closest_names(k, known);
    FT_CHECK_ARG(false, where << ": unknown key \"" << k << "\""
                              << (close.empty() ? "" : "; did you mean " + join_or(close) + "?") << " (the keys: "
                              << join_or(known) << ")");
  }
}

void toml_check_finite(std::initializer_list<std::pair<const char*, double>> values, const std::string& where) {
  for (const auto& [key, v] : values) FT_CHECK_ARG(std::isfinite(v), where << ": \"" << key << "\" must be a finite number, got " << v);
}

}  // namespace ftdist
