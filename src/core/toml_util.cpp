#include "ftdist/core/toml_util.h"

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

}  // namespace ftdist
