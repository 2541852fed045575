#include "options.h"

#include <cstdio>

#include "ftdist/core/check.h"

namespace ftdist::cli {

cxxopts::ParseResult parse_options(cxxopts::Options& options, int argc, char** argv) {
  cxxopts::ParseResult args;
  try {
    args = options.parse(argc, argv);
  } catch (const cxxopts::exceptions::exception& e) {
    FT_CHECK_ARG(false, options.program() << ": " << e.what() << " (see --help)");
  }
  FT_CHECK_ARG(args.unmatched().empty(), options.program() << ": unexpected argument '" << args.unmatched()[0] << "'");
  return args;
}

bool print_help_if_asked(const cxxopts::Options& options, const cxxopts::ParseResult& args) {
  if (!args.count("help")) return false;
  std::printf("%s\n", options.help().c_str());
  return true;
}

}  // namespace ftdist::cli
