// Pre-tokenizer regular expressions (data/split_regex.h): a pattern is read into a tree, compiled
// into nodes that each know the node after them, and matched by backtracking over those nodes.
#include "split_regex.h"

#include <utility>
#include <vector>

#include "ftdist/core/check.h"
#include "ftdist/core/suggest.h"
#include "py_text.h"
#include "unicode.h"

namespace ftdist::data {
namespace {

using unicode::Category;

// One member of a character class: a range of code points, a set of general categories or
// White_Space, each possibly negated (\S, \P{L}).
struct Item {
  enum Kind { Range, Categories, Space } kind = Range;
  char32_t lo = 0, hi = 0;
  uint32_t categories = 0;  // bit c: unicode::Category c
  bool negate = false;
  bool match(char32_t c) const {
    const bool in = kind == Range ? (c >= lo && c <= hi)
                    : kind == Space ? unicode::is_white_space(c)
                                    : (categories >> unicode::category(c)) & 1u;
    return in != negate;
  }
};

struct CharSet {
  std::vector<Item> items;
  bool negate = false, fold = false;
  // Case-insensitive, a character also matches the literals and ranges through its simple case fold
  // (lower of upper: ſ -> s, K -> k) and that fold's upper case; \p{..} and \s do not fold, as in
  // Oniguruma.
  bool match(char32_t c) const {
    bool in = false;
    for (const Item& i : items) in = in || i.match(c);
    if (!in && fold) {
      const char32_t folded = py_text::case_of(py_text::case_of(c, true), false), upper = py_text::case_of(folded, true);
      for (const Item& i : items) in = in || (i.kind == Item::Range && (i.match(folded) || i.match(upper)));
    }
    return in != negate;
  }
};

enum Mode { Greedy, Lazy, Possessive };

// The pattern as read.
struct Ast {
  enum Kind { Set, Seq, Alt, Repeat, Look } kind = Seq;
  CharSet set;            // Set; Repeat of a single character or class
  std::vector<Ast> kids;  // Seq, Alt; Repeat of a group and Look: kids[0]
  size_t min = 1, max = 1;
  Mode mode = Greedy;
  bool negate = false;  // Look: (?!...)
};

constexpr size_t kUnbounded = size_t(-1);
constexpr size_t kMaxPattern = 4096;  // characters of a pattern
constexpr size_t kMaxDepth = 64;      // groups inside groups

class Parser {
 public:
  Parser(const std::string& pattern, const std::string& where) : where_(where), source_(pattern) {
    p_ = unicode::decode(pattern).cps;
  }

  Ast parse() {
    // (a pattern is matched by recursion over its nodes: real ones are a few hundred characters)
    if (p_.size() > kMaxPattern) fail("more than " + std::to_string(kMaxPattern) + " characters");
    bool fold = false;
    Ast a = alternation(fold);
    if (at_ < p_.size()) fail("an unmatched ')'");
    return a;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    std::ostringstream os;
    os << where_ << ": the pattern \"" << excerpt(source_, 200) << "\" has " << what << " at character " << at_
       << ", which ftdist's pre-tokenizer does not read (src/data/split_regex.h); tokenize with scripts/tokenize_hf.py instead";
    detail::raise(ErrorKind::BadInput, os.str(), "SplitRegex", "", __FILE__, __LINE__);
  }
  bool more() const { return at_ < p_.size(); }
  char32_t peek(size_t ahead = 0) const { return at_ + ahead < p_.size() ? p_[at_ + ahead] : 0; }
  bool eat(char32_t c) {
    if (peek() != c || !more()) return false;
    ++at_;
    return true;
  }

  Ast alternation(bool& fold) {
    Ast alt;
    alt.kind = Ast::Alt;
    alt.kids.push_back(sequence(fold));
    while (eat('|')) alt.kids.push_back(sequence(fold));
    if (alt.kids.size() == 1) return std::move(alt.kids[0]);
    return alt;
  }

  Ast sequence(bool& fold) {
    Ast seq;
    while (more() && peek() != '|' && peek() != ')') {
      // (?i) / (?-i): the rest of the group, its later alternatives included, as one group of its own
      // with the flag (Oniguruma reads a(?i)b|c as a(?i:b|c))
      const bool on = peek(2) == 'i' && peek(3) == ')', off = peek(2) == '-' && peek(3) == 'i' && peek(4) == ')';
      if (peek() == '(' && peek(1) == '?' && (on || off)) {
        at_ += on ? 4 : 5;
        bool flag = on;
        seq.kids.push_back(alternation(flag));
        return seq;
      }
      Ast a = atom(fold);
      quantifier(a);
      seq.kids.push_back(std::move(a));
    }
    return seq;
  }

  Ast atom(bool fold) {
    const char32_t c = peek();
    if (c == '(') return group(fold);
    if (c == '?' || c == '*' || c == '+') fail("a quantifier with nothing to repeat");
    if (c == '^' || c == '$') fail("an anchor");
    Ast a;
    a.kind = Ast::Set;
    a.set.fold = fold;
    if (eat('[')) {
      cls(a.set);
    } else if (eat('.')) {
      a.set.negate = true;
      a.set.items.push_back({Item::Range, '\n', '\n'});
    } else if (eat('\\')) {
      escape(a.set.items, false);
    } else {
      ++at_;
      a.set.items.push_back({Item::Range, c, c});
    }
    return a;
  }

  Ast group(bool fold) {
    ++at_;  // '('
    if (++depth_ > kMaxDepth) fail("groups nested more than " + std::to_string(kMaxDepth) + " deep");
    Ast g;
    bool inner = fold;
    if (eat('?')) {
      if (eat(':')) {
      } else if (peek() == 'i' && peek(1) == ':') {
        at_ += 2;
        inner = true;
      } else if (peek() == '-' && peek(1) == 'i' && peek(2) == ':') {
        at_ += 3;
        inner = false;
      } else if (peek() == '=' || peek() == '!') {
        g.kind = Ast::Look;
        g.negate = peek() == '!';
        ++at_;
      } else {
        fail("a group kind other than (?:, (?i:, (?=, (?!");
      }
    }
    Ast body = alternation(inner);
    if (!eat(')')) fail("an unclosed '('");
    --depth_;
    if (g.kind != Ast::Look) return body;
    g.kids.push_back(std::move(body));
    return g;
  }

  // After an atom: ? * + {n} {n,} {,m} {n,m}, as Oniguruma's Ruby syntax reads them: ? * + then ?
  // (lazy) or + (possessive); {n,m} then ? (lazy); but {n}? is ({n})? and {n,m}+ is ({n,m})+.
  void quantifier(Ast& a) {
    size_t lo = 1, hi = 1;
    const size_t mark = at_;
    const bool count = peek() == '{';
    if (eat('?')) {
      lo = 0;
    } else if (eat('*')) {
      lo = 0, hi = kUnbounded;
    } else if (eat('+')) {
      hi = kUnbounded;
    } else if (eat('{')) {
      if (!counted(lo, hi)) {  // not a count: '{' is a literal, as in Oniguruma
        at_ = mark;
        return;
      }
    } else {
      return;
    }
    if (count && lo == hi && peek() == '?') {  // {n}?: the n-fold repeat, optional
      ++at_;
      repeat(a, lo, hi, Greedy);
      repeat(a, 0, 1, Greedy);
      return;
    }
    if (count && eat('+')) {  // {n,m}+: the count repeated; x{0,m}+ is x*, x{1,m}+ is x+
      if (lo > 1 && hi != kUnbounded) fail("{n,m}+ with n above 1 (a repeated count)");
      hi = kUnbounded;
    }
    const Mode mode = eat('?') ? Lazy : !count && eat('+') ? Possessive : Greedy;
    repeat(a, lo, hi, mode);
  }

  // `a` made a repeat: of a character or class, any count; of a group, once or at most once.
  void repeat(Ast& a, size_t lo, size_t hi, Mode mode) {
    if (a.kind == Ast::Look) fail("a quantifier on a lookahead");
    if (lo == 1 && hi == 1 && mode != Possessive) return;
    if (a.kind != Ast::Set && !(lo == 0 && hi == 1 && mode != Possessive))
      fail("a repeated group (only '?' may follow a group)");
    Ast r;
    r.kind = Ast::Repeat;
    r.min = lo, r.max = hi, r.mode = mode;
    if (a.kind == Ast::Set) r.set = std::move(a.set);
    else r.kids.push_back(std::move(a));
    a = std::move(r);
  }

  bool counted(size_t& lo, size_t& hi) {
    auto number = [&](size_t& v) {
      const size_t start = at_;
      v = 0;
      while (peek() >= '0' && peek() <= '9' && more()) v = v * 10 + (p_[at_++] - '0');
      return at_ > start;
    };
    const bool low = number(lo);  // {,m}: from 0
    hi = lo;
    if (eat(',')) {
      if (!number(hi)) {
        if (!low) return false;  // "{,}" is no count
        hi = kUnbounded;
      }
    } else if (!low) {
      return false;
    }
    if (!eat('}')) return false;
    if (hi < lo) fail("a count {n,m} with m below n");
    return true;
  }

  // [...]: members until ']'; a ']' first is a member.
  void cls(CharSet& set) {
    set.negate = eat('^');
    bool first = true;
    while (true) {
      if (!more()) fail("an unclosed '['");
      if (peek() == ']' && !first) break;
      first = false;
      if (peek() == '[') fail("a nested class or POSIX bracket");
      if (peek() == '&' && peek(1) == '&') fail("a class intersection");
      char32_t lo = 0;
      if (eat('\\')) {
        if (!escape(set.items, true)) {  // a shorthand (\s, \p{..}): a member of its own, no range's end
          if (peek() == '-' && peek(1) != ']') fail("a range starting at a class shorthand");
          continue;
        }
        lo = set.items.back().lo;
        set.items.pop_back();
      } else {
        lo = p_[at_++];
      }
      char32_t hi = lo;
      if (peek() == '-' && peek(1) != ']' && at_ + 1 < p_.size()) {
        ++at_;
        if (eat('\\')) {
          if (!escape(set.items, true)) fail("a range ending in a class shorthand");
          hi = set.items.back().hi;
          set.items.pop_back();
        } else {
          hi = p_[at_++];
        }
        if (hi < lo) fail("a range whose end is below its start");
      }
      set.items.push_back({Item::Range, lo, hi});
    }
    ++at_;  // ']'
  }

  // After a backslash: appends the member it stands for. True for a single character (a Range
  // lo == hi), false for a shorthand.
  bool escape(std::vector<Item>& items, bool in_class) {
    if (!more()) fail("a trailing backslash");
    const char32_t c = p_[at_++];
    auto categories = [&](std::initializer_list<Category> cs, bool negate) {
      Item i{Item::Categories};
      for (Category k : cs) i.categories |= 1u << k;
      i.negate = negate;
      items.push_back(i);
      return false;
    };
    auto single = [&](char32_t v) {
      items.push_back({Item::Range, v, v});
      return true;
    };
    switch (c) {
      case 's': case 'S': items.push_back({Item::Space, 0, 0, 0, c == 'S'}); return false;
      case 'd': case 'D': return categories({unicode::Nd}, c == 'D');
      case 'w': case 'W':
        return categories({unicode::Lu, unicode::Ll, unicode::Lt, unicode::Lm, unicode::Lo, unicode::Mn, unicode::Mc,
                           unicode::Me, unicode::Nd, unicode::Nl, unicode::No, unicode::Pc},
                          c == 'W');
      case 'p': case 'P': property(items, c == 'P'); return false;
      case 'r': return single('\r');
      case 'n': return single('\n');
      case 't': return single('\t');
      case 'f': return single('\f');
      case 'v': return single('\v');
      case 'e': return single(0x1B);
      case 'a': return single(0x07);
      case 'x': return single(hex(peek() == '{' ? 8 : 2, peek() == '{'));
      case 'u': return single(hex(4, false));
      default: break;
    }
    if (c < 0x80 && ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) {
      --at_;
      fail(std::string("the escape \\") + char(c) + (in_class ? " in a class" : "") +
           " (an anchor, backreference or escape it does not know)");
    }
    return single(c);  // an escaped punctuation character stands for itself
  }

  char32_t hex(size_t digits, bool braced) {
    if (braced) ++at_;
    char32_t v = 0;
    size_t n = 0;
    for (; n < digits && more(); ++n) {
      const char32_t h = peek();
      const int d = h >= '0' && h <= '9' ? int(h - '0') : h >= 'a' && h <= 'f' ? int(h - 'a' + 10) : h >= 'A' && h <= 'F' ? int(h - 'A' + 10) : -1;
      if (d < 0) break;
      v = v * 16 + char32_t(d);
      ++at_;
    }
    if (n == 0 || (braced && !eat('}')) || (!braced && n != digits)) fail("a malformed hexadecimal escape");
    return v;
  }

  // \p{Name}, \p{^Name}, \pL: a general category or its major class.
  void property(std::vector<Item>& items, bool negate) {
    std::string name;
    if (eat('{')) {
      if (eat('^')) negate = !negate;
      while (more() && peek() != '}') name += char(p_[at_++] & 0x7F);
      if (!eat('}')) fail("an unclosed \\p{");
    } else if (more()) {
      name = char(p_[at_++] & 0x7F);
    }
    static const std::pair<const char*, const char*> kLong[] = {{"Letter", "L"}, {"Mark", "M"},      {"Number", "N"},
                                                               {"Punctuation", "P"}, {"Symbol", "S"}, {"Separator", "Z"},
                                                               {"Other", "C"}};
    for (const auto& [l, s] : kLong)
      if (name == l) name = s;
    Item item{Item::Categories};
    item.negate = negate;
    bool ok = false;
    if (name.size() == 1) {
      for (int k = 0; k <= unicode::Co; ++k)
        if (unicode::major(Category(k)) == name[0]) item.categories |= 1u << k, ok = true;
    } else {
      item.categories = 1u << unicode::category_named(name, ok);
    }
    if (!ok)
      fail("the property \\p{" + name + "} (ftdist reads general categories, names case-sensitive: L, Lu, Ll, N, Nd, P, S, "
           "Z, M, C and the rest; not scripts or other properties)");
    items.push_back(item);
  }

  std::string where_, source_;
  std::u32string p_;
  size_t at_ = 0;
  size_t depth_ = 0;  // groups open
};

}  // namespace

// The compiled pattern: nodes that each hold the node after them.
struct SplitRegex::Program {
  struct Node {
    enum Kind { Set, Alt, Repeat, Look, Accept } kind = Accept;
    const Node* next = nullptr;
    CharSet set;
    std::vector<const Node*> branches;  // Alt
    size_t min = 1, max = 1;            // Repeat of `set`
    Mode mode = Greedy;
    const Node* body = nullptr;  // Look
    bool negate = false;
  };
  std::vector<std::unique_ptr<Node>> nodes;
  const Node* start = nullptr;
  std::string pattern, where;  // for the message when a search backtracks too long

  Node* add(Node::Kind kind, const Node* next) {
    nodes.push_back(std::make_unique<Node>());
    nodes.back()->kind = kind;
    nodes.back()->next = next;
    return nodes.back().get();
  }

  // `a` followed by `next`: its first node.
  const Node* compile(const Ast& a, const Node* next) {
    switch (a.kind) {
      case Ast::Set: {
        Node* n = add(Node::Set, next);
        n->set = a.set;
        return n;
      }
      case Ast::Seq:
        for (auto it = a.kids.rbegin(); it != a.kids.rend(); ++it) next = compile(*it, next);
        return next;
      case Ast::Alt: {
        Node* n = add(Node::Alt, next);
        for (const Ast& k : a.kids) n->branches.push_back(compile(k, next));
        return n;
      }
      case Ast::Repeat: {
        if (!a.kids.empty()) {  // a group, at most once: (body | nothing), or the other way when lazy
          Node* n = add(Node::Alt, next);
          const Node* body = compile(a.kids[0], next);
          n->branches = a.mode == Lazy ? std::vector<const Node*>{next, body} : std::vector<const Node*>{body, next};
          return n;
        }
        Node* n = add(Node::Repeat, next);
        n->set = a.set, n->min = a.min, n->max = a.max, n->mode = a.mode;
        return n;
      }
      case Ast::Look: {
        Node* n = add(Node::Look, next);
        n->body = compile(a.kids[0], add(Node::Accept, nullptr));
        n->negate = a.negate;
        return n;
      }
    }
    return next;
  }
};

namespace {
// The steps the searches of one text may take together: 2^28 and 64 per character of the text (Oniguruma, inside
// tokenizers, stops a match after 10^7 backtracks). A pattern that backtracks without end on some
// text (\s*[\r\n]+ alone, over a long run of spaces) is an error within seconds, not a hang.
size_t step_limit(size_t text_size) { return (size_t(1) << 28) + 64 * text_size; }

// One attempt at matching: the text and where the match ended.
struct Matcher {
  using Node = SplitRegex::Program::Node;
  const std::u32string& t;
  size_t end = 0;
  size_t steps = 0;  // nodes tried and characters scanned by this search, against `limit`
  size_t limit = step_limit(t.size());

  bool match(const Node* n, size_t pos) {
    if (++steps > limit) return false;
    switch (n->kind) {
      case Node::Accept:
        end = pos;
        return true;
      case Node::Set:
        return pos < t.size() && n->set.match(t[pos]) && match(n->next, pos + 1);
      case Node::Alt:
        for (const Node* b : n->branches)
          if (match(b, pos)) return true;
        return false;
      case Node::Look: {
        const size_t kept = end;
        const bool found = match(n->body, pos);
        end = kept;
        return found != n->negate && match(n->next, pos);
      }
      case Node::Repeat: {
        if (n->mode == Lazy) {  // the shortest first, the run read only as far as it is tried
          for (size_t j = 0;; ++j, ++steps) {
            if (j >= n->min && match(n->next, pos + j)) return true;
            if (j >= n->max || pos + j >= t.size() || !n->set.match(t[pos + j])) return false;
          }
        }
        size_t k = 0;  // the longest run of the set here
        while (k < n->max && pos + k < t.size() && n->set.match(t[pos + k])) ++k;
        steps += k;
        if (k < n->min) return false;
        if (n->mode == Possessive) return match(n->next, pos + k);
        for (size_t j = k + 1; j-- > n->min;)
          if (match(n->next, pos + j)) return true;
        return false;
      }
    }
    return false;
  }
};
}  // namespace

SplitRegex::SplitRegex(const std::string& pattern, const std::string& where) : p_(std::make_unique<Program>()) {
  const Ast ast = Parser(pattern, where).parse();
  p_->start = p_->compile(ast, p_->add(Program::Node::Accept, nullptr));
  p_->pattern = pattern, p_->where = where;
}

SplitRegex::~SplitRegex() = default;
SplitRegex::SplitRegex(SplitRegex&&) noexcept = default;

bool SplitRegex::find(const std::u32string& text, size_t from, size_t& begin, size_t& end, size_t& steps) const {
  Matcher m{text};
  m.steps = steps;
  struct Keep {  // (the steps taken go back to the caller however the search ends)
    Matcher& m;
    size_t& steps;
    ~Keep() { steps = m.steps; }
  } keep{m, steps};
  for (size_t s = from; s <= text.size(); ++s) {
    const bool found = m.match(p_->start, s);
    FT_CHECK_ARG(m.steps <= m.limit, p_->where << ": the pattern \"" << excerpt(p_->pattern, 200) << "\" backtracks more than " << m.limit
                                               << " steps searching a text of " << text.size()
                                               << " characters: it cannot split such text in reasonable time");
    if (found) {
      begin = s, end = m.end;
      return true;
    }
  }
  return false;
}

}  // namespace ftdist::data
