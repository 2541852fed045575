// The regular expressions of tokenizer.json pre-tokenizers (Split's "Regex" pattern, ByteLevel's
// GPT-2 split), matched as Hugging Face tokenizers' Oniguruma matches them: backtracking, the first
// alternative that leads to a match wins, quantifiers greedy unless marked lazy (?) or possessive (+).
//
// What it reads: literals and escapes (\r \n \t \f \v \e \xHH \x{H...} \uHHHH, an escaped
// punctuation character); classes [...] with ranges, negation and the shorthands inside; \s \S
// (White_Space), \d \D (Nd), \w \W (letters, marks, numbers, connector punctuation), \p{..} \P{..}
// \p{^..} with a general category (L, Lu, N, Nd, P, S, Z, M, C, ...); '.' (anything but \n);
// groups (...), (?:...), (?i:...), (?-i:...), and (?i) for the rest of the group (a(?i)b|c is
// a(?i:b|c)); lookahead (?=...) (?!...); on a character or class the quantifiers ? * + (then ? lazy,
// + possessive) and {n} {n,} {,m} {n,m} (then ? lazy; {n}? is ({n})?, and {n,m}+ is ({n,m})+, read
// where n <= 1 or m is open); on a group, ? and {1}. Case-insensitive matching folds literals and
// ranges one character at a time, as Unicode's simple case folding does (ſ matches s, the Kelvin
// sign k), not \p{..}, and not the multi-character folds (ß and ss). Anything else — anchors,
// backreferences, lookbehind, atomic groups, script names, repeated groups, more than 4096
// characters or 64 nested groups — is refused when the pattern is read, naming it, rather than
// matched differently.
//
//   SplitRegex re("(?i:'s|'t)|\\p{L}+|\\s+", "tokenizer.json pre_tokenizer");
//   size_t b, e;  re.find(points, 0, b, e);   // [b, e): code-point indices of the first match
#pragma once

#include <memory>
#include <string>

namespace ftdist::data {

class SplitRegex {
 public:
  // Error(BadInput) naming `where` and the pattern when it cannot be read.
  SplitRegex(const std::string& pattern, const std::string& where);
  ~SplitRegex();
  SplitRegex(SplitRegex&&) noexcept;
  // The leftmost match starting at or after `from` in `text` (code points): [begin, end), which
  // may be empty (begin == end, a split point of its own in tokenizers). False when there is none.
  // `steps` counts the work of every search of one text (start it at 0): past 2^28 + 64 per
  // character (a pattern that backtracks without end) it is Error(BadInput) naming the pattern.
  bool find(const std::u32string& text, size_t from, size_t& begin, size_t& end, size_t& steps) const;

  struct Program;  // the compiled pattern (split_regex.cpp)

 private:
  std::unique_ptr<Program> p_;
};

}  // namespace ftdist::data
