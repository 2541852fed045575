// ftdist report RUN_DIR [--out FILE]: the run report (train/run_report.h) as one HTML file.
#include <cctype>
#include <cstdio>
#include <fstream>

#include "commands.h"
#include "options.h"
#include "ftdist/core/check.h"
#include "ftdist/core/text_file.h"
#include "ftdist/train/run_report.h"

namespace ftdist::cli {

int report_main(int argc, char** argv) {
  cxxopts::Options options("ftdist report", "An HTML report of a finished or running training run, from its output.dir.");
  options.add_options()
      ("run", "the run's output.dir (metrics.jsonl, memory.json, run_config.json, checkpoints/)", cxxopts::value<std::string>())
      ("out", "the HTML file to write (default: <run>/report.html)", cxxopts::value<std::string>())
      ("h,help", "this help");
  options.parse_positional({"run"});
  options.positional_help("RUN_DIR");
  cxxopts::ParseResult args = parse_options(options, argc, argv);
  if (print_help_if_asked(options, args)) return 0;
  FT_CHECK_ARG(args.count("run"), "ftdist report: give the run's directory (its output.dir), e.g. ftdist report runs/tiny");
  const std::string run = args["run"].as<std::string>();
  const std::string out = args.count("out") ? args["out"].as<std::string>() : run + "/report.html";
  // (what is there already is replaced only where it is a page: --out naming the run's metrics,
  // config or checkpoint files would destroy them)
  FT_CHECK_ARG(!is_directory(out), "--out: '" << out << "' is a directory; give the HTML file to write");
  if (file_exists(out)) {
    std::ifstream in(out, std::ios::binary);
    std::string head(15, '\0');
    in.read(&head[0], std::streamsize(head.size()));
    head.resize(size_t(in.gcount()));
    for (char& ch : head) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    FT_CHECK_ARG(head == "<!doctype html>", "--out: '" << out << "' exists and is not an HTML page; ftdist report replaces only "
                                                "a page (a report it wrote), never another file: choose a new name");
  }
  write_text_file_atomic(out, train::run_report_html(run), "--out");
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

}  // namespace ftdist::cli
