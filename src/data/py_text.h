// Python's str semantics over UTF-8, for the chat template renderer (chat_template.cpp): a string
// is a sequence of code points, not bytes, for len(), indexing, slicing and iteration; strip()
// without arguments strips what str.isspace() calls whitespace; upper() / lower() map every
// letter the C library's UTF-8 locale knows, not only ASCII.
#pragma once

#include <string>
#include <vector>

namespace ftdist::data::py_text {

// `s` cut into its code points, each as its UTF-8 bytes (a byte that starts no valid sequence
// stands alone).
std::vector<std::string> code_points(const std::string& s);
std::string join(const std::vector<std::string>& points, size_t begin, size_t end);
size_t length(const std::string& s);  // code points
std::string utf8(char32_t point);     // a code point's UTF-8 bytes
// A code point's upper case (up) or lower case, as upper() / lower() map it.
char32_t case_of(char32_t point, bool up);

// str.strip / lstrip / rstrip: `chars` a set of code points; "strip what isspace() calls space"
// when `whitespace` is true (Python's default, chars=None).
std::string strip(const std::string& s, const std::string& chars, bool whitespace, bool left, bool right);

// Where the run of whitespace (str.isspace(), Unicode's White_Space) starting at byte `pos` ends,
// and where the run ending at byte `end` starts (not before `floor`).
size_t space_run_end(const std::string& s, size_t pos);
size_t space_run_start(const std::string& s, size_t floor, size_t end);
// Where the run of non-whitespace starting at byte `pos` ends (a word of str.split()).
size_t word_end(const std::string& s, size_t pos);

bool is_alpha(const std::string& point);
std::string upper(const std::string& s);
std::string lower(const std::string& s);
// str.capitalize() (first upper, the rest lower) and str.title() (each word's first letter upper).
std::string capitalize(const std::string& s);
std::string title(const std::string& s);
// Jinja's |title filter (not str.title): a word starts the text or follows whitespace, '-', '(',
// '{', '[' or '<', and is its first character upper-cased and the rest lower-cased ("it's" ->
// "It's", "a,b" -> "A,b").
std::string jinja_title(const std::string& s);

}  // namespace ftdist::data::py_text
