#include "py_text.h"

#include <locale.h>
#include <wctype.h>

#include <algorithm>

#include "unicode.h"

namespace ftdist::data::py_text {
namespace {

// The code point of one code_points() entry (its first byte where it is not valid UTF-8).
char32_t decode(const std::string& p) {
  const unsigned char c = static_cast<unsigned char>(p[0]);
  if (p.size() == 1) return c;
  char32_t v = p.size() == 2 ? c & 0x1F : p.size() == 3 ? c & 0x0F : c & 0x07;
  for (size_t k = 1; k < p.size(); ++k) v = (v << 6) | (static_cast<unsigned char>(p[k]) & 0x3F);
  return v;
}

std::string encode(char32_t v) {
  std::string s;
  unicode::encode(v, s);
  return s;
}

// str.isspace(): the Unicode White_Space characters and the ASCII separators \x1c..\x1f.
bool is_space(char32_t v) {
  return (v >= 0x09 && v <= 0x0D) || (v >= 0x1C && v <= 0x20) || v == 0x85 || v == 0xA0 || v == 0x1680 ||
         (v >= 0x2000 && v <= 0x200A) || v == 0x2028 || v == 0x2029 || v == 0x202F || v == 0x205F || v == 0x3000;
}

// The C library's UTF-8 character classes (C.UTF-8 is built into glibc); null where there is none,
// and then only ASCII letters change case.
locale_t utf8_locale() {
  static const locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", locale_t(0));
  return loc;
}

char32_t map_case(char32_t v, bool up) {
  if (v < 0x80) return up ? (v >= 'a' && v <= 'z' ? v - 32 : v) : (v >= 'A' && v <= 'Z' ? v + 32 : v);
  if (!utf8_locale()) return v;
  return char32_t(up ? towupper_l(wint_t(v), utf8_locale()) : towlower_l(wint_t(v), utf8_locale()));
}

std::string map_each(const std::string& s, bool up) {
  std::string out;
  for (const std::string& p : code_points(s)) out += p.size() == 1 && static_cast<unsigned char>(p[0]) >= 0x80 ? p : encode(map_case(decode(p), up));
  return out;
}

}  // namespace

char32_t case_of(char32_t point, bool up) { return map_case(point, up); }

std::string join(const std::vector<std::string>& points, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end && i < points.size(); ++i) out += points[i];
  return out;
}

std::string utf8(char32_t point) { return encode(point); }

size_t length(const std::string& s) {
  return size_t(std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

std::string strip(const std::string& s, const std::string& chars, bool whitespace, bool left, bool right) {
  const std::vector<std::string> p = code_points(s), set = code_points(chars);
  auto stripped = [&](const std::string& x) {
    return whitespace ? is_space(decode(x)) : std::find(set.begin(), set.end(), x) != set.end();
  };
  size_t a = 0, b = p.size();
  while (left && a < b && stripped(p[a])) ++a;
  while (right && b > a && stripped(p[b - 1])) --b;
  return join(p, a, b);
}

namespace {
size_t point_length(const std::string& s, size_t i) {  // bytes of the code point at i (1 where not valid)
  const unsigned char c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  if (i + n > s.size()) return 1;
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 1;
  return n;
}
}  // namespace

std::vector<std::string> code_points(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const size_t n = point_length(s, i);
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

namespace {
// Where the run of code points starting at byte `pos` that are (or, !space, are not) whitespace ends.
size_t run_end(const std::string& s, size_t pos, bool space) {
  while (pos < s.size()) {
    const size_t n = point_length(s, pos);
    if (is_space(decode(s.substr(pos, n))) != space) break;
    pos += n;
  }
  return pos;
}
}  // namespace

size_t space_run_end(const std::string& s, size_t pos) { return run_end(s, pos, true); }
size_t word_end(const std::string& s, size_t pos) { return run_end(s, pos, false); }

size_t space_run_start(const std::string& s, size_t floor, size_t end) {
  while (end > floor) {
    size_t start = end - 1;  // back to the first byte of the code point before `end`
    while (start > floor && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    if (point_length(s, start) != end - start || !is_space(decode(s.substr(start, end - start)))) break;
    end = start;
  }
  return end;
}

bool is_alpha(const std::string& point) {
  const char32_t v = decode(point);
  if (v < 0x80 || !utf8_locale()) return (v >= 'a' && v <= 'z') || (v >= 'A' && v <= 'Z');
  return iswalpha_l(wint_t(v), utf8_locale()) != 0;
}

std::string upper(const std::string& s) { return map_each(s, true); }
std::string lower(const std::string& s) { return map_each(s, false); }

std::string capitalize(const std::string& s) {
  const std::vector<std::string> p = code_points(s);
  return p.empty() ? s : upper(p[0]) + lower(join(p, 1, p.size()));
}

std::string jinja_title(const std::string& s) {
  std::string out;
  bool start = true;
  for (const std::string& p : code_points(s)) {
    const bool delimiter = p == "-" || p == "(" || p == "{" || p == "[" || p == "<" || is_space(decode(p));
    out += delimiter ? p : start ? upper(p) : lower(p);
    start = delimiter;
  }
  return out;
}

std::string title(const std::string& s) {
  std::string out;
  bool start = true;
  for (const std::string& p : code_points(s)) {
    const bool alpha = is_alpha(p);
    out += start && alpha ? upper(p) : lower(p);
    start = !alpha;
  }
  return out;
}

}  // namespace ftdist::data::py_text
