// Unicode facts for the byte-level BPE tokenizer (bpe_tokenizer.cpp): UTF-8 decoding with each code
// point's byte offset, general categories and White_Space (the pre-tokenizer regex's \p{L}, \p{N},
// \s), and NFC normalization (Qwen2-style tokenizer.json files normalize with it), as Hugging Face
// tokenizers has them: categories of Unicode 16.0 (its Oniguruma's), NFC of the older Unicode its
// normalization crate knows. The tables are generated (scripts/gen_unicode_tables.py).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ftdist::data::unicode {

enum Category : uint8_t {
  Cn, Lu, Ll, Lt, Lm, Lo, Mn, Mc, Me, Nd, Nl, No, Pc, Pd, Ps, Pe, Pi,
  Pf, Po, Sm, Sc, Sk, So, Zs, Zl, Zp, Cc, Cf, Cs, Co
};

struct CategoryRun {
  char32_t first, last;
  Category category;
};
struct ClassRun {
  char32_t first, last;
  uint8_t ccc;
};
struct Decomposition {
  char32_t point, first, second;  // second 0: a singleton
};
struct Composition {
  char32_t first, second, composite;
};
extern const CategoryRun kCategoryRuns[];
extern const size_t kCategoryRunCount;
extern const ClassRun kCombiningRuns[];
extern const size_t kCombiningRunCount;
extern const Decomposition kDecompositions[];
extern const size_t kDecompositionCount;
extern const Composition kCompositions[];
extern const size_t kCompositionCount;

// Text as code points, each with the byte it starts at; `starts` has one more entry, the text's
// size. A byte that starts no valid UTF-8 sequence stands alone as 0xDC00 + byte (category Cs),
// which encode() writes back as that byte.
struct Points {
  std::u32string cps;
  std::vector<size_t> starts;
};
Points decode(const std::string& text);
void encode(char32_t cp, std::string& out);

Category category(char32_t cp);
// The one-letter class of a category: 'L', 'M', 'N', 'P', 'S', 'Z' or 'C'.
char major(Category c);
// The category named `name` ("Lu", ...); Cn with ok false when there is none.
Category category_named(const std::string& name, bool& ok);
bool is_white_space(char32_t cp);  // the White_Space property (what Oniguruma's \s matches)

// NFC of `text`, and for each byte of the result the byte of `text` its code point came from (the
// start of the run of characters composed with it).
struct Normalized {
  std::string text;
  std::vector<size_t> origin;
};
Normalized nfc(const std::string& text);

}  // namespace ftdist::data::unicode
