// UTF-8, general categories and NFC (data/unicode.h), over the generated tables of unicode_tables.cpp.
#include "unicode.h"

#include <algorithm>

namespace ftdist::data::unicode {

Points decode(const std::string& text) {
  Points p;
  p.cps.reserve(text.size());
  p.starts.reserve(text.size() + 1);
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    const size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    char32_t v = len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (s[i + k] & 0xC0) == 0x80;
      v = (v << 6) | (s[i + k] & 0x3F);
    }
    // (overlong forms, surrogates and values past U+10FFFF are not valid UTF-8 either)
    static const char32_t kLeast[] = {0, 0, 0x80, 0x800, 0x10000};
    ok = ok && (len == 1 || (v >= kLeast[len] && v <= 0x10FFFF && (v < 0xD800 || v > 0xDFFF)));
    p.starts.push_back(i);
    p.cps.push_back(ok ? (len == 1 ? char32_t(c) : v) : char32_t(0xDC00 + c));
    i += ok ? len : 1;
  }
  p.starts.push_back(n);
  return p;
}

void encode(char32_t v, std::string& s) {
  if (v >= 0xDC80 && v <= 0xDCFF) {  // a byte that was not valid UTF-8 (decode())
    s += char(v - 0xDC00);
  } else if (v < 0x80) {
    s += char(v);
  } else if (v < 0x800) {
    s += char(0xC0 | (v >> 6));
    s += char(0x80 | (v & 0x3F));
  } else if (v < 0x10000) {
    s += char(0xE0 | (v >> 12));
    s += char(0x80 | ((v >> 6) & 0x3F));
    s += char(0x80 | (v & 0x3F));
  } else {
    s += char(0xF0 | (v >> 18));
    s += char(0x80 | ((v >> 12) & 0x3F));
    s += char(0x80 | ((v >> 6) & 0x3F));
    s += char(0x80 | (v & 0x3F));
  }
}

namespace {
// The run of `runs` (sorted, disjoint) holding `cp`; null where none does.
template <class Run>
const Run* find_run(const Run* runs, size_t n, char32_t cp) {
  const Run* end = runs + n;
  const Run* it = std::upper_bound(runs, end, cp, [](char32_t v, const Run& r) { return v < r.first; });
  return it != runs && cp <= (it - 1)->last ? it - 1 : nullptr;
}
}  // namespace

Category category(char32_t cp) {
  if (cp < 0x80) {  // (most text: a table of its own)
    static const Category* ascii = [] {
      static Category t[0x80];
      for (char32_t c = 0; c < 0x80; ++c) t[c] = find_run(kCategoryRuns, kCategoryRunCount, c)->category;
      return t;
    }();
    return ascii[cp];
  }
  const CategoryRun* r = find_run(kCategoryRuns, kCategoryRunCount, cp);
  return r ? r->category : Cn;
}

namespace {
const char* const kNames[] = {"Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps",
                              "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"};
}  // namespace

char major(Category c) { return kNames[c][0]; }

Category category_named(const std::string& name, bool& ok) {
  for (size_t k = 0; k < sizeof(kNames) / sizeof(kNames[0]); ++k)
    if (name == kNames[k]) {
      ok = true;
      return Category(k);
    }
  ok = false;
  return Cn;
}

bool is_white_space(char32_t v) {
  return (v >= 0x09 && v <= 0x0D) || v == 0x20 || v == 0x85 || v == 0xA0 || v == 0x1680 || (v >= 0x2000 && v <= 0x200A) ||
         v == 0x2028 || v == 0x2029 || v == 0x202F || v == 0x205F || v == 0x3000;
}

namespace {

uint8_t combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  const ClassRun* r = find_run(kCombiningRuns, kCombiningRunCount, cp);
  return r ? r->ccc : 0;
}

// Hangul syllables decompose and compose by arithmetic (Unicode 15.0, section 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

// Appends the full canonical decomposition of `cp`, each part marked with `origin`.
void decompose(char32_t cp, size_t origin, std::u32string& out, std::vector<size_t>& origins) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t s = cp - kSBase;
    out += kLBase + s / kNCount;
    out += kVBase + (s % kNCount) / kTCount;
    origins.insert(origins.end(), 2, origin);
    if (s % kTCount != 0) {
      out += kTBase + s % kTCount;
      origins.push_back(origin);
    }
    return;
  }
  const Decomposition* end = kDecompositions + kDecompositionCount;
  const Decomposition* d =
      std::lower_bound(kDecompositions, end, cp, [](const Decomposition& e, char32_t v) { return e.point < v; });
  if (d == end || d->point != cp) {
    out += cp;
    origins.push_back(origin);
    return;
  }
  decompose(d->first, origin, out, origins);
  if (d->second) decompose(d->second, origin, out, origins);
}

// The primary composite of a + b; 0 where there is none.
char32_t compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  const Composition* end = kCompositions + kCompositionCount;
  const Composition* c = std::lower_bound(kCompositions, end, std::make_pair(a, b), [](const Composition& e, const auto& k) {
    return e.first != k.first ? e.first < k.first : e.second < k.second;
  });
  return c != end && c->first == a && c->second == b ? c->composite : 0;
}

}  // namespace

Normalized nfc(const std::string& text) {
  Normalized out;
  // (text below U+0300 is already NFC: no character there decomposes or composes)
  if (std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0xCC; })) {
    out.text = text;
    out.origin.resize(text.size());
    for (size_t i = 0; i < text.size(); ++i) out.origin[i] = i;
    return out;
  }
  const Points p = decode(text);
  std::u32string d;
  std::vector<size_t> origins;
  for (size_t i = 0; i < p.cps.size(); ++i) decompose(p.cps[i], p.starts[i], d, origins);
  // Canonical order: each run of non-starters sorted by combining class, stably.
  std::vector<uint8_t> cls(d.size());
  for (size_t i = 0; i < d.size(); ++i) cls[i] = combining_class(d[i]);
  for (size_t i = 0; i < d.size();) {
    size_t j = i;
    while (j < d.size() && cls[j] != 0) ++j;
    if (j - i > 1) {
      struct Mark {
        uint8_t cls;
        char32_t cp;
        size_t origin;
      };
      std::vector<Mark> run;
      for (size_t k = i; k < j; ++k) run.push_back({cls[k], d[k], origins[k]});
      std::stable_sort(run.begin(), run.end(), [](const Mark& a, const Mark& b) { return a.cls < b.cls; });
      for (size_t k = i; k < j; ++k) cls[k] = run[k - i].cls, d[k] = run[k - i].cp, origins[k] = run[k - i].origin;
    }
    i = j == i ? i + 1 : j;
  }
  // Composition: a character joins the last starter unless something between them is blocking it
  // (a starter, or a class at least its own).
  std::u32string c;
  std::vector<size_t> corigins;
  long starter = -1;
  uint8_t last = 0;  // the class of the last character kept after the starter
  for (size_t i = 0; i < d.size(); ++i) {
    const bool adjacent = starter >= 0 && size_t(starter) + 1 == c.size();
    if (starter >= 0 && (adjacent || (last != 0 && last < cls[i]))) {
      if (const char32_t composite = compose(c[size_t(starter)], d[i])) {
        c[size_t(starter)] = composite;
        continue;
      }
    }
    if (cls[i] == 0) starter = long(c.size());
    last = cls[i];
    c += d[i];
    corigins.push_back(origins[i]);
  }
  for (size_t i = 0; i < c.size(); ++i) {
    const size_t before = out.text.size();
    encode(c[i], out.text);
    out.origin.insert(out.origin.end(), out.text.size() - before, corigins[i]);
  }
  return out;
}

}  // namespace ftdist::data::unicode
