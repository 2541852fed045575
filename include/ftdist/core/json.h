// Parsing JSON that comes from outside (config.json, JSONL lines, safetensors headers, checkpoint
// metadata) without trusting it: nesting is bounded before the recursive parser sees the text (a
// line nested 100,000 levels deep is an error, not a stack overflow), and errors quote at most a
// short escaped excerpt of the input.
//
//   nlohmann::json j = parse_json(text, "config.json");   // Error(BadInput) naming the file
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace ftdist {

constexpr int kMaxJsonDepth = 64;  // objects and arrays inside each other; real inputs use < 10

// Error(BadInput) "<origin>: not valid JSON (...)" or "<origin>: JSON nested deeper than N levels".
nlohmann::json parse_json(const char* begin, const char* end, const std::string& origin, int max_depth = kMaxJsonDepth);
nlohmann::json parse_json(const std::string& text, const std::string& origin, int max_depth = kMaxJsonDepth);
nlohmann::ordered_json parse_ordered_json(const std::string& text, const std::string& origin, int max_depth = kMaxJsonDepth);

// A JSON value for an error message: its dump, cut to `max_chars` with the full length said.
std::string json_excerpt(const nlohmann::json& value, size_t max_chars = 60);

// j[name] as a flag: `fallback` where `j` is no object or the key is absent or null; anything but
// true or false is Error(BadInput) "<where>: \"<key>.<name>\" must be true or false, got ..." (`key`
// "": "<name>" alone).
bool json_flag(const nlohmann::json& j, const char* name, bool fallback, const std::string& where, const std::string& key = "");

}  // namespace ftdist
