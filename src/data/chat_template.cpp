// Chat templates (data/chat_template.h): a lexer that applies Jinja's whitespace rules, a parser to a
// tree of statements and expressions, and an evaluator over JSON values.
#include "ftdist/data/chat_template.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <vector>

#include "ftdist/core/check.h"
#include "py_text.h"
#include "unicode.h"

namespace ftdist::data {

using json = nlohmann::ordered_json;  // dicts keep their keys in order, as Python's do

namespace {

// What a template may do, so that a hostile or broken one (a model directory is someone else's
// file) ends in an error naming it rather than a crash, a hang or the host's memory exhausted:
constexpr int kMaxExprDepth = 128;              // an expression's tree, and its parentheses
constexpr int kMaxBlockDepth = 64;              // if / for blocks inside each other
constexpr int64_t kMaxSteps = 2'000'000;        // statements run and loop iterations, per rendering
constexpr size_t kMaxBytes = size_t(1) << 26;   // a string, and the rendered text (64 MiB)
constexpr size_t kMaxItems = size_t(1) << 20;   // a list (range(), +)

// A value: JSON, or Jinja's `undefined` (a missing variable, key or attribute).
struct Value {
  json v;
  bool undefined = false;
  static Value undef() { return Value{json(), true}; }
};

bool truthy(const Value& x) {
  if (x.undefined || x.v.is_null()) return false;
  if (x.v.is_boolean()) return x.v.get<bool>();
  if (x.v.is_number()) return x.v.get<double>() != 0;
  if (x.v.is_string()) return !x.v.get_ref<const std::string&>().empty();  // (json::empty() is false for every string)
  if (x.v.is_array() || x.v.is_object()) return !x.v.empty();
  return true;
}

// repr() of a Python float: the shortest digits that read back as `d`, in fixed notation for
// exponents -4..15 (with ".0" when whole), else as 1.5e-07 / 1e+16.
std::string py_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof(buf), std::fabs(d), std::chars_format::scientific);
  const std::string sci(buf, r.ptr);  // "3.333333333333333e-01": the shortest round-trip digits
  const size_t e = sci.find('e');
  const int exp = std::stoi(sci.substr(e + 1));
  std::string digits;
  for (size_t i = 0; i < e; ++i)
    if (sci[i] != '.') digits += sci[i];
  std::string out;
  if (exp >= 16 || exp < -4) {
    out = digits.substr(0, 1) + (digits.size() > 1 ? "." + digits.substr(1) : "") + (exp < 0 ? "e-" : "e+") +
          (std::abs(exp) < 10 ? "0" : "") + std::to_string(std::abs(exp));
  } else if (exp >= 0) {
    const size_t whole = size_t(exp) + 1;
    if (digits.size() < whole) digits.append(whole - digits.size(), '0');
    out = digits.substr(0, whole) + "." + (digits.size() > whole ? digits.substr(whole) : "0");
  } else {
    out = "0." + std::string(size_t(-exp - 1), '0') + digits;
  }
  return (d < 0 ? "-" : "") + out;
}

std::string py_repr(const json& v);

// What str() gives in Python (how {{ }} and `~` print a value).
std::string py_str(const Value& x) {
  if (x.undefined) return "";
  const json& v = x.v;
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "None";
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  if (v.is_number_integer() || v.is_number_unsigned()) return v.dump();
  if (v.is_number_float()) return py_float(v.get<double>());
  return py_repr(v);
}

// repr() of a Python str: in single quotes, or double ones where it holds ' and no "; \\, \\t, \\n,
// \\r and the quote escaped, characters Python does not print (controls, format characters,
// separators but the space, unassigned ones) as \\xNN, \\uNNNN or \\UNNNNNNNN.
std::string py_str_repr(const std::string& text) {
  const char quote = text.find('\'') != std::string::npos && text.find('"') == std::string::npos ? '"' : '\'';
  std::string s(1, quote);
  for (char32_t cp : unicode::decode(text).cps) {
    const unicode::Category cat = unicode::category(cp);
    const bool printable = cp == ' ' || !(cat == unicode::Cc || cat == unicode::Cf || cat == unicode::Cs || cat == unicode::Co ||
                                          cat == unicode::Cn || cat == unicode::Zl || cat == unicode::Zp || cat == unicode::Zs);
    char buf[16];
    if (cp == char32_t(quote) || cp == '\\') s += '\\', s += char(cp);
    else if (cp == '\t' || cp == '\n' || cp == '\r') s += cp == '\t' ? "\\t" : cp == '\n' ? "\\n" : "\\r";
    else if (printable && cp != 0x7f) unicode::encode(cp, s);
    else {
      std::snprintf(buf, sizeof(buf), cp <= 0xff ? "\\x%02x" : cp <= 0xffff ? "\\u%04x" : "\\U%08x", unsigned(cp));
      s += buf;
    }
  }
  return s + quote;
}

std::string py_repr(const json& v) {
  if (v.is_string()) return py_str_repr(v.get<std::string>());
  if (v.is_array()) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + py_repr(v[i]);
    return s + "]";
  }
  if (v.is_object()) {
    std::string s = "{";
    bool first = true;
    for (auto it = v.begin(); it != v.end(); ++it, first = false) s += (first ? "" : ", ") + py_repr(json(it.key())) + ": " + py_repr(*it);
    return s + "}";
  }
  return py_str(Value{v});
}

// json.dumps(v, ensure_ascii=False) as Transformers' tojson filter writes it (", " and ": ").
std::string py_json(const json& v, int indent, int depth = 0) {
  const std::string nl = indent > 0 ? "\n" + std::string(size_t(indent * (depth + 1)), ' ') : "";
  const std::string close = indent > 0 ? "\n" + std::string(size_t(indent * depth), ' ') : "";
  if (v.is_array() || v.is_object()) {
    if (v.empty()) return v.is_array() ? "[]" : "{}";
    std::string s = v.is_array() ? "[" : "{";
    bool first = true;
    for (auto it = v.begin(); it != v.end(); ++it, first = false) {
      s += (first ? "" : indent > 0 ? "," : ", ") + nl;
      if (v.is_object()) s += json(it.key()).dump(-1, ' ', false, json::error_handler_t::replace) + ": ";
      s += py_json(*it, indent, depth + 1);
    }
    return s + close + (v.is_array() ? "]" : "}");
  }
  if (v.is_number_float()) {  // (json.dumps writes NaN and Infinity for what repr() calls nan and inf)
    const double d = v.get<double>();
    return std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : py_float(d);
  }
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

// ---- lexing: the template as text, {{ expressions }} and {% statements %} ----------------------

struct Segment {
  enum Kind { Text, Expr, Stmt } kind;
  std::string body;
  int line;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

const char* const kFloorDiv = "/\x2f";  // "//", Python's floor division (spelled so that it reads as no comment)

// Jinja's rules as Transformers configures them: `-` strips the whitespace on its side; block tags
// (not expressions) drop the newline after them (trim_blocks) and the spaces before them on their
// line (lstrip_blocks); comments are dropped like blocks.
std::vector<Segment> lex(const std::string& src, const std::string& origin) {
  std::vector<Segment> out;
  size_t pos = 0;
  bool strip_next = false, trim_next = false;
  auto line_of = [&](size_t p) { return 1 + int(std::count(src.begin(), src.begin() + long(p), '\n')); };
  while (pos <= src.size()) {
    size_t open = src.find('{', pos);
    while (open != std::string::npos && open + 1 < src.size() && src[open + 1] != '{' && src[open + 1] != '%' && src[open + 1] != '#')
      open = src.find('{', open + 1);
    if (open != std::string::npos && open + 1 >= src.size()) open = std::string::npos;
    std::string text = src.substr(pos, open == std::string::npos ? std::string::npos : open - pos);
    if (strip_next) text.erase(0, std::min(text.size(), text.find_first_not_of(" \t\r\n")));
    else if (trim_next && !text.empty() && text[0] == '\n') text.erase(0, 1);
    else if (trim_next && text.rfind("\r\n", 0) == 0) text.erase(0, 2);
    if (open == std::string::npos) {
      if (!text.empty()) out.push_back({Segment::Text, text, line_of(pos)});
      break;
    }
    const char kind = src[open + 1];
    const bool minus_left = open + 2 < src.size() && src[open + 2] == '-';
    const bool plus_left = open + 2 < src.size() && src[open + 2] == '+';
    if (minus_left) {
      while (!text.empty() && is_space(text.back())) text.pop_back();
    } else if (kind != '{' && !plus_left) {  // lstrip_blocks: only spaces between the line's start (in the source) and the tag
      const bool line_start = pos == 0 || src.find('\n', pos) < open;
      const size_t nl = text.find_last_of('\n');
      const size_t from = nl == std::string::npos ? 0 : nl + 1;
      if (line_start && text.find_first_not_of(" \t", from) == std::string::npos) text.erase(from);
    }
    if (!text.empty()) out.push_back({Segment::Text, text, line_of(pos)});
    const std::string closer = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
    size_t end = open + 2;
    char quote = 0;
    int depth = 0;  // open brackets: as Jinja's lexer balances them, "}}" inside {'a': {'b': 1}} closes dicts
    for (; end + 1 < src.size(); ++end) {
      if (kind == '#') {
        if (src.compare(end, 2, closer) == 0) break;
      } else if (quote) {
        if (src[end] == '\\') ++end;
        else if (src[end] == quote) quote = 0;
      } else if (src[end] == '\'' || src[end] == '"') {
        quote = src[end];
      } else if (depth == 0 && src.compare(end, 2, closer) == 0) {
        break;
      } else if (src[end] == '(' || src[end] == '[' || src[end] == '{') {
        ++depth;
      } else if ((src[end] == ')' || src[end] == ']' || src[end] == '}') && depth > 0) {
        --depth;
      }
    }
    FT_CHECK_ARG(end + 1 < src.size(), origin << " (line " << line_of(open) << "): '" << src.substr(open, 2) << "' is never closed by '" << closer << "'");
    const bool minus_right = end > open + 2 && src[end - 1] == '-';
    std::string body = src.substr(open + 2 + (minus_left || plus_left ? 1 : 0), end - open - 2 - (minus_left || plus_left ? 1 : 0) - (minus_right ? 1 : 0));
    if (kind == '{') out.push_back({Segment::Expr, body, line_of(open)});
    else if (kind == '%') out.push_back({Segment::Stmt, body, line_of(open)});
    strip_next = minus_right;
    trim_next = kind != '{';
    pos = end + 2;
  }
  return out;
}

// ---- expression tokens ---------------------------------------------------------------------------

struct Token {
  enum Kind { Name, Number, String, Op, End } kind;
  std::string text;
  json number;
};

std::vector<Token> tokenize(const std::string& s, const std::function<std::string()>& where) {
  std::vector<Token> out;
  size_t i = 0;
  static const char* ops[] = {"==", "!=", "<=", ">=", kFloorDiv, "**", "<", ">", "+", "-", "*", "/", "%", "~", "|", ".", ",", ":", "(", ")", "[", "]", "{", "}", "="};
  while (i < s.size()) {
    const char c = s[i];
    if (is_space(c)) {
      ++i;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      out.push_back({Token::Name, s.substr(i, j - i), json()});
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '.' || s[j] == '_')) ++j;
      std::string t = s.substr(i, j - i);
      t.erase(std::remove(t.begin(), t.end(), '_'), t.end());
      json number;
      try {
        number = t.find('.') != std::string::npos ? json(std::stod(t)) : json(std::stoll(t));
      } catch (const std::exception&) {
        FT_CHECK_ARG(false, where() << ": the number '" << t << "' is out of range");
      }
      out.push_back({Token::Number, t, number});
      i = j;
    } else if (c == '\'' || c == '"') {
      std::string v;
      size_t j = i + 1;
      for (; j < s.size() && s[j] != c; ++j) {
        if (s[j] != '\\' || j + 1 >= s.size()) {
          v += s[j];
          continue;
        }
        const char e = s[++j];
        const size_t hex = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;  // \xHH, \uHHHH, \UHHHHHHHH: a code point
        if (hex > 0 && j + hex < s.size() &&
            std::all_of(s.begin() + long(j) + 1, s.begin() + long(j + hex) + 1, [](char h) { return std::isxdigit(static_cast<unsigned char>(h)) != 0; })) {
          v += py_text::utf8(char32_t(std::stoul(s.substr(j + 1, hex), nullptr, 16)));
          j += hex;
          continue;
        }
        v += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'f' ? '\f' : e == 'v' ? '\v' : e == 'b' ? '\b' : e == 'a' ? '\a'
           : e == '0' ? '\0' : e;
      }
      FT_CHECK_ARG(j < s.size(), where() << ": a string is never closed");
      out.push_back({Token::String, v, json()});
      i = j + 1;
    } else {
      bool found = false;
      for (const char* op : ops)
        if (s.compare(i, std::string(op).size(), op) == 0) {
          out.push_back({Token::Op, op, json()});
          i += std::string(op).size();
          found = true;
          break;
        }
      FT_CHECK_ARG(found, where() << ": unexpected character '" << c << "'");
    }
  }
  out.push_back({Token::End, "", json()});
  return out;
}

}  // namespace

// ---- the tree ------------------------------------------------------------------------------------

struct ChatTemplate::Impl {
  struct Expr;
  using ExprP = std::unique_ptr<Expr>;
  struct Expr {
    enum Kind { Literal, Var, Attr, Index, Slice, Call, Filter, Test, Unary, Binary, Cond, List, Dict } kind;
    std::string name;                 // variable, attribute, operator, filter or test
    json literal;
    std::vector<ExprP> args;          // operands, arguments, elements
    std::vector<std::string> kwnames;  // keyword arguments: the last kwnames.size() of args
    bool negate = false;               // `is not`
    int depth = 1;                     // of the tree below it (the parser keeps it under kMaxExprDepth)
  };
  struct Node;
  using NodeP = std::unique_ptr<Node>;
  using Body = std::vector<NodeP>;
  struct Node {
    enum Kind { Text, Output, If, For, Set, Break, Continue } kind;
    int line = 0;
    std::string text;                                  // Text
    ExprP expr;                                        // Output, For (iterable), Set (value)
    std::vector<std::pair<ExprP, Body>> branches;      // If: (condition, body); else: null condition
    std::vector<std::string> targets;                  // For: names; Set: name [, attribute]
    ExprP filter;                                      // For: `if` condition
    Body body, otherwise;                              // For
  };

  std::string origin;
  Body root;

  // The evaluation state: scopes of variables, and break / continue raised.
  struct Scope {
    std::vector<std::map<std::string, Value>> frames;
    int jump = 0;  // 1 break, 2 continue
    int64_t steps = 0;  // statements run and loop iterations so far (kMaxSteps)
  };
  Value eval(const Expr& e, Scope& s, int line) const;
  void run(const Body& body, Scope& s, std::string& out) const;
  void assign(const Node& n, Scope& s) const;                     // set
  void loop(const Node& n, Scope& s, std::string& out) const;     // for
  Value binary(const Expr& e, Scope& s, int line) const;
  std::optional<Value> compare(const std::string& op, const Value& a, const Value& b, int line) const;
  Value call(const Expr& e, Scope& s, int line) const;
  Value filter(const Expr& e, Scope& s, int line) const;
  Value method(const Value& self, const std::string& name, const std::vector<Value>& args, int line) const;
  bool test(const Expr& e, Scope& s, int line) const;
  bool test_value(const std::string& t, const Value& x, const std::optional<Value>& arg, int line) const;
  Value sequence_filter(const std::string& f, const Value& x, const std::vector<Value>& args, const std::optional<Value>& attribute,
                        const std::optional<Value>& fallback, int line) const;
  void step(Scope& s, int line) const {
    if (++s.steps > kMaxSteps)
      fail(line, "the template ran more than " + std::to_string(kMaxSteps) + " steps (statements and loop iterations)");
  }
  // A string or list past the limits above is an error here, before it grows further.
  Value bounded(Value v, int line) const {
    if (v.v.is_string() && v.v.get_ref<const std::string&>().size() > kMaxBytes) fail(line, "a string longer than 64 MiB");
    if (v.v.is_array() && v.v.size() > kMaxItems) fail(line, "a list of more than " + std::to_string(kMaxItems) + " items");
    return v;
  }
  [[noreturn]] void fail(int line, const std::string& msg) const {
    FT_CHECK_ARG(false, origin << " (line " << line << "): " << msg);
    std::abort();
  }
};

namespace {

using Impl = ChatTemplate::Impl;

// A recursive-descent parser over one tag's tokens, with Jinja's precedence.
class Parser {
 public:
  Parser(std::vector<Token> toks, std::function<std::string()> where) : t_(std::move(toks)), where_(std::move(where)) {}
  bool at(const char* op) const { return t_[i_].kind == Token::Op && t_[i_].text == op; }
  bool at_name(const char* n) const { return t_[i_].kind == Token::Name && t_[i_].text == n; }
  bool done() const { return t_[i_].kind == Token::End; }
  void expect(const char* op) {
    FT_CHECK_ARG(at(op), where_() << ": expected '" << op << "', got " << (done() ? std::string("the end") : "'" + t_[i_].text + "'"));
    ++i_;
  }
  std::string name() {
    FT_CHECK_ARG(t_[i_].kind == Token::Name, where_() << ": expected a name, got '" << t_[i_].text << "'");
    return t_[i_++].text;
  }
  void end() { FT_CHECK_ARG(done(), where_() << ": unexpected '" << t_[i_].text << "'"); }

  Impl::ExprP expression() {  // a if b else c
    Nested nested(*this);
    Impl::ExprP e = or_expr();
    if (at_name("if")) {
      ++i_;
      auto cond = node(Impl::Expr::Cond);
      cond->args.push_back(or_expr());
      cond->args.push_back(std::move(e));
      if (at_name("else")) {
        ++i_;
        cond->args.push_back(expression());
      }
      return sealed(std::move(cond));
    }
    return e;
  }
  Impl::ExprP or_expr() { return binary_level(0); }

 private:
  // The parser's own recursion (parentheses, `not`, unary signs), kept under kMaxExprDepth.
  struct Nested {
    explicit Nested(Parser& p) : p_(p) {
      FT_CHECK_ARG(++p_.nesting_ <= kMaxExprDepth, p_.where_() << ": an expression nested more than " << kMaxExprDepth << " deep");
    }
    ~Nested() { --p_.nesting_; }
    Parser& p_;
  };
  // A node whose operands are attached: its tree's depth, which evaluation recurses through.
  Impl::ExprP sealed(Impl::ExprP e) const {
    for (const Impl::ExprP& a : e->args)
      if (a) e->depth = std::max(e->depth, a->depth + 1);
    FT_CHECK_ARG(e->depth <= kMaxExprDepth, where_() << ": an expression nested more than " << kMaxExprDepth << " deep");
    return e;
  }
  static Impl::ExprP node(Impl::Expr::Kind k) {
    auto e = std::make_unique<Impl::Expr>();
    e->kind = k;
    return e;
  }
  Impl::ExprP binary(const std::string& op, Impl::ExprP a, Impl::ExprP b) const {
    auto e = node(Impl::Expr::Binary);
    e->name = op;
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return sealed(std::move(e));
  }
  // Levels: or, and, not, comparisons, ~, + -, * / // %, **, unary -, then postfix and filters.
  Impl::ExprP binary_level(int level) {
    switch (level) {
      case 0:
      case 1: {
        const char* op = level == 0 ? "or" : "and";
        Impl::ExprP e = binary_level(level + 1);
        while (at_name(op)) {
          ++i_;
          e = binary(op, std::move(e), binary_level(level + 1));
        }
        return e;
      }
      case 2:
        if (at_name("not")) {
          Nested nested(*this);
          ++i_;
          auto e = node(Impl::Expr::Unary);
          e->name = "not";
          e->args.push_back(binary_level(2));
          return sealed(std::move(e));
        }
        return binary_level(3);
      case 3: {  // a < b <= c: a chain, (a < b) and (b <= c) with b evaluated once, as in Python
        auto chain = node(Impl::Expr::Binary);
        chain->name = "chain";
        chain->args.push_back(binary_level(4));
        for (;;) {
          std::string op;
          if (at("==") || at("!=") || at("<") || at(">") || at("<=") || at(">=")) op = t_[i_++].text;
          else if (at_name("in")) op = "in", ++i_;
          else if (at_name("not") && t_[i_ + 1].kind == Token::Name && t_[i_ + 1].text == "in") op = "not in", i_ += 2;
          else break;
          chain->kwnames.push_back(op);  // (the operators between the operands)
          chain->args.push_back(binary_level(4));
        }
        if (chain->args.size() == 1) return std::move(chain->args[0]);
        if (chain->args.size() == 2) return binary(chain->kwnames[0], std::move(chain->args[0]), std::move(chain->args[1]));
        return sealed(std::move(chain));
      }
      default:
        return arithmetic(level);
    }
  }
  Impl::ExprP arithmetic(int level) {
    static const std::vector<std::vector<const char*>> ops = {{"~"}, {"+", "-"}, {"*", "/", kFloorDiv, "%"}, {"**"}};
    if (level - 4 >= int(ops.size())) return unary();
    Impl::ExprP e = arithmetic(level + 1);
    for (;;) {
      const char* found = nullptr;
      for (const char* op : ops[size_t(level - 4)])
        if (at(op)) found = op;
      if (!found) return e;
      ++i_;
      e = binary(found, std::move(e), arithmetic(level + 1));
    }
  }
  Impl::ExprP unary() {
    if (at("-") || at("+")) {
      Nested nested(*this);
      const std::string op = t_[i_++].text;
      auto e = node(Impl::Expr::Unary);
      e->name = op;
      e->args.push_back(unary());
      return sealed(std::move(e));
    }
    return postfix(primary());
  }
  void call_args(Impl::Expr& e) {  // after '(': positional, then name=value
    std::vector<Impl::ExprP> kw;
    while (!at(")")) {
      if (t_[i_].kind == Token::Name && t_[i_ + 1].kind == Token::Op && t_[i_ + 1].text == "=") {
        e.kwnames.push_back(t_[i_].text);
        i_ += 2;
        kw.push_back(expression());
      } else {
        FT_CHECK_ARG(kw.empty(), where_() << ": a positional argument after a keyword argument");
        e.args.push_back(expression());
      }
      if (!at(")")) expect(",");
    }
    ++i_;
    for (auto& k : kw) e.args.push_back(std::move(k));
  }
  Impl::ExprP postfix(Impl::ExprP e) {
    for (;;) {
      if (at(".")) {
        ++i_;
        auto a = node(Impl::Expr::Attr);
        a->name = name();
        a->args.push_back(std::move(e));
        e = std::move(a);
      } else if (at("[")) {
        ++i_;
        e = subscript(std::move(e));
      } else if (at("(")) {
        ++i_;
        auto c = node(Impl::Expr::Call);
        c->args.push_back(std::move(e));
        call_args(*c);
        e = std::move(c);
      } else if (at("|")) {
        ++i_;
        auto f = node(Impl::Expr::Filter);
        f->name = name();
        f->args.push_back(std::move(e));
        if (at("(")) {
          ++i_;
          call_args(*f);
        }
        e = std::move(f);
      } else if (at_name("is")) {
        ++i_;
        auto t = node(Impl::Expr::Test);
        if (at_name("not")) ++i_, t->negate = true;
        t->name = name();
        t->args.push_back(std::move(e));
        if (at("(")) {
          ++i_;
          call_args(*t);
        } else if (t_[i_].kind == Token::Number || t_[i_].kind == Token::String) {
          t->args.push_back(primary());
        }
        e = std::move(t);
      } else {
        return e;
      }
      e = sealed(std::move(e));
    }
  }
  Impl::ExprP subscript(Impl::ExprP base) {  // after '[': index, or slice a:b:c
    std::vector<Impl::ExprP> parts(3);
    bool slice = false;
    for (int k = 0; k < 3; ++k) {
      if (!at(":") && !at("]")) parts[size_t(k)] = expression();
      if (at(":")) {
        ++i_;
        slice = true;
      } else {
        break;
      }
    }
    expect("]");
    auto e = node(slice ? Impl::Expr::Slice : Impl::Expr::Index);
    e->args.push_back(std::move(base));
    if (!slice) {
      FT_CHECK_ARG(parts[0] != nullptr, where_() << ": an empty subscript");
      e->args.push_back(std::move(parts[0]));
    } else {
      for (auto& p : parts) e->args.push_back(std::move(p));  // (null: omitted)
    }
    return e;
  }
  Impl::ExprP primary() {
    const Token& t = t_[i_];
    if (t.kind == Token::Number || t.kind == Token::String) {
      auto e = node(Impl::Expr::Literal);
      e->literal = t.kind == Token::Number ? t.number : json(t.text);
      ++i_;
      while (t.kind == Token::String && t_[i_].kind == Token::String) e->literal = e->literal.get<std::string>() + t_[i_++].text;
      return e;
    }
    if (t.kind == Token::Name) {
      ++i_;
      auto e = node(Impl::Expr::Literal);
      if (t.text == "true" || t.text == "True") e->literal = true;
      else if (t.text == "false" || t.text == "False") e->literal = false;
      else if (t.text == "none" || t.text == "None") e->literal = nullptr;
      else e->kind = Impl::Expr::Var, e->name = t.text;
      return e;
    }
    if (at("(")) {
      ++i_;
      Impl::ExprP e = expression();
      if (at(",")) {  // a tuple: a list here
        auto l = node(Impl::Expr::List);
        l->args.push_back(std::move(e));
        while (at(",")) {
          ++i_;
          if (at(")")) break;
          l->args.push_back(expression());
        }
        e = std::move(l);
      }
      expect(")");
      return sealed(std::move(e));
    }
    if (at("[") || at("{")) {
      const bool list = at("[");
      ++i_;
      auto e = node(list ? Impl::Expr::List : Impl::Expr::Dict);
      while (!at(list ? "]" : "}")) {
        e->args.push_back(expression());
        if (!list) {
          expect(":");
          e->args.push_back(expression());
        }
        if (!at(list ? "]" : "}")) expect(",");
      }
      ++i_;
      return sealed(std::move(e));
    }
    FT_CHECK_ARG(false, where_() << ": " << (t.kind == Token::End ? std::string("the expression ends too early") : "unexpected '" + t.text + "'"));
    return nullptr;
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  int nesting_ = 0;  // (Nested)
  std::function<std::string()> where_;
};

}  // namespace

namespace {

// Segments -> the statement tree. Each block statement reads its body up to its closing tag.
class TreeBuilder {
 public:
  TreeBuilder(const std::vector<Segment>& segs, const std::string& origin) : segs_(segs), origin_(origin) {}

  Impl::Body parse_all() {
    Impl::Body body = parse_body({});
    if (i_ < segs_.size()) fail(segs_[i_].line, "'" + first_word(segs_[i_]) + "' without its block");
    return body;
  }

 private:
  static std::string first_word(const Segment& s) {
    const size_t a = s.body.find_first_not_of(" \t\r\n");
    if (a == std::string::npos) return "";
    const size_t b = s.body.find_first_of(" \t\r\n", a);
    return s.body.substr(a, b == std::string::npos ? std::string::npos : b - a);
  }
  [[noreturn]] void fail(int line, const std::string& msg) const {
    FT_CHECK_ARG(false, origin_ << " (line " << line << "): " << msg);
    std::abort();
  }
  Parser parser(const Segment& s, size_t skip_chars) const {
    const std::string text = s.body.substr(skip_chars);
    const std::string where = origin_ + " (line " + std::to_string(s.line) + ")";
    return Parser(tokenize(text, [where] { return where; }), [where] { return where; });
  }
  // Statements until one whose first word is in `stops` (left for the caller) or the end.
  Impl::Body parse_body(const std::vector<std::string>& stops) {
    Impl::Body body;
    while (i_ < segs_.size()) {
      const Segment& s = segs_[i_];
      auto n = std::make_unique<Impl::Node>();
      n->line = s.line;
      if (s.kind == Segment::Text) {
        n->kind = Impl::Node::Text, n->text = s.body, ++i_;
      } else if (s.kind == Segment::Expr) {
        Parser p = parser(s, 0);
        n->kind = Impl::Node::Output, n->expr = p.expression(), p.end(), ++i_;
      } else {
        const std::string w = first_word(s);
        if (std::find(stops.begin(), stops.end(), w) != stops.end()) return body;
        n = statement(s, w);
        if (!n) continue;  // (generation markers)
      }
      body.push_back(std::move(n));
    }
    if (!stops.empty()) fail(segs_.empty() ? 1 : segs_.back().line, "the template ends before '" + stops.back() + "'");
    return body;
  }
  Impl::NodeP statement(const Segment& s, const std::string& w) {
    if ((w == "if" || w == "for") && blocks_ >= kMaxBlockDepth)
      fail(s.line, "blocks nested more than " + std::to_string(kMaxBlockDepth) + " deep");
    struct Block {
      int& n;
      ~Block() { --n; }
    } block{++blocks_};
    const size_t skip = s.body.find(w) + w.size();
    auto n = std::make_unique<Impl::Node>();
    n->line = s.line;
    ++i_;
    if (w == "if") {
      n->kind = Impl::Node::If;
      Parser p = parser(s, skip);
      Impl::ExprP cond = p.expression();
      p.end();
      for (;;) {
        Impl::Body b = parse_body({"elif", "else", "endif"});
        n->branches.push_back({std::move(cond), std::move(b)});
        const Segment& stop = segs_[i_++];
        const std::string sw = first_word(stop);
        if (sw == "endif") break;
        if (sw == "else") {
          n->branches.push_back({nullptr, parse_body({"endif"})});
          ++i_;
          break;
        }
        Parser q = parser(stop, stop.body.find("elif") + 4);
        cond = q.expression();
        q.end();
      }
    } else if (w == "for") {
      n->kind = Impl::Node::For;
      Parser p = parser(s, skip);
      n->targets.push_back(p.name());
      while (p.at(",")) p.expect(","), n->targets.push_back(p.name());
      FT_CHECK_ARG(p.at_name("in"), origin_ << " (line " << s.line << "): expected 'in' in the for loop");
      p.name();
      n->expr = p.or_expr();
      if (p.at_name("if")) p.name(), n->filter = p.or_expr();
      p.end();
      n->body = parse_body({"else", "endfor"});
      if (first_word(segs_[i_++]) == "else") n->otherwise = parse_body({"endfor"}), ++i_;
    } else if (w == "set") {
      n->kind = Impl::Node::Set;
      Parser p = parser(s, skip);
      n->targets.push_back(p.name());
      if (p.at(".")) p.expect("."), n->targets.push_back(p.name());
      if (!p.at("=")) fail(s.line, "only `set name = value` (and `set ns.attr = value`) is supported");
      p.expect("=");
      n->expr = p.expression();
      p.end();
    } else if (w == "break" || w == "continue") {
      n->kind = w == "break" ? Impl::Node::Break : Impl::Node::Continue;
    } else if (w == "generation" || w == "endgeneration") {
      return nullptr;  // Transformers' marker of assistant text: its content renders as is
    } else if (w == "endif" || w == "endfor" || w == "elif" || w == "else") {
      fail(s.line, "'{% " + w + " %}' without its block");
    } else {
      fail(s.line, "'{% " + w + " %}' is not supported in chat templates here");
    }
    return n;
  }

  const std::vector<Segment>& segs_;
  const std::string& origin_;
  size_t i_ = 0;
  int blocks_ = 0;  // if / for blocks open around the statement being read
};

}  // namespace

ChatTemplate::ChatTemplate(const std::string& source, const std::string& origin) : impl_(std::make_unique<Impl>()) {
  impl_->origin = origin;
  impl_->root = TreeBuilder(lex(source, origin), impl_->origin).parse_all();
}
ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

std::string ChatTemplate::render(const json& context) const {
  FT_CHECK_ARG(context.is_object(), impl_->origin << ": the context must be an object");
  Impl::Scope s;
  s.frames.emplace_back();
  for (auto it = context.begin(); it != context.end(); ++it) s.frames.back()[it.key()] = Value{*it};
  std::string out;
  impl_->run(impl_->root, s, out);
  return out;
}

// ---- evaluation ----------------------------------------------------------------------------------

void Impl::assign(const Node& n, Scope& s) const {
  const Value v = eval(*n.expr, s, n.line);
  if (n.targets.size() == 1) {
    s.frames.back()[n.targets[0]] = v;
    return;
  }
  for (auto f = s.frames.rbegin(); f != s.frames.rend(); ++f) {  // ns.attr = value: the namespace, wherever it is
    auto it = f->find(n.targets[0]);
    if (it == f->end()) continue;
    if (!it->second.v.is_object()) fail(n.line, "'" + n.targets[0] + "' is not a namespace");
    it->second.v[n.targets[1]] = v.v;
    return;
  }
  fail(n.line, "'" + n.targets[0] + "' is undefined");
}

void Impl::loop(const Node& node, Scope& s, std::string& out) const {
  const Node* n = &node;  // (as the loop's own node)
  const Value seq = eval(*n->expr, s, n->line);
  std::vector<json> items;
  if (seq.v.is_array()) items.assign(seq.v.begin(), seq.v.end());
  else if (seq.v.is_object()) for (auto it = seq.v.begin(); it != seq.v.end(); ++it) items.push_back(it.key());
  else if (seq.v.is_string()) for (const std::string& c : py_text::code_points(seq.v.get<std::string>())) items.push_back(c);
  else if (!seq.undefined && !seq.v.is_null()) fail(n->line, "cannot loop over " + py_str(seq));
  auto bind = [&](const json& item) {
    if (n->targets.size() == 1) {
      s.frames.back()[n->targets[0]] = Value{item};
      return;
    }
    if (!item.is_array() || item.size() != n->targets.size()) fail(n->line, "cannot unpack " + py_repr(item));
    for (size_t k = 0; k < n->targets.size(); ++k) s.frames.back()[n->targets[k]] = Value{item[k]};
  };
  if (n->filter) {  // `for x in xs if cond`: the loop sees only what passes
    std::vector<json> kept;
    for (const json& item : items) {
      s.frames.emplace_back();
      bind(item);
      if (truthy(eval(*n->filter, s, n->line))) kept.push_back(item);
      s.frames.pop_back();
    }
    items.swap(kept);
  }
  const size_t len = items.size();
  for (size_t k = 0; k < len; ++k) {
    step(s, n->line);
    s.frames.emplace_back();
    bind(items[k]);
    json loop = {{"index", k + 1}, {"index0", k}, {"first", k == 0}, {"last", k + 1 == len}, {"length", len},
                 {"revindex", len - k}, {"revindex0", len - k - 1}};
    if (k > 0) loop["previtem"] = items[k - 1];  // (undefined on the first item, nextitem on the last, as in Jinja)
    if (k + 1 < len) loop["nextitem"] = items[k + 1];
    s.frames.back()["loop"] = Value{std::move(loop)};
    run(n->body, s, out);
    s.frames.pop_back();
    const int jump = s.jump;
    s.jump = 0;
    if (jump == 1) break;
  }
  if (len == 0) run(n->otherwise, s, out);
}


void Impl::run(const Body& body, Scope& s, std::string& out) const {
  for (const NodeP& n : body) {
    if (s.jump) return;
    step(s, n->line);
    switch (n->kind) {
      case Node::Text: out += n->text; break;
      case Node::Output: out += py_str(eval(*n->expr, s, n->line)); break;
      case Node::If:
        for (const auto& [cond, b] : n->branches)
          if (!cond || truthy(eval(*cond, s, n->line))) {
            run(b, s, out);
            break;
          }
        break;
      case Node::Set: assign(*n, s); break;
      case Node::Break: s.jump = 1; return;
      case Node::Continue: s.jump = 2; return;
      case Node::For: loop(*n, s, out); break;
    }
    if (out.size() > kMaxBytes) fail(n->line, "the rendered text grew past 64 MiB");
  }
}

namespace {

int64_t as_int(const Value& v, const std::function<void(const std::string&)>& fail) {
  if (v.v.is_number_integer() || v.v.is_number_unsigned()) return v.v.get<int64_t>();
  if (v.v.is_boolean()) return v.v.get<bool>() ? 1 : 0;
  fail("expected an integer, got " + py_repr(v.v));
  return 0;
}

// Python's slice of a list or a string.
json slice(const json& v, const std::optional<int64_t>& a, const std::optional<int64_t>& b, int64_t step) {
  const std::vector<std::string> points = v.is_string() ? py_text::code_points(v.get<std::string>()) : std::vector<std::string>();
  const int64_t n = int64_t(v.is_string() ? points.size() : v.size());
  auto clamp = [&](int64_t i, int64_t lo, int64_t hi) { return std::max(lo, std::min(hi, i < 0 ? i + n : i)); };
  std::vector<int64_t> idx;
  if (step > 0) {
    for (int64_t i = a ? clamp(*a, 0, n) : 0, e = b ? clamp(*b, 0, n) : n; i < e; i += step) idx.push_back(i);
  } else {
    for (int64_t i = a ? clamp(*a, -1, n - 1) : n - 1, e = b ? clamp(*b, -1, n - 1) : -1; i > e; i += step) idx.push_back(i);
  }
  if (v.is_string()) {
    std::string out;
    for (int64_t i : idx) out += points[size_t(i)];
    return out;
  }
  json out = json::array();
  for (int64_t i : idx) out.push_back(v[size_t(i)]);
  return out;
}

// Python's `a in container`: a substring, a list's item, a dict's key; false for anything else.
bool contains(const Value& container, const Value& a);

bool less(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() < b.get<double>();
  if (a.is_string() && b.is_string()) return a.get<std::string>() < b.get<std::string>();
  return false;
}

bool equal(const Value& a, const Value& b) {
  if (a.undefined || b.undefined) return a.undefined && b.undefined;
  // (Python's bool is a number: True == 1 == 1.0)
  auto number = [](const json& v) { return v.is_boolean() ? (v.get<bool>() ? 1.0 : 0.0) : v.get<double>(); };
  if ((a.v.is_number() || a.v.is_boolean()) && (b.v.is_number() || b.v.is_boolean()) && (a.v.is_number() || b.v.is_number()))
    return number(a.v) == number(b.v);
  return a.v == b.v;
}

bool contains(const Value& container, const Value& a) {
  const json& b = container.v;
  if (b.is_string() && a.v.is_string()) return b.get<std::string>().find(a.v.get<std::string>()) != std::string::npos;
  if (b.is_array()) return std::any_of(b.begin(), b.end(), [&](const json& x) { return equal(Value{x}, a); });
  return b.is_object() && a.v.is_string() && b.contains(a.v.get<std::string>());
}


}  // namespace

Value Impl::eval(const Expr& e, Scope& s, int line) const {
  auto bad = [&](const std::string& m) { fail(line, m); };
  switch (e.kind) {
    case Expr::Literal: return Value{e.literal};
    case Expr::Var:
      for (auto f = s.frames.rbegin(); f != s.frames.rend(); ++f) {
        auto it = f->find(e.name);
        if (it != f->end()) return it->second;
      }
      return Value::undef();
    case Expr::Attr: {
      const Value base = eval(*e.args[0], s, line);
      if (base.v.is_object() && base.v.contains(e.name)) return Value{base.v[e.name]};
      return Value::undef();
    }
    case Expr::Index: {
      const Value base = eval(*e.args[0], s, line), key = eval(*e.args[1], s, line);
      if (base.v.is_object()) {
        if (!key.v.is_string() || !base.v.contains(key.v.get<std::string>())) return Value::undef();
        return Value{base.v[key.v.get<std::string>()]};
      }
      if (base.v.is_array() || base.v.is_string()) {
        const std::vector<std::string> points = base.v.is_string() ? py_text::code_points(base.v.get<std::string>())
                                                                    : std::vector<std::string>();
        const int64_t n = int64_t(base.v.is_string() ? points.size() : base.v.size());
        int64_t i = as_int(key, bad);
        if (i < 0) i += n;
        if (i < 0 || i >= n) return Value::undef();
        return base.v.is_string() ? Value{points[size_t(i)]} : Value{base.v[size_t(i)]};
      }
      return Value::undef();
    }
    case Expr::Slice: {
      const Value base = eval(*e.args[0], s, line);
      std::optional<int64_t> p[3];
      for (int k = 0; k < 3; ++k)
        if (e.args[size_t(k) + 1]) {
          const Value v = eval(*e.args[size_t(k) + 1], s, line);
          if (!v.v.is_null()) p[k] = as_int(v, bad);
        }
      if (!base.v.is_array() && !base.v.is_string()) bad("cannot slice " + py_repr(base.v));
      if (p[2] && *p[2] == 0) bad("slice step cannot be zero");
      return Value{slice(base.v, p[0], p[1], p[2].value_or(1))};
    }
    case Expr::Call: return bounded(call(e, s, line), line);
    case Expr::Filter: return bounded(filter(e, s, line), line);
    case Expr::Test: return Value{test(e, s, line) != e.negate};
    case Expr::Unary: {
      const Value v = eval(*e.args[0], s, line);
      if (e.name == "not") return Value{!truthy(v)};
      if (!v.v.is_number()) bad("unary " + e.name + " of " + py_repr(v.v));
      if (e.name == "+") return v;
      return v.v.is_number_float() ? Value{-v.v.get<double>()} : Value{-v.v.get<int64_t>()};
    }
    case Expr::Cond:
      if (truthy(eval(*e.args[0], s, line))) return eval(*e.args[1], s, line);
      return e.args.size() > 2 ? eval(*e.args[2], s, line) : Value::undef();
    case Expr::List: {
      json l = json::array();
      for (const ExprP& a : e.args) l.push_back(eval(*a, s, line).v);
      return Value{l};
    }
    case Expr::Dict: {
      json d = json::object();
      for (size_t k = 0; k + 1 < e.args.size(); k += 2) d[py_str(eval(*e.args[k], s, line))] = eval(*e.args[k + 1], s, line).v;
      return Value{d};
    }
    case Expr::Binary: return bounded(binary(e, s, line), line);
  }
  return Value::undef();
}

// Binary operators; `and` / `or` give an operand, as in Python.
// A comparison (==, !=, <, >, <=, >=, in, not in); nullopt for another operator.
std::optional<Value> Impl::compare(const std::string& op, const Value& a, const Value& b, int line) const {
  if (op == "==") return Value{equal(a, b)};
  if (op == "!=") return Value{!equal(a, b)};
  if (op == "<") return Value{less(a.v, b.v)};
  if (op == ">") return Value{less(b.v, a.v)};
  if (op == "<=") return Value{!less(b.v, a.v)};
  if (op == ">=") return Value{!less(a.v, b.v)};
  if (op != "in" && op != "not in") return std::nullopt;
  if (!b.v.is_string() && !b.v.is_array() && !b.v.is_object() && !b.undefined && !b.v.is_null())
    fail(line, "'in' needs a string, list or dict on its right, got " + py_repr(b.v));
  return Value{contains(b, a) == (op == "in")};
}

namespace {
// Python's integer + - * // % ** on 64-bit integers, exactly; a result Python's unbounded integers
// would hold but 64 bits cannot is an error (never a wrapped number). x and y: integers.
template <class Bad>
int64_t int_arithmetic(const std::string& op, const json& xv, const json& yv, const Bad& bad) {
  auto overflow = [&] {
    bad("integer " + py_repr(xv) + " " + op + " " + py_repr(yv) + " does not fit 64 bits (ftdist's templates compute in 64-bit "
        "integers, Python's are unbounded)");
  };
  for (const json* v : {&xv, &yv})
    if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) overflow();
  const int64_t x = xv.get<int64_t>(), y = yv.get<int64_t>();
  int64_t r = 0;
  if (op == "+" && __builtin_add_overflow(x, y, &r)) overflow();
  if (op == "-" && __builtin_sub_overflow(x, y, &r)) overflow();
  if (op == "*" && __builtin_mul_overflow(x, y, &r)) overflow();
  if (op == "+" || op == "-" || op == "*") return r;
  if (op == kFloorDiv || op == "%") {  // (y != 0: checked) rounding toward -inf, the remainder with y's sign
    if (y == -1) {
      if (op == "%") return 0;
      if (x == std::numeric_limits<int64_t>::min()) overflow();
      return -x;
    }
    int64_t q = x / y, m = x % y;
    if (m != 0 && ((m < 0) != (y < 0))) --q, m += y;
    return op == "%" ? m : q;
  }
  if (op == "**" && y >= 0) {
    r = 1;
    for (int64_t k = 0; k < y && x != 1 && x != 0 && x != -1; ++k)
      if (__builtin_mul_overflow(r, x, &r)) overflow();
    if (x == 0) return y == 0 ? 1 : 0;
    return x == -1 ? (y % 2 == 0 ? 1 : -1) : r;
  }
  bad("unknown operator " + op);
  return 0;
}
}  // namespace

Value Impl::binary(const Expr& e, Scope& s, int line) const {
  auto bad = [&](const std::string& m) { fail(line, m); };
  Value a = eval(*e.args[0], s, line);
  if (e.name == "and") return truthy(a) ? eval(*e.args[1], s, line) : a;
  if (e.name == "or") return truthy(a) ? a : eval(*e.args[1], s, line);
  if (e.name == "chain") {  // a < b <= c: each comparison in turn, each operand once, False at the first that fails
    for (size_t k = 0; k < e.kwnames.size(); ++k) {
      Value b = eval(*e.args[k + 1], s, line);
      if (!truthy(*compare(e.kwnames[k], a, b, line))) return Value{false};
      a = std::move(b);
    }
    return Value{true};
  }
  const Value b = eval(*e.args[1], s, line);
  const std::string& op = e.name;
  if (std::optional<Value> c = compare(op, a, b, line)) return *c;
  if (op == "~") return Value{py_str(a) + py_str(b)};
  if (op == "+" && a.v.is_string() && b.v.is_string()) return Value{a.v.get<std::string>() + b.v.get<std::string>()};
  if (op == "+" && a.v.is_array() && b.v.is_array()) {
    json l = a.v;
    for (const json& x : b.v) l.push_back(x);
    return Value{l};
  }
  if (op == "*" && a.v.is_string() && b.v.is_number_integer()) {
    if (double(a.v.get_ref<const std::string&>().size()) * b.v.get<double>() > double(kMaxBytes)) bad("a string repeated past 64 MiB");
    std::string r;
    for (int64_t k = 0; k < b.v.get<int64_t>(); ++k) r += a.v.get<std::string>();
    return Value{r};
  }
  if (!a.v.is_number() || !b.v.is_number())
    bad("unsupported operand types for " + op + ": " + py_repr(a.undefined ? json("undefined") : a.v) + " and " +
        py_repr(b.undefined ? json("undefined") : b.v));
  const bool ints = !a.v.is_number_float() && !b.v.is_number_float();
  const double x = a.v.get<double>(), y = b.v.get<double>();
  if ((op == "/" || op == kFloorDiv || op == "%") && y == 0) bad("division by zero");
  if (ints && op != "/" && !(op == "**" && y < 0)) return Value{int_arithmetic(op, a.v, b.v, bad)};
  if (op == "+") return Value{x + y};
  if (op == "-") return Value{x - y};
  if (op == "*") return Value{x * y};
  if (op == "/") return Value{x / y};
  if (op == kFloorDiv) return Value{std::floor(x / y)};
  if (op == "%") return Value{x - y * std::floor(x / y)};
  if (op == "**") return Value{std::pow(x, y)};
  bad("unknown operator " + op);
  return Value::undef();
}

Value Impl::call(const Expr& e, Scope& s, int line) const {
  std::vector<Value> args;  // positional, then keyword (named by e.kwnames)
  for (size_t k = 1; k < e.args.size(); ++k) args.push_back(eval(*e.args[k], s, line));
  const size_t positional = args.size() - e.kwnames.size();
  const Expr& callee = *e.args[0];
  if (callee.kind == Expr::Attr) {  // a method of a value
    const Value self = eval(*callee.args[0], s, line);
    if (!self.undefined) return method(self, callee.name, args, line);
  }
  if (callee.kind != Expr::Var) fail(line, "only functions and methods can be called");
  const std::string& f = callee.name;
  if (f == "raise_exception") fail(line, "the template raised: " + (args.empty() ? std::string() : py_str(args[0])));
  if (f == "namespace") {
    json ns = json::object();
    if (positional > 0 && args[0].v.is_object()) ns = args[0].v;
    for (size_t k = 0; k < e.kwnames.size(); ++k) ns[e.kwnames[k]] = args[positional + k].v;
    return Value{ns};
  }
  if (f == "range") {
    auto bad = [&](const std::string& m) { fail(line, m); };
    int64_t a = 0, b = 0, step = 1;
    if (positional == 1) b = as_int(args[0], bad);
    else if (positional >= 2) a = as_int(args[0], bad), b = as_int(args[1], bad), step = positional > 2 ? as_int(args[2], bad) : 1;
    if (step == 0) fail(line, "range() step cannot be zero");
    const double count = std::ceil((double(b) - double(a)) / double(step));
    if (count > double(kMaxItems)) fail(line, "range() of more than " + std::to_string(kMaxItems) + " numbers");
    json l = json::array();
    for (int64_t i = a; step > 0 ? i < b : i > b; i += step) l.push_back(i);
    return Value{l};
  }
  if (f == "strftime_now") {
    const std::time_t now = std::time(nullptr);
    char buf[256];
    const size_t n = std::strftime(buf, sizeof(buf), args.empty() ? "%Y-%m-%d" : py_str(args[0]).c_str(), std::localtime(&now));
    return Value{std::string(buf, n)};
  }
  fail(line, "unknown function '" + f + "'");
}

Value Impl::method(const Value& self, const std::string& name, const std::vector<Value>& args, int line) const {
  const json& v = self.v;
  auto arg = [&](size_t k) { return k < args.size() ? py_str(args[k]) : std::string(); };
  if (v.is_string()) {
    const std::string str = v.get<std::string>();
    const bool space = args.empty() || args[0].v.is_null();  // (chars=None: what str.isspace() calls whitespace)
    if (name == "strip") return Value{py_text::strip(str, arg(0), space, true, true)};
    if (name == "lstrip") return Value{py_text::strip(str, arg(0), space, true, false)};
    if (name == "rstrip") return Value{py_text::strip(str, arg(0), space, false, true)};
    if (name == "startswith" || name == "endswith") {  // a string, or a tuple (list) of them
      std::vector<std::string> options;
      if (!args.empty() && args[0].v.is_array()) for (const json& o : args[0].v) options.push_back(py_str(Value{o}));
      else options.push_back(arg(0));
      return Value{std::any_of(options.begin(), options.end(), [&](const std::string& o) {
        return name == "startswith" ? str.rfind(o, 0) == 0 : str.size() >= o.size() && str.compare(str.size() - o.size(), o.size(), o) == 0;
      })};
    }
    if (name == "upper" || name == "lower") return Value{name == "upper" ? py_text::upper(str) : py_text::lower(str)};
    if (name == "capitalize" || name == "title") return Value{name == "title" ? py_text::title(str) : py_text::capitalize(str)};
    if (name == "replace") {  // replace(old, new, count=-1), as Python's: "" matches between every character
      std::string r, from = arg(0), to = arg(1);
      int64_t count = args.size() > 2 ? as_int(args[2], [&](const std::string& m) { fail(line, "replace(): " + m); }) : -1;
      if (from.empty()) {
        const unicode::Points pts = unicode::decode(str);
        for (size_t k = 0; k <= pts.cps.size(); ++k) {
          if (count-- != 0) r += to;
          if (k < pts.cps.size()) r += str.substr(pts.starts[k], pts.starts[k + 1] - pts.starts[k]);
          if (r.size() > kMaxBytes) fail(line, "a string longer than 64 MiB");
        }
        return Value{r};
      }
      size_t p = 0, q;
      while (count != 0 && (q = str.find(from, p)) != std::string::npos) {
        r += str.substr(p, q - p) + to, p = q + from.size(), --count;
        if (r.size() > kMaxBytes) fail(line, "a string longer than 64 MiB");
      }
      return Value{r + str.substr(p)};
    }
    if (name == "split") {  // split(sep=None, maxsplit=-1)
      json parts = json::array();
      const int64_t most = args.size() > 1 && args[1].v.is_number_integer() ? args[1].v.get<int64_t>() : -1;
      auto room = [&] { return most < 0 || int64_t(parts.size()) < most; };
      if (args.empty() || args[0].v.is_null()) {  // runs of whitespace; the rest after the last split kept as it is
        size_t p = py_text::space_run_end(str, 0);
        while (p < str.size() && room()) {
          const size_t q = py_text::word_end(str, p);
          parts.push_back(str.substr(p, q - p));
          p = py_text::space_run_end(str, q);
        }
        if (p < str.size()) parts.push_back(str.substr(p));
      } else {
        const std::string sep = arg(0);
        if (sep.empty()) fail(line, "split() with an empty separator");
        size_t p = 0, q;
        while (room() && (q = str.find(sep, p)) != std::string::npos) parts.push_back(str.substr(p, q - p)), p = q + sep.size();
        parts.push_back(str.substr(p));
      }
      return Value{parts};
    }
  }
  if (v.is_object()) {
    if (name == "get") return v.contains(arg(0)) ? Value{v[arg(0)]} : args.size() > 1 ? args[1] : Value{json()};
    if (name == "items" || name == "keys" || name == "values") {
      json l = json::array();
      for (auto it = v.begin(); it != v.end(); ++it)
        l.push_back(name == "items" ? json::array({it.key(), *it}) : name == "keys" ? json(it.key()) : *it);
      return Value{l};
    }
  }
  fail(line, "no method '" + name + "' on " + py_repr(v));
}

namespace {
std::string join_words(const std::vector<std::string>& words) {
  std::string out;
  for (size_t k = 0; k < words.size(); ++k) out += (k == 0 ? "" : k + 1 == words.size() ? " and " : ", ") + words[k] + "=";
  return out;
}

// Jinja's attribute lookup for filters: "a.b" looks up a, then b (a number indexes a list);
// undefined where a step is missing.
Value dotted_attribute(const json& item, const std::string& path) {
  const json* at = &item;
  size_t begin = 0;
  while (begin <= path.size()) {
    const size_t dot = std::min(path.find('.', begin), path.size());
    const std::string part = path.substr(begin, dot - begin);
    const bool index = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos;
    if (at->is_object() && at->contains(part)) at = &(*at)[part];
    else if (index && at->is_array() && std::stoull(part) < at->size()) at = &(*at)[std::stoull(part)];
    else return Value::undef();
    begin = dot + 1;
  }
  return Value{*at};
}
}  // namespace

Value Impl::filter(const Expr& e, Scope& s, int line) const {
  const Value x = eval(*e.args[0], s, line);
  std::vector<Value> args;
  for (size_t k = 1; k < e.args.size(); ++k) args.push_back(eval(*e.args[k], s, line));
  auto kw = [&](const char* name, size_t pos) -> std::optional<Value> {
    const size_t positional = args.size() - e.kwnames.size();
    for (size_t k = 0; k < e.kwnames.size(); ++k)
      if (e.kwnames[k] == name) return args[positional + k];
    if (pos < positional) return args[pos];
    return std::nullopt;
  };
  const std::string& f = e.name;
  // The keywords each filter reads; any other is refused rather than silently not applied
  // (tojson(sort_keys=true) would render other text than Transformers does).
  static const std::map<std::string, std::vector<std::string>> keywords = {
      {"trim", {"chars"}},          {"default", {"default_value", "boolean"}}, {"d", {"default_value", "boolean"}},
      {"tojson", {"indent", "ensure_ascii"}},       {"join", {"d", "attribute"}},              {"map", {"attribute", "default"}}};
  const auto known = keywords.find(f);
  for (const std::string& k : e.kwnames)
    if (known == keywords.end() || std::find(known->second.begin(), known->second.end(), k) == known->second.end())
      fail(line, "filter '" + f + "' with the keyword " + k + "= is not supported" +
                     (known == keywords.end() ? std::string(" (it takes none)") : " (it takes " + join_words(known->second) + ")"));
  if (f == "trim") {  // trim(chars=None)
    const std::optional<Value> chars = kw("chars", 0);
    const bool space = !chars || chars->undefined || chars->v.is_null();
    return Value{py_text::strip(py_str(x), space ? std::string() : py_str(*chars), space, true, true)};
  }
  if (f == "length" || f == "count") {
    if (x.v.is_string()) return Value{int64_t(py_text::length(x.v.get<std::string>()))};
    if (x.v.is_array() || x.v.is_object()) return Value{int64_t(x.v.size())};
    fail(line, "length of " + py_repr(x.v));
  }
  if (f == "string") return Value{py_str(x)};
  if (f == "safe" || (f == "list" && x.v.is_array())) return x;
  if (f == "upper" || f == "lower") return method(Value{py_str(x)}, f, {}, line);
  if (f == "title") return Value{py_text::jinja_title(py_str(x))};  // (Jinja's words, not str.title's)
  if (f == "capitalize") return method(Value{py_str(x)}, f, {}, line);
  if (f == "replace") return method(Value{py_str(x)}, "replace", args, line);
  if (f == "default" || f == "d") {
    const bool boolean = kw("boolean", 1) && truthy(*kw("boolean", 1));
    if (x.undefined || (boolean && !truthy(x))) return kw("default_value", 0).value_or(Value{std::string()});
    return x;
  }
  if (f == "tojson") {
    const std::optional<Value> indent = kw("indent", 0), ascii = kw("ensure_ascii", 99);
    if (ascii && truthy(*ascii))  // (ftdist writes non-ASCII text as it is: ensure_ascii=False, Transformers' default)
      fail(line, "tojson(ensure_ascii=" + py_repr(ascii->v) + "): only ensure_ascii=False (the default) is supported");
    if (indent && !indent->v.is_null() && !indent->v.is_number_integer())
      fail(line, "tojson(indent=" + py_repr(indent->v) + "): only a number of spaces is supported");
    const int64_t spaces = indent && indent->v.is_number_integer() ? indent->v.get<int64_t>() : 0;
    if (spaces > 64) fail(line, "tojson(indent=" + std::to_string(spaces) + "): at most 64");
    return Value{py_json(x.v, int(spaces))};
  }
  if (f == "join") {  // join(d='', attribute=None): attribute joins each item's (a dict key, or dotted keys)
    std::string r, sep = kw("d", 0) ? py_str(*kw("d", 0)) : "";
    const std::optional<Value> attribute = kw("attribute", 1);
    bool first = true;
    if (x.v.is_array())
      for (const json& item : x.v) {
        Value v{item};
        if (attribute && !attribute->v.is_null()) v = dotted_attribute(item, py_str(*attribute));
        r += (first ? "" : sep) + py_str(v), first = false;
      }
    return Value{r};
  }
  if ((f == "first" || f == "last") && (x.v.is_array() || x.v.is_string())) {
    if (x.v.empty() || (x.v.is_string() && x.v.get<std::string>().empty())) return Value::undef();
    if (x.v.is_string()) {
      const std::vector<std::string> points = py_text::code_points(x.v.get<std::string>());
      return Value{f == "first" ? points.front() : points.back()};
    }
    return Value{f == "first" ? x.v.front() : x.v.back()};
  }
  if (f == "reverse" && (x.v.is_array() || x.v.is_string())) return Value{slice(x.v, std::nullopt, std::nullopt, -1)};
  if (f == "list" || f == "selectattr" || f == "rejectattr" || f == "select" || f == "reject" || f == "map")
    return sequence_filter(f, x, args, kw("attribute", 99), kw("default", 99), line);
  if (f == "items") return method(x, "items", {}, line);
  if (f == "int") return Value{x.v.is_number() ? int64_t(x.v.get<double>()) : x.v.is_string() ? int64_t(std::atoll(x.v.get<std::string>().c_str())) : int64_t(0)};
  fail(line, "unknown filter '" + f + "'");
}

// The filters over a list's items: list, select / reject, selectattr / rejectattr, map.
// `attribute` and `fallback`: map's attribute= and default= keywords.
Value Impl::sequence_filter(const std::string& f, const Value& x, const std::vector<Value>& args,
                            const std::optional<Value>& attribute, const std::optional<Value>& fallback, int line) const {
  if (f == "list") {  // a string's characters, a dict's keys, a list itself
    if (x.v.is_array()) return x;
    json l = json::array();
    if (x.v.is_string()) for (const std::string& c : py_text::code_points(x.v.get<std::string>())) l.push_back(c);
    else if (x.v.is_object()) for (auto it = x.v.begin(); it != x.v.end(); ++it) l.push_back(it.key());
    else if (!x.undefined && !x.v.is_null()) fail(line, "list of " + py_repr(x.v));
    return Value{l};
  }
  if (f == "selectattr" || f == "rejectattr" || f == "select" || f == "reject") {
    // select(test, arg) / selectattr(attribute, test, arg): the items whose (attribute) passes the
    // test, or is truthy without one; reject / rejectattr keep the others
    const bool attr = f == "selectattr" || f == "rejectattr", keep = f == "selectattr" || f == "select";
    const size_t first = attr ? 1 : 0;
    if (attr && (args.empty() || !args[0].v.is_string())) fail(line, f + "() needs an attribute name");
    if (args.size() > first && !args[first].v.is_string()) fail(line, f + "(): the test must be named by a string");
    json l = json::array();
    if (!x.v.is_array() && !x.undefined && !x.v.is_null()) fail(line, f + " of " + py_repr(x.v));
    if (x.v.is_array())
      for (const json& item : x.v) {
        const Value v = !attr ? Value{item}
                        : item.is_object() && item.contains(args[0].v.get<std::string>()) ? Value{item[args[0].v.get<std::string>()]}
                                                                                          : Value::undef();
        const bool pass = args.size() > first
                              ? test_value(args[first].v.get<std::string>(), v,
                                           args.size() > first + 1 ? std::optional<Value>(args[first + 1]) : std::nullopt, line)
                              : truthy(v);
        if (pass == keep) l.push_back(item);
      }
    return Value{l};
  }
  if (f == "map") {  // map(attribute='name', default=...) or map('upper' | 'lower' | 'trim' | 'string' | 'length')
    json l = json::array();
    if (!x.v.is_array()) {
      if (!x.undefined && !x.v.is_null()) fail(line, "map of " + py_repr(x.v));
      return Value{l};
    }
    for (const json& item : x.v) {
      if (attribute) {
        const std::string key = py_str(*attribute);
        l.push_back(item.is_object() && item.contains(key) ? item[key] : fallback ? fallback->v : json());
      } else if (!args.empty() && args[0].v.is_string()) {
        const std::string name = args[0].v.get<std::string>();
        if (name == "upper" || name == "lower") l.push_back(method(Value{py_str(Value{item})}, name, {}, line).v);
        else if (name == "trim") l.push_back(py_text::strip(py_str(Value{item}), "", true, true, true));
        else if (name == "string") l.push_back(py_str(Value{item}));
        else if (name == "length") l.push_back(int64_t(item.is_string() ? py_text::length(item.get<std::string>()) : item.size()));
        else fail(line, "map('" + name + "') is not supported (upper, lower, trim, string, length or attribute=)");
      } else {
        fail(line, "map() needs attribute= or a filter name");
      }
    }
    return Value{l};
  }
  fail(line, "unknown filter '" + f + "'");
}

bool Impl::test(const Expr& e, Scope& s, int line) const {
  const Value x = eval(*e.args[0], s, line);
  // The functions Transformers gives every template are defined too (`strftime_now is defined`).
  const Expr& a = *e.args[0];
  const bool function = x.undefined && a.kind == Expr::Var &&
                        (a.name == "raise_exception" || a.name == "strftime_now" || a.name == "range" || a.name == "namespace");
  if (e.name == "defined") return !x.undefined || function;
  if (e.name == "undefined") return x.undefined && !function;
  return test_value(e.name, x, e.args.size() > 1 ? std::optional<Value>(eval(*e.args[1], s, line)) : std::nullopt, line);
}

// Jinja's test `t` of `x` (with its argument, where the test takes one): the `is` operator's, and
// select / reject / selectattr / rejectattr's.
bool Impl::test_value(const std::string& t, const Value& x, const std::optional<Value>& arg, int line) const {
  const json& v = x.v;
  if (t == "defined") return !x.undefined;
  if (t == "undefined") return x.undefined;
  if (x.undefined && t != "none") return false;
  if (t == "none") return !x.undefined && v.is_null();
  if (t == "string") return v.is_string();
  if (t == "number") return v.is_number();
  if (t == "integer") return v.is_number_integer() || v.is_number_unsigned();
  if (t == "float") return v.is_number_float();
  if (t == "boolean") return v.is_boolean();
  if (t == "true" || t == "false") return v.is_boolean() && v.get<bool>() == (t == "true");
  if (t == "mapping") return v.is_object();
  if (t == "sequence" || t == "iterable") return v.is_array() || v.is_string() || (t == "iterable" && v.is_object());
  if (t == "even" || t == "odd") return v.is_number_integer() && (v.get<int64_t>() % 2 == 0) == (t == "even");
  if (!arg) {
    if (t == "equalto" || t == "eq" || t == "sameas" || t == "ne" || t == "in" || t == "divisibleby") fail(line, "test '" + t + "' needs an argument");
  } else {
    const Value& b = *arg;
    if (t == "equalto" || t == "eq" || t == "==" || t == "sameas") return equal(x, b);
    if (t == "ne" || t == "!=") return !equal(x, b);
    if (t == "lt" || t == "lessthan" || t == "<") return less(v, b.v);
    if (t == "gt" || t == "greaterthan" || t == ">") return less(b.v, v);
    if (t == "le" || t == "<=") return less(v, b.v) || equal(x, b);
    if (t == "ge" || t == ">=") return less(b.v, v) || equal(x, b);
    if (t == "in") return contains(b, x);
    if (t == "divisibleby") return v.is_number_integer() && b.v.is_number_integer() && b.v.get<int64_t>() != 0 &&
                                   v.get<int64_t>() % b.v.get<int64_t>() == 0;
  }
  fail(line, "unknown test '" + t + "'");
}

}  // namespace ftdist::data
