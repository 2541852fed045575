// bench/ckpt — checkpoint save and load throughput next to a plain sequential write and read of
// the same number of bytes on the same disk, in one run (one process, world size 1, `full` stage).
//
//   build/bench/ftdist_bench_ckpt [--dir DIR] [--layers N] [--hidden H]
//
// save = save_checkpoint(): one rank file (master, exp_avg, exp_avg_sq, 12 B per parameter) written
// through the safetensors writer, fsynced, the directory renamed and `latest` written.
// load = CheckpointReader (validates every file) + FsdpModel::load_state().
// The plain write is fwrite in 4 MiB blocks + fsync; the plain read is fread of that file. Reads
// come from the page cache unless the cache is dropped (the bench tries /proc/sys/vm/drop_caches
// before each read and says whether it could).
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <unistd.h>

#include "ftdist/comm/communicator.h"
#include "ftdist/core/text_file.h"
#include "ftdist/fsdp/fsdp_model.h"
#include "ftdist/io/checkpoint.h"
#include "ftdist/train/checkpoint_saver.h"

using namespace ftdist;

namespace {

double timed(const std::function<void()>& f) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

bool drop_caches() {
  ::sync();
  std::FILE* f = std::fopen("/proc/sys/vm/drop_caches", "w");
  if (!f) return false;
  const bool ok = std::fputs("3", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

void plain_write(const std::string& path, int64_t bytes) {
  std::vector<char> block(4 << 20, 1);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error("cannot write " + path);
  for (int64_t done = 0; done < bytes; done += int64_t(block.size()))
    std::fwrite(block.data(), 1, size_t(std::min<int64_t>(int64_t(block.size()), bytes - done)), f);
  std::fflush(f);
  ::fsync(fileno(f));
  std::fclose(f);
}

void plain_read(const std::string& path) {
  std::vector<char> block(4 << 20);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot read " + path);
  while (std::fread(block.data(), 1, block.size(), f) == block.size()) {
  }
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/tmp/ftdist-bench-ckpt";
  int64_t layers = 16, hidden = 512;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--dir")) dir = argv[i + 1];
    else if (!std::strcmp(argv[i], "--layers")) layers = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--hidden")) hidden = std::atoll(argv[i + 1]);
    else { std::fprintf(stderr, "usage: %s [--dir DIR] [--layers N] [--hidden H]\n", argv[0]); return 2; }
  }
  plan::ModelSpec spec;
  spec.name = "bench";
  spec.hidden = hidden;
  spec.intermediate = hidden * 8 / 3;
  spec.layers = layers;
  spec.heads = hidden / 64;
  spec.kv_heads = spec.heads;
  spec.head_dim = 64;
  spec.vocab = 32000;
  spec.max_position = 2048;
  spec.validate("bench");

  comm::CommOptions o;
  o.backend = comm::Backend::Local;
  auto world = comm::make_communicator(at::kCPU, o);
  model::LlamaModel m(spec, at::TensorOptions().dtype(at::kFloat));
  for (auto& u : m.units()) u.flat.normal_(0, 0.02);
  fsdp::FsdpModel f(m, *world, fsdp::FsdpConfig{});
  remove_tree(dir, "bench");
  make_directories(dir, "bench");

  train::SaveRequest req;
  req.step = 1;
  req.config_text = plan::hf_config_text(spec);
  const double t_save = timed([&] { train::save_checkpoint(dir + "/ckpt", req, f, *world); });
  const std::string rank_file = dir + "/ckpt/" + io::checkpoint_dir_name(1) + "/" + io::rank_file_name(0, 1);
  std::FILE* rf = std::fopen(rank_file.c_str(), "rb");
  std::fseek(rf, 0, SEEK_END);
  const int64_t bytes = std::ftell(rf);
  std::fclose(rf);
  const bool dropped = drop_caches();
  const double t_load = timed([&] {
    io::CheckpointReader r(io::find_latest_checkpoint(dir + "/ckpt"));
    f.load_state(r);
  });
  const double t_write = timed([&] { plain_write(dir + "/plain.bin", bytes); });
  drop_caches();
  const double t_read = timed([&] { plain_read(dir + "/plain.bin"); });
  remove_tree(dir, "bench");

  const double mb = double(bytes) / 1e6;
  std::printf("checkpoint of %lld parameters (%d layers, hidden %lld): %.1f MB; reads %s\n",
              static_cast<long long>(spec.param_count()), int(layers), static_cast<long long>(hidden), mb,
              dropped ? "after dropping the page cache" : "from the page cache (could not drop it)");
  std::printf("%-34s %10s %10s\n", "operation", "seconds", "MB/s");
  auto row = [&](const char* what, double t) { std::printf("%-34s %10.3f %10.0f\n", what, t, mb / t); };
  row("save_checkpoint (fsync, rename)", t_save);
  row("plain sequential write + fsync", t_write);
  row("load (validate + load_state)", t_load);
  row("plain sequential read", t_read);
  return 0;
}
