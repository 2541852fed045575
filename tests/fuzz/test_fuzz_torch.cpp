// The fuzz suite's parsers that live in LibTorch modules (the run config, the safetensors header
// and its tensors). See fuzz.h.
#include "fuzz.h"
#include "ftdist/io/safetensors.h"
#include "ftdist/train/run_config.h"

using namespace ftdist;
using fuzz::run_cases;
using fuzz::tmp;
using fuzz::write_file;

TEST(Fuzz, RunConfig) {
  const std::string seed = tmp("run.toml");
  write_file(seed, "[model]\npreset = \"tiny\"\n[data]\ntrain = \"x.jsonl\"\nseq_len = 64\n[train]\nsteps = 10\n"
                   "micro_batch = 2\nlr = 1e-3\nwarmup_steps = 2\nschedule = \"cosine\"\n[parallel]\nshard = \"full\"\n"
                   "memory_limit = \"2GiB\"\nprefetch = 2\n[checkpoint]\nevery = 5\n[output]\ndir = \"runs/x\"\n");
  run_cases("run config", seed, [](const std::string& p) { train::load_run_config(p, {}); });
}

TEST(Fuzz, SafetensorsHeader) {
  const std::string seed = tmp("weights.safetensors");
  io::save_safetensors(seed, {{"a.weight", at::arange(12, at::kFloat).view({3, 4})}, {"b.bias", at::ones({5}, at::kBFloat16)}},
                       {{"format", "pt"}});
  run_cases("safetensors", seed, [](const std::string& p) {
    io::SafetensorsFile f(p);
    for (const auto& t : f.tensors()) f.read(t.name);  // every tensor the header claims
  });
}

