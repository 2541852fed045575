#include "same_on_every_rank.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ftdist/core/check.h"
#include "ftdist/core/hash.h"
#include "ftdist/core/text_file.h"
#include "ftdist/io/hf_export.h"

namespace ftdist::train {
namespace {

// Rank 0's `mine` (sections of keys), as every rank receives it, against this rank's: the keys whose
// values differ here ("section.key"). Every rank calls it.
std::vector<std::string> keys_unlike_rank0(const nlohmann::ordered_json& mine, comm::Communicator& world) {
  const std::string text = mine.dump();
  at::Tensor length = at::full({1}, int64_t(text.size()), at::kLong);
  world.broadcast(length, 0);
  at::Tensor bytes = at::zeros({length.item<int64_t>()}, at::kByte);
  if (world.rank() == 0) std::memcpy(bytes.data_ptr(), text.data(), text.size());
  world.broadcast(bytes, 0);
  const std::string root_text(static_cast<const char*>(bytes.data_ptr()), size_t(bytes.numel()));
  if (root_text == text) return {};
  const nlohmann::ordered_json root = nlohmann::ordered_json::parse(root_text, nullptr, false);
  std::vector<std::string> differ = root.is_discarded() ? std::vector<std::string>{"(unreadable)"} : changed_keys(root, mine);
  if (!root.is_discarded())  // (keys rank 0 has and this rank lacks)
    for (const std::string& k : changed_keys(mine, root))
      if (std::find(differ.begin(), differ.end(), k) == differ.end()) differ.push_back(k);
  if (differ.empty()) differ.push_back("(the order of keys)");
  return differ;
}

// Stops every rank (exit 2) when any rank's `differ` is not empty: that rank names its keys
// ("rank R's <what> differ(s) from rank 0's in KEYS"), the others name that rank.
void stop_unless_every_rank_agrees(const std::vector<std::string>& differ, comm::Communicator& world, const std::string& origin,
                                   const std::string& what, const std::string& advice) {
  at::Tensor worst = at::full({1}, differ.empty() ? int64_t(-1) : int64_t(world.rank()), at::kLong);
  world.all_reduce(worst, comm::ReduceOp::Max);
  const int64_t r = worst.item<int64_t>();
  if (r < 0) return;
  std::string keys;
  for (const std::string& k : differ) keys += (keys.empty() ? "" : ", ") + k;
  FT_CHECK_ARG(differ.empty(), origin << ": rank " << world.rank() << "'s " << what << " from rank 0's in " << keys << "; " << advice);
  FT_CHECK_ARG(false, origin << ": rank " << r << "'s " << what << " from rank 0's (its message names them); " << advice);
}

// Whether ftdist reads a file of this name in a model, checkpoint or tokenizer directory: the
// config, the weights and their index, a checkpoint's meta.json, the carried files (not a README,
// a .gitattributes or a job's log that happen to sit there).
bool read_from_directory(const std::string& name) {
  const auto ends = [&](const char* tail) {
    const size_t n = std::strlen(tail);
    return name.size() >= n && name.compare(name.size() - n, n, tail) == 0;
  };
  const auto& carried = io::tokenizer_file_names();
  const auto& side = io::model_side_file_names();
  return name == "config.json" || name == "meta.json" || ends(".safetensors") || ends(".safetensors.index.json") ||
         std::find(carried.begin(), carried.end(), name) != carried.end() || std::find(side.begin(), side.end(), name) != side.end();
}

// A file by its size and the FNV-1a hash of its first and last 64 KiB ("missing" when it does not
// exist, "unreadable" when it cannot be read); a directory by the files ftdist reads in it.
std::string file_digest(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno == ENOENT ? "missing" : "unreadable";
  if (S_ISDIR(st.st_mode)) {
    nlohmann::ordered_json files = nlohmann::ordered_json::object();
    for (const std::string& name : list_directory(path))
      if (read_from_directory(name) && file_exists(path + "/" + name)) files[name] = file_digest(path + "/" + name);
    return files.dump();
  }
  constexpr int64_t kEdge = 64 << 10;
  const int64_t size = int64_t(st.st_size);
  std::ifstream in(path, std::ios::binary);
  std::string head(size_t(std::min(size, kEdge)), '\0'), tail(size_t(std::max<int64_t>(0, std::min(kEdge, size - kEdge))), '\0');
  in.read(head.data(), std::streamsize(head.size()));
  in.seekg(size - int64_t(tail.size()));
  in.read(tail.data(), std::streamsize(tail.size()));
  if (!in) return "unreadable";
  return std::to_string(size) + " bytes, " + hex64(fnv1a64(head + tail));
}

}  // namespace

void check_same_config_on_every_rank(const RunConfig& config, comm::Communicator& world) {
  if (world.size() == 1) return;
  nlohmann::ordered_json mine = run_config_json(config);
  mine["checkpoint"]["dir"] = config.checkpoint_root();  // as given: nodes may spell one shared directory's absolute path apart
  stop_unless_every_rank_agrees(keys_unlike_rank0(mine, world), world, config.origin, "run config differs",
                                "every rank must read the same config file and --set flags");
}

void check_same_inputs_on_every_rank(const RunConfig& config, comm::Communicator& world) {
  if (world.size() == 1) return;
  nlohmann::ordered_json mine = nlohmann::ordered_json::object();
  auto add = [&](const char* section, const char* key, const std::string& path) {
    if (!path.empty()) mine[section][key] = file_digest(path);
  };
  add("model", "path", config.model_path);
  add("model", "config", config.model_config);
  add("data", "train", config.train_data);
  add("data", "eval", config.eval_data);
  add("data", "tokenizer", config.tokenizer);
  stop_unless_every_rank_agrees(keys_unlike_rank0(mine, world), world, config.origin, "copies of the input files differ",
                                "every rank must read the same files (a shared file system, or identical copies on every node)");
}

}  // namespace ftdist::train
