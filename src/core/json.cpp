#include "ftdist/core/json.h"

#include "ftdist/core/check.h"
#include "ftdist/core/suggest.h"

namespace ftdist {
namespace {

// The deepest nesting of [ and { outside strings, stopping as soon as it passes `limit`.
int nesting_depth(const char* begin, const char* end, int limit) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (const char* p = begin; p < end; ++p) {
    const char ch = *p;
    if (in_string) {
      if (ch == '\\') ++p;
      else if (ch == '"') in_string = false;
    } else if (ch == '"') {
      in_string = true;
    } else if (ch == '[' || ch == '{') {
      if (++depth > deepest && (deepest = depth) > limit) return deepest;
    } else if (ch == ']' || ch == '}') {
      --depth;
    }
  }
  return deepest;
}

template <typename Json>
Json parse_bounded(const char* begin, const char* end, const std::string& origin, int max_depth) {
  FT_CHECK_ARG(nesting_depth(begin, end, max_depth) <= max_depth,
               origin << ": JSON nested deeper than " << max_depth << " levels");
  try {
    return Json::parse(begin, end);
  } catch (const nlohmann::json::exception& e) {
    // nlohmann's message quotes the last token read; cut it to a readable excerpt.
    FT_CHECK_ARG(false, origin << ": not valid JSON (" << excerpt(e.what(), 200) << ")");
  }
  return Json();
}

}  // namespace

nlohmann::json parse_json(const char* begin, const char* end, const std::string& origin, int max_depth) {
  return parse_bounded<nlohmann::json>(begin, end, origin, max_depth);
}

nlohmann::json parse_json(const std::string& text, const std::string& origin, int max_depth) {
  return parse_bounded<nlohmann::json>(text.data(), text.data() + text.size(), origin, max_depth);
}

nlohmann::ordered_json parse_ordered_json(const std::string& text, const std::string& origin, int max_depth) {
  return parse_bounded<nlohmann::ordered_json>(text.data(), text.data() + text.size(), origin, max_depth);
}

std::string json_excerpt(const nlohmann::json& value, size_t max_chars) {
  return excerpt(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), max_chars);
}

bool json_flag(const nlohmann::json& j, const char* name, bool fallback, const std::string& where, const std::string& key) {
  if (!j.is_object() || !j.contains(name) || j[name].is_null()) return fallback;
  FT_CHECK_ARG(j[name].is_boolean(), where << ": \"" << (key.empty() ? "" : key + ".") << name << "\" must be true or false, got "
                                           << json_excerpt(j[name]));
  return j[name].get<bool>();
}

}  // namespace ftdist
