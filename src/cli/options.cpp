#include "options.h"

#include <cstdio>

#include "ftdist/comm/communicator.h"
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

bool cuda_from_device_option(const std::string& value) {
  FT_CHECK_ARG(value == "auto" || value == "cpu" || value == "cuda", "--device: expected cpu, cuda or auto, got '" << value << "'");
  const bool present = comm::cuda_device_present();
  FT_CHECK_ARG(value != "cuda" || present, "--device cuda: no CUDA device is present (or ftdist was built without CUDA)");
  return value == "cuda" || (value == "auto" && present);
}

}  // namespace ftdist::cli
