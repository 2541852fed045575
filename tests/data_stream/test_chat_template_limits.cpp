// A chat template comes with someone else's model directory: one that nests too deep, loops too
// long or grows a string without end is an Error(BadInput) naming the template, within seconds and
// without exhausting memory (data/chat_template.h); ordinary templates still render.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "../expect_error.h"
#include "ftdist/data/chat_template.h"

using namespace ftdist;

namespace {

std::string repeat(const std::string& s, int n) {
  std::string r;
  for (int i = 0; i < n; ++i) r += s;
  return r;
}

std::string render(const std::string& source) {
  const nlohmann::json context = {{"messages", nlohmann::json::array({{{"role", "user"}, {"content", "hi"}}})}};
  return data::ChatTemplate(source, "t.json chat_template").render(context);
}

}  // namespace

TEST(ChatTemplateLimits, DeepNestingIsAnErrorNotACrash) {
  const struct {
    const char* what;
    std::string source;
  } cases[] = {
      {"parentheses", "{{ " + repeat("(", 5000) + "1" + repeat(")", 5000) + " }}"},
      {"lists", "{{ " + repeat("[", 5000) + repeat("]", 5000) + " }}"},
      {"not", "{{ " + repeat("not ", 20000) + "true }}"},
      {"signs", "{{ " + repeat("-", 20000) + "1 }}"},
      {"a chain of +", "{{ 1" + repeat(" + 1", 100000) + " }}"},
      {"a chain of filters", "{{ 'a'" + repeat("|trim", 20000) + " }}"},
      {"a chain of subscripts", "{{ messages" + repeat("[0]", 20000) + " }}"},
      {"if blocks", repeat("{% if true %}", 5000) + "x" + repeat("{% endif %}", 5000)},
      {"for blocks", repeat("{% for m in messages %}", 5000) + "x" + repeat("{% endfor %}", 5000)},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    expect_bad_input([&] { render(c.source); }, "t.json chat_template (line 1)");
    expect_bad_input([&] { render(c.source); }, " deep");
  }
}

TEST(ChatTemplateLimits, EndlessWorkAndGrowthAreErrorsWithinSeconds) {
  const struct {
    const char* what;
    std::string source, needle;
  } cases[] = {
      {"nested loops", "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "steps"},
      {"a huge range", "{% for i in range(100000000000) %}{% endfor %}", "range() of more than"},
      {"string doubling", "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
       "a string longer than 64 MiB"},
      {"list doubling", "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
       "a list of more than"},
      {"replace growth", "{% set ns = namespace(s='aa') %}{% for i in range(64) %}{% set ns.s = ns.s.replace('a', 'aa') %}{% endfor %}",
       "a string longer than 64 MiB"},
      {"rendered text", "{% set s = 'x' * 60000000 %}{{ s }}{{ s }}", "the rendered text grew past 64 MiB"},
      {"tojson indent", "{{ messages | tojson(indent=1000000000) }}", "at most 64"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const auto start = std::chrono::steady_clock::now();
    expect_bad_input([&] { render(c.source); }, c.needle);
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 20.0);
  }
}

TEST(ChatTemplateLimits, OrdinaryTemplatesStillRender) {
  EXPECT_EQ(render("{{ " + repeat("(", 50) + "1" + repeat(")", 50) + " }}"), "1");
  EXPECT_EQ(render("{{ 0" + repeat(" + 1", 100) + " }}"), "100");
  EXPECT_EQ(render(repeat("{% if true %}", 40) + "x" + repeat("{% endif %}", 40)), "x");
  EXPECT_EQ(render("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}ok"), "ok");
  EXPECT_EQ(render("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"), "<user>hi");
}
