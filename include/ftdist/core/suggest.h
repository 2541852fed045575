// "Did you mean" for names a user types (presets, GPUs, options).
//   closest_names("mistral7b", {"mistral-7b", "llama-2-7b"}) == {"mistral-7b"}
#pragma once

#include <string>
#include <vector>

namespace ftdist {

// Up to `max_results` candidates closest to `name` (case-insensitive edit distance, ignoring '-',
// '_', '.' and spaces); candidates containing `name` come first. Empty when nothing is close.
std::vector<std::string> closest_names(const std::string& name, const std::vector<std::string>& candidates,
                                       size_t max_results = 3);

// Lower-cased copy (ASCII).
std::string to_lower(std::string s);

// Whether `s` ends with `suffix`.
inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "a, b or c" — for messages.
std::string join_or(const std::vector<std::string>& names);

// Untrusted text for a message: control and non-ASCII bytes escaped (\n, \x1b), cut to about
// `max_chars` with "... (N bytes)" saying how long it was. Never prints a whole file.
std::string excerpt(const std::string& text, size_t max_chars = 60);

}  // namespace ftdist
