// ftdist export --checkpoint DIR --out HFDIR [--dtype bf16|fp32] [--max-shard-size 5GB]
// Streams a checkpoint's master weights, one unit at a time, into a Hugging Face directory.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "options.h"
#include "ftdist/core/bytes.h"
#include "ftdist/core/check.h"
#include "ftdist/core/stop_signal.h"
#include "ftdist/core/text_file.h"
#include "ftdist/fsdp/memory_counter.h"
#include "ftdist/io/checkpoint.h"
#include "ftdist/io/hf_export.h"

namespace ftdist::cli {

int export_main(int argc, char** argv) {
  cxxopts::Options options("ftdist export", "A checkpoint's weights as a Hugging Face model directory, streamed one unit at a time.");
  options.add_options()
      ("checkpoint", "checkpoint directory (step-N), or a checkpoint root holding `latest`", cxxopts::value<std::string>())
      ("out", "output directory (must not exist)", cxxopts::value<std::string>())
      ("dtype", "bf16 | fp32", cxxopts::value<std::string>()->default_value("bf16"))
      ("max-shard-size", "largest safetensors file, e.g. 5GB, 500MB", cxxopts::value<std::string>()->default_value("5GB"))
      ("json", "print {\"out\", \"files\", \"start_rss_bytes\", \"peak_rss_bytes\", \"largest_unit_bytes\"} as JSON")
      ("h,help", "this help");
  cxxopts::ParseResult args = parse_options(options, argc, argv);
  if (print_help_if_asked(options, args)) return 0;
  FT_CHECK_ARG(args.count("checkpoint") && args.count("out"), "ftdist export: --checkpoint DIR and --out DIR are required");
  const std::string dir = io::checkpoint_dir_of(args["checkpoint"].as<std::string>());
  FT_CHECK_ARG(io::is_checkpoint_dir(dir), "--checkpoint: '" << dir << "' is not an ftdist checkpoint (no meta.json, no latest)");
  const std::string dtype = args["dtype"].as<std::string>();
  FT_CHECK_ARG(dtype == "bf16" || dtype == "fp32", "--dtype: expected bf16 or fp32, got '" << dtype << "'");
  io::ExportOptions opts{dtype == "fp32" ? at::kFloat : at::kBFloat16,
                         parse_bytes(args["max-shard-size"].as<std::string>(), "--max-shard-size")};
  io::CheckpointReader ckpt(dir);
  const std::string out = args["out"].as<std::string>();
  // What the export itself adds to the process (the libraries' start-up peak is not the export's).
  const bool reset = fsdp::reset_peak_rss();
  const int64_t start_rss = fsdp::current_rss_bytes();
  const StopOnSignal stop;  // SIGTERM / SIGINT / SIGHUP: OUT.tmp removed, OUT as it was
  const int files = io::export_checkpoint(ckpt, out, opts);
  const int64_t peak = reset ? fsdp::peak_rss_since_reset_bytes() : fsdp::process_peak_rss_bytes();
  int64_t largest = 0;
  for (const auto& u : ckpt.spec().units()) largest = std::max(largest, u.numel() * 4);
  if (args.count("json")) {
    nlohmann::ordered_json j = {{"out", out},           {"files", files},
                                {"start_rss_bytes", start_rss}, {"peak_rss_bytes", peak},
                                {"largest_unit_bytes", largest}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("exported %s (step %lld) to %s: %d file(s), %s; resident memory %s before, peak %s during (largest unit %s in fp32)\n",
                dir.c_str(), static_cast<long long>(ckpt.meta().step), out.c_str(), files, dtype.c_str(),
                format_bytes(double(start_rss)).c_str(), format_bytes(double(peak)).c_str(), format_bytes(double(largest)).c_str());
  }
  return 0;
}

}  // namespace ftdist::cli
