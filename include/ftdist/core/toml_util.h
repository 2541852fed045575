// Reading TOML files with errors that name the file and the key (toml++ underneath).
//   toml::table t = parse_toml_file("cluster/gpus.toml");
//   double mem = toml_get<double>(gpu, "memory_gib", "cluster/gpus.toml [gpu.h100]");
#pragma once

#include <toml++/toml.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ftdist/core/check.h"

namespace ftdist {

toml::table parse_toml_text(const std::string& text, const std::string& origin);
toml::table parse_toml_file(const std::string& path, const std::string& what);

namespace detail {
template <typename T>
std::optional<T> toml_value(const toml::node& node) {
  if constexpr (std::is_same_v<T, double>) {
    if (auto v = node.value<double>()) return *v;  // integers convert too
    return std::nullopt;
  } else {
    return node.value_exact<T>();  // no other type converts: 1 is not true, 2.0 is not an integer
  }
}
template <typename T> const char* toml_type_name() {
  if constexpr (std::is_same_v<T, double>) return "a number";
  else if constexpr (std::is_same_v<T, int64_t>) return "an integer";
  else if constexpr (std::is_same_v<T, bool>) return "true or false";
  else return "a string";
}
}  // namespace detail

// The value at `key`, which must exist and have type T; `where` names file and table in errors.
template <typename T>
T toml_get(const toml::table& table, const std::string& key, const std::string& where) {
  const toml::node* node = table.get(key);
  FT_CHECK_ARG(node != nullptr, where << ": missing key \"" << key << "\"");
  auto v = detail::toml_value<T>(*node);
  FT_CHECK_ARG(v.has_value(), where << ": \"" << key << "\" must be " << detail::toml_type_name<T>());
  return *v;
}

// Like toml_get, but `fallback` when the key is absent.
template <typename T>
T toml_get_or(const toml::table& table, const std::string& key, T fallback, const std::string& where) {
  if (table.get(key) == nullptr) return fallback;
  return toml_get<T>(table, key, where);
}

std::vector<std::string> toml_string_list(const toml::table& table, const std::string& key, const std::string& where);

// Error(BadInput) naming `where` and the key, with the closest known names, for a key of `table`
// that is not in `known`: a misspelt key would otherwise be read as its default, silently.
void toml_check_keys(const toml::table& table, const std::vector<std::string>& known, const std::string& where);

// Error(BadInput) naming `where` and the keys unless every one of `values` is finite ("inf" and
// "nan" are TOML floats).
void toml_check_finite(std::initializer_list<std::pair<const char*, double>> values, const std::string& where);

}  // namespace ftdist
