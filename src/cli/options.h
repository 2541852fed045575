// Command-line parsing shared by the subcommands (cxxopts underneath): errors become
// ftdist::Error(BadInput) naming the command, leftover arguments are rejected.
#pragma once

// Every file of the command line includes cxxopts through here, with one setting: a repeated
// option's value is taken whole (one --set is one key=value, commas and all), not split at commas.
#define CXXOPTS_VECTOR_DELIMITER '\0'
#include <cxxopts.hpp>

#include <string>

namespace ftdist::cli {

// Parses argv; throws Error(BadInput) "<program>: <what is wrong> (see --help)".
cxxopts::ParseResult parse_options(cxxopts::Options& options, int argc, char** argv);

// Prints the help and returns true when --help was given.
bool print_help_if_asked(const cxxopts::Options& options, const cxxopts::ParseResult& args);

// The value of a `--device cpu | cuda | auto` option: whether to run on CUDA (auto: when a CUDA
// device is present). Error(BadInput) for another value, or for cuda without a CUDA device.
bool cuda_from_device_option(const std::string& value);

}  // namespace ftdist::cli
