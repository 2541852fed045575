// ProgressBar: the line's bar, percent, amounts, rate and ETA; off a terminal one line per tenth.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "ftdist/core/progress.h"

using ftdist::ProgressBar;

TEST(ProgressBar, LineShowsBarPercentAmountsRateAndEta) {
  ProgressBar bar("reading x.jsonl", 4u << 20, "B", stderr, false);
  EXPECT_EQ(bar.line(1u << 20, 2.0, "7 documents"),
            "reading x.jsonl [######..................]  25% 1.0 MiB / 4.0 MiB  512.0 KiB/s  ETA 6 s  7 documents");
  EXPECT_EQ(bar.line(4u << 20, 0.0, ""), "reading x.jsonl [########################] 100% 4.0 MiB / 4.0 MiB");
  ProgressBar count("steps", 200, "steps", stderr, false);
  EXPECT_EQ(count.line(50, 10.0, ""), "steps [######..................]  25% 50 steps / 200 steps  5 steps/s  ETA 30 s");
}

TEST(ProgressBar, OffATerminalOneLinePerTenth) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    ProgressBar bar("work", 1000, "items", f, false);
    for (uint64_t i = 0; i <= 1000; i += 7) bar.update(i);
    bar.finish("done");
    bar.update(1000);  // after finish: nothing
  }
  std::rewind(f);
  std::string all;
  char buf[512];
  int lines = 0;
  while (std::fgets(buf, sizeof(buf), f)) {
    all += buf;
    ++lines;
  }
  std::fclose(f);
  EXPECT_EQ(lines, 11) << all;  // 0%, 10%, ..., 90%, then 100% from finish()
  EXPECT_NE(all.find("100% 1000 items / 1000 items"), std::string::npos) << all;
  EXPECT_NE(all.find("done\n"), std::string::npos) << all;
  EXPECT_EQ(all.find('\r'), std::string::npos) << "no carriage returns in a log";
}

// A quiet period: work that ends within it prints nothing, not even finish()'s line; without one
// (or once it has passed) the same work draws its lines.
TEST(ProgressBar, QuietPeriodKeepsShortWorkSilent) {
  auto lines_of = [](double quiet) {
    std::FILE* f = std::tmpfile();
    EXPECT_NE(f, nullptr);
    {
      ProgressBar bar("work", 10, "items", f, false);
      bar.quiet_for(quiet);
      for (uint64_t i = 0; i <= 10; ++i) bar.update(i);
      bar.finish();
    }
    std::rewind(f);
    int lines = 0;
    char buf[512];
    while (std::fgets(buf, sizeof(buf), f)) ++lines;
    std::fclose(f);
    return lines;
  };
  EXPECT_EQ(lines_of(3600), 0);
  EXPECT_EQ(lines_of(0), 11);
}
