#include "ftdist/io/checkpoint.h"

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <sstream>
#include <type_traits>
#include <sys/stat.h>

#include "ftdist/core/check.h"
#include "ftdist/core/json.h"
#include "ftdist/core/log.h"
#include "ftdist/core/suggest.h"
#include "ftdist/core/text_file.h"
#include "ftdist/io/hf_export.h"
#include "ftdist/plan/run_setup.h"

namespace ftdist::io {
namespace {

using json = nlohmann::json;

constexpr const char* kFormatName = "ftdist-checkpoint";

std::string numbered(const char* prefix, int64_t n, int width) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s%0*lld", prefix, width, static_cast<long long>(n));
  return buf;
}

template <typename T>
T field(const json& j, const char* key, const std::string& origin) {
  FT_CHECK_ARG(j.contains(key), origin << ": missing key \"" << key << "\"");
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>)  // (6.5 is not a step)
    FT_CHECK_ARG(j.at(key).is_number_integer(), origin << ": key \"" << key << "\" must be an integer, got " << json_excerpt(j.at(key)));
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    FT_CHECK_ARG(false, origin << ": key \"" << key << "\" has the wrong type (" << json_excerpt(j.at(key)) << ")");
  }
  return T{};
}

// The optimizer's and the trainer's states, which the runtime and the trainer read by key: each
// key that is there has the type and range they expect (a tampered file is refused naming it).
void check_states(const CheckpointMeta& m, const std::string& origin) {
  FT_CHECK_ARG(m.optimizer.is_object(), origin << ": \"optimizer\" must be an object, got " << json_excerpt(m.optimizer));
  FT_CHECK_ARG(m.trainer.is_object(), origin << ": \"trainer\" must be an object, got " << json_excerpt(m.trainer));
  auto count = [&](const json& parent, const char* key, const char* where) {
    if (!parent.contains(key)) return;
    const json& v = parent[key];
    FT_CHECK_ARG(v.is_number_integer() && v.get<int64_t>() >= 0,
                 origin << ": \"" << where << "." << key << "\" must be a non-negative integer, got " << json_excerpt(v));
  };
  count(m.optimizer, "step", "optimizer");
  if (m.optimizer.contains("step"))  // skipped steps do not count: never past the checkpoint's step
    FT_CHECK_ARG(m.optimizer["step"].get<int64_t>() <= m.step, origin << ": \"optimizer.step\" (" << m.optimizer["step"].get<int64_t>()
                                                                   << ") is past the checkpoint's step " << m.step);
  if (m.optimizer.contains("name"))
    FT_CHECK_ARG(m.optimizer["name"].is_string(), origin << ": \"optimizer.name\" must be a string, got " << json_excerpt(m.optimizer["name"]));
  for (const char* k : {"beta1", "beta2", "eps", "weight_decay", "momentum"})
    if (m.optimizer.contains(k))
      FT_CHECK_ARG(m.optimizer[k].is_number(), origin << ": \"optimizer." << k << "\" must be a number, got " << json_excerpt(m.optimizer[k]));
  count(m.trainer, "skipped_steps", "trainer");
  if (m.trainer.contains("skipped_steps"))
    FT_CHECK_ARG(m.trainer["skipped_steps"].get<int64_t>() <= m.step, origin << ": \"trainer.skipped_steps\" ("
                                                                         << m.trainer["skipped_steps"].get<int64_t>()
                                                                         << ") is past the checkpoint's step " << m.step);
  for (const char* k : {"rng_cpu", "trajectory_hash"})
    if (m.trainer.contains(k))
      FT_CHECK_ARG(m.trainer[k].is_string(), origin << ": \"trainer." << k << "\" must be a string, got " << json_excerpt(m.trainer[k]));
  for (const char* k : {"sampler", "run_config"})
    if (m.trainer.contains(k))
      FT_CHECK_ARG(m.trainer[k].is_object(), origin << ": \"trainer." << k << "\" must be an object, got " << json_excerpt(m.trainer[k]));
  if (m.trainer.contains("sampler"))
    for (const char* k : {"next_step", "global_batch", "samples", "position"}) count(m.trainer["sampler"], k, "trainer.sampler");
  if (m.trainer.contains("sampler") && m.trainer["sampler"].contains("global_batch"))
    FT_CHECK_ARG(m.trainer["sampler"]["global_batch"].get<int64_t>() > 0,
                 origin << ": \"trainer.sampler.global_batch\" must be positive, got 0");
  if (m.trainer.contains("run_config")) {  // the saved run's config: sections of keys; the resume reads train.steps
    for (auto s = m.trainer["run_config"].begin(); s != m.trainer["run_config"].end(); ++s)
      FT_CHECK_ARG(s->is_object(), origin << ": \"trainer.run_config." << s.key() << "\" must be an object, got " << json_excerpt(*s));
    if (m.trainer["run_config"].contains("train")) count(m.trainer["run_config"]["train"], "steps", "trainer.run_config.train");
  }
  if (m.trainer.contains("rng_cpu")) {
    const std::string& hex = m.trainer["rng_cpu"].get_ref<const std::string&>();
    FT_CHECK_ARG(hex.size() % 2 == 0 && hex.find_first_not_of("0123456789abcdef") == std::string::npos,
                 origin << ": \"trainer.rng_cpu\" must be hex digits, got \"" << excerpt(hex) << "\"");
  }
}

// What a checkpoint directory holds besides what a save writes there (meta.json, config.json, the
// rank files, the tokenizer files and generation_config.json).
std::vector<std::string> foreign_files(const std::string& dir) {
  const std::vector<std::string>& tokenizer = tokenizer_file_names();
  const std::vector<std::string>& model_side = model_side_file_names();
  std::vector<std::string> out;
  for (const std::string& n : list_directory(dir)) {
    const bool ours = n == "meta.json" || n == "config.json" || (n.rfind("rank-", 0) == 0 && ends_with(n, ".safetensors")) ||
                      n == kChatTemplatesDir ||
                      std::find(tokenizer.begin(), tokenizer.end(), n) != tokenizer.end() ||
                      std::find(model_side.begin(), model_side.end(), n) != model_side.end();
    if (!ours) out.push_back(n);
  }
  return out;
}

// A temporary a save makes: .tmp-step-N (being written), .tmp-pruned-step-N, .tmp-replaced-step-N
// (being removed). Other entries of the root, .tmp- ones among them, are the user's.
bool own_temporary(const std::string& root, const std::string& name) {
  for (const char* prefix : {".tmp-step-", ".tmp-pruned-step-", ".tmp-replaced-step-"}) {
    const std::string p = prefix;
    if (name.size() > p.size() && name.compare(0, p.size(), p) == 0 &&
        name.find_first_not_of("0123456789", p.size()) == std::string::npos)
      return is_directory(root + "/" + name);
  }
  return false;
}

}  // namespace

std::vector<plan::OptimizerState> checkpoint_states(plan::OptimizerKind optimizer) {
  std::vector<plan::OptimizerState> out = {{"master", plan::OptimizerState::Dtype::Master, 1}};
  for (const plan::OptimizerState& s : plan::optimizer_states(optimizer)) out.push_back(s);
  return out;
}

int64_t file_shard_size(int64_t numel, int file_shards, int64_t alignment) {
  return plan::shard_size(numel, file_shards, alignment);
}

std::pair<int64_t, int64_t> file_shard_range(int64_t numel, int k, int file_shards, int64_t alignment) {
  const int64_t s = file_shard_size(numel, file_shards, alignment);
  const int64_t begin = std::min(numel, int64_t(k) * s);
  return {begin, std::min(numel, begin + s)};
}

std::string rank_file_name(int k, int file_shards) {
  return numbered("rank-", k, 5) + numbered("-of-", file_shards, 5) + ".safetensors";
}

std::string state_tensor_name(const std::string& unit, const std::string& state) { return unit + "/" + state; }

std::string checkpoint_dir_name(int64_t step) { return numbered("step-", step, 8); }

std::string checkpoint_tmp_dir(const std::string& root, int64_t step) {
  return root + "/.tmp-" + checkpoint_dir_name(step);
}

json CheckpointMeta::to_json() const {
  json j;
  j["format"] = kFormatName;
  j["format_version"] = format_version;
  j["step"] = step;
  j["world_size"] = world_size;
  j["file_shards"] = file_shards;
  j["shard_alignment"] = shard_alignment;
  j["stage"] = stage;
  j["precision"] = precision;
  j["model"] = model_name;
  json us = json::array();
  for (const Unit& u : units) {
    json ts = json::array();
    int64_t offset = 0;
    for (const auto& t : u.tensors) {
      ts.push_back({{"name", t.name}, {"shape", t.shape}, {"offset", offset}});
      offset += plan::shape_numel(t.shape);
    }
    us.push_back({{"name", u.name}, {"numel", u.numel}, {"tensors", ts}});
  }
  j["units"] = us;
  j["optimizer"] = optimizer;
  j["trainer"] = trainer;
  if (saved_at > 0) j["saved_at"] = saved_at;
  return j;
}

CheckpointMeta CheckpointMeta::from_json(const std::string& text, const std::string& origin) {
  const json j = parse_json(text, origin);
  FT_CHECK_ARG(j.is_object() && j.value("format", "") == kFormatName,
               origin << ": not an ftdist checkpoint (expected \"format\": \"" << kFormatName << "\")");
  CheckpointMeta m;
  m.format_version = field<int>(j, "format_version", origin);
  FT_CHECK_ARG(m.format_version == kCheckpointFormatVersion, origin << ": format_version " << m.format_version
                                                                     << " is not supported (this ftdist reads version "
                                                                     << kCheckpointFormatVersion << ")");
  m.step = field<int64_t>(j, "step", origin);
  m.world_size = field<int>(j, "world_size", origin);
  m.file_shards = field<int>(j, "file_shards", origin);
  FT_CHECK_ARG(m.step >= 0 && m.world_size >= 1 && m.file_shards >= 1,
               origin << ": step, world_size and file_shards must be non-negative / positive");
  if (j.contains("shard_alignment")) m.shard_alignment = field<int64_t>(j, "shard_alignment", origin);  // absent: 1
  FT_CHECK_ARG(m.shard_alignment >= 1 && m.shard_alignment <= (int64_t(1) << 20),
               origin << ": \"shard_alignment\" must be 1..2^20, got " << m.shard_alignment);
  m.stage = field<std::string>(j, "stage", origin);
  m.precision = field<std::string>(j, "precision", origin);
  try {
    plan::stage_from_name(m.stage);
    plan::precision_from_name(m.precision);
  } catch (const Error&) {
    FT_CHECK_ARG(false, origin << ": \"stage\" \"" << excerpt(m.stage) << "\" or \"precision\" \"" << excerpt(m.precision)
                               << "\" is not one ftdist writes (stage: full, grad-op, optimizer, none, hybrid; precision: "
                                  "fp32, bf16-mixed, bf16-pure)");
  }
  m.model_name = field<std::string>(j, "model", origin);
  FT_CHECK_ARG(j.contains("units") && j["units"].is_array() && !j["units"].empty(), origin << ": missing array \"units\"");
  for (const json& ju : j["units"]) {
    Unit u;
    u.name = field<std::string>(ju, "name", origin);
    u.numel = field<int64_t>(ju, "numel", origin);
    int64_t total = 0;
    FT_CHECK_ARG(ju.contains("tensors") && ju["tensors"].is_array(), origin << ": unit " << u.name << " has no \"tensors\"");
    for (const json& jt : ju["tensors"]) {
      plan::ModelSpec::Tensor t{field<std::string>(jt, "name", origin), field<std::vector<int64_t>>(jt, "shape", origin)};
      for (int64_t d : t.shape)
        FT_CHECK_ARG(d >= 0 && d <= (int64_t(1) << 40), origin << ": tensor " << excerpt(t.name) << " has the dimension " << d
                                                                 << " (expected 0..2^40)");
      FT_CHECK_ARG(field<int64_t>(jt, "offset", origin) == total,
                   origin << ": tensor " << t.name << " of unit " << u.name << " is not at offset " << total);
      total += plan::shape_numel(t.shape);
      u.tensors.push_back(std::move(t));
    }
    FT_CHECK_ARG(total == u.numel, origin << ": unit " << u.name << " has numel " << u.numel << " but its tensors hold " << total);
    m.units.push_back(std::move(u));
  }
  // absent or null (a checkpoint saved without them): empty
  m.optimizer = j.contains("optimizer") && !j["optimizer"].is_null() ? j["optimizer"] : json::object();
  m.trainer = j.contains("trainer") && !j["trainer"].is_null() ? j["trainer"] : json::object();
  if (j.contains("saved_at")) {
    FT_CHECK_ARG(j["saved_at"].is_number() && j["saved_at"].get<double>() >= 0,
                 origin << ": \"saved_at\" must be a non-negative number of seconds, got " << json_excerpt(j["saved_at"]));
    m.saved_at = j["saved_at"].get<double>();
  }
  check_states(m, origin);
  return m;
}

plan::OptimizerKind CheckpointMeta::optimizer_kind() const {
  const std::string name = optimizer.value("name", std::string("adamw"));
  try {
    return plan::optimizer_from_name(name);
  } catch (const Error&) {
    FT_CHECK_ARG(false, "meta.json: \"optimizer.name\" is '" << excerpt(name) << "' (expected adamw, adamw-8bit or sgd-momentum)");
  }
  return plan::OptimizerKind::AdamW;
}

void CheckpointMeta::check_model(const plan::ModelSpec& spec, const std::string& origin) const {
  const std::vector<plan::ModelSpec::Unit> want = spec.units();
  std::string problem;
  if (want.size() != units.size()) {
    problem = std::to_string(units.size()) + " units in the checkpoint, " + std::to_string(want.size()) + " in the model";
  } else {
    for (size_t u = 0; u < want.size() && problem.empty(); ++u) {
      if (want[u].name != units[u].name || want[u].tensors.size() != units[u].tensors.size()) {
        problem = "unit " + std::to_string(u) + " is " + units[u].name + " in the checkpoint, " + want[u].name + " in the model";
        break;
      }
      for (size_t t = 0; t < want[u].tensors.size(); ++t)
        if (want[u].tensors[t].name != units[u].tensors[t].name || want[u].tensors[t].shape != units[u].tensors[t].shape) {
          std::ostringstream os;
          os << "tensor " << units[u].tensors[t].name << " " << c10::IntArrayRef(units[u].tensors[t].shape)
             << " in the checkpoint, " << want[u].tensors[t].name << " " << c10::IntArrayRef(want[u].tensors[t].shape)
             << " in the model";
          problem = os.str();
          break;
        }
    }
  }
  FT_CHECK_ARG(problem.empty(), origin << ": this checkpoint is of another model (" << model_name << "; " << problem
                                       << ") than the run's (" << spec.name << ")");
}

std::string commit_checkpoint(const std::string& root, const std::string& tmp, const CheckpointMeta& meta,
                              const std::string& config_text, int keep) {
  const std::string what = "checkpoint " + root;
  write_text_file_atomic(tmp + "/config.json", config_text, what);
  CheckpointMeta committed = meta;
  committed.saved_at = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  write_text_file_atomic(tmp + "/meta.json", committed.to_json().dump(2) + "\n", what);
  fsync_directory(tmp, what);
  const std::string name = checkpoint_dir_name(meta.step);
  const std::string final_dir = root + "/" + name;
  // An older save of the same step (a run resumed from before it) is moved aside first, and
  // removed below with the other temporaries; files a save does not write (the user's) move into
  // the new save.
  const std::string aside = root + "/.tmp-replaced-" + name;
  const bool replaces = is_directory(final_dir);
  if (replaces) {
    remove_tree(aside, what);
    FT_CHECK_ARG(std::rename(final_dir.c_str(), aside.c_str()) == 0,
                 what << ": cannot move '" << final_dir << "' aside (" << std::strerror(errno) << ")");
  }
  FT_CHECK_ARG(std::rename(tmp.c_str(), final_dir.c_str()) == 0,
               what << ": cannot rename '" << tmp << "' to '" << final_dir << "' (" << std::strerror(errno) << ")");
  if (replaces)
    for (const std::string& f : foreign_files(aside))
      FT_CHECK_ARG(std::rename((aside + "/" + f).c_str(), (final_dir + "/" + f).c_str()) == 0,
                   what << ": cannot keep '" << f << "' of the replaced " << name << " (" << std::strerror(errno) << ")");
  fsync_directory(root, what);
  write_text_file_atomic(root + "/latest", name + "\n", what);
  fsync_directory(root, what);
  // Only now is anything removed: the checkpoints saved before the newest `keep` and stale
  // temporaries (after a rollback, the abandoned run's later steps go first).
  const std::vector<std::string> dirs = checkpoints_in_save_order(root);
  // A pruned checkpoint is renamed to a temporary first: a save killed while removing it leaves a
  // .tmp- directory that the next save sweeps, never a step directory without its meta.json. One
  // that holds files ftdist does not write there (notes, an export) is kept, with a warning.
  if (keep > 0)
    for (size_t i = 0; i + size_t(keep) < dirs.size(); ++i) {
      if (dirs[i] == name) continue;
      const std::vector<std::string> theirs = foreign_files(root + "/" + dirs[i]);
      if (!theirs.empty()) {
        FT_LOG_WARN(what << ": kept " << dirs[i] << " beyond checkpoint.keep = " << keep << ": it holds files ftdist did not write ("
                         << excerpt(join_or(theirs), 200) << ")");
        continue;
      }
      const std::string pruned = root + "/.tmp-pruned-" + dirs[i];
      remove_tree(pruned, what);
      FT_CHECK_ARG(std::rename((root + "/" + dirs[i]).c_str(), pruned.c_str()) == 0,
                   what << ": cannot move '" << root << "/" << dirs[i] << "' aside to remove it (" << std::strerror(errno) << ")");
    }
  for (const std::string& entry : list_directory(root))
    if (own_temporary(root, entry)) remove_tree(root + "/" + entry, what);
  return final_dir;
}

std::vector<std::string> checkpoints_in_save_order(const std::string& root) {
  // Checkpoints saved without saved_at (older ones) come first, by step: a copy or a restore changes
  // file times, so those say nothing of the order; then the others by saved_at (the step breaks ties).
  std::vector<std::pair<double, std::string>> found;  // (saved at or 0, name)
  for (const std::string& name : list_directory(root)) {
    const std::string meta = root + "/" + name + "/meta.json";
    if (name.rfind("step-", 0) != 0 || !is_checkpoint_dir(root + "/" + name)) continue;
    double at = 0;
    try {
      const json j = parse_json(read_text_file(meta, "checkpoint", uint64_t(64) << 20), meta);
      if (j.is_object() && j.contains("saved_at") && j["saved_at"].is_number()) at = std::max(0.0, j["saved_at"].get<double>());
    } catch (const Error&) {  // (an unreadable meta.json is reported by whoever loads it)
    }
    found.push_back({at, name});
  }
  std::sort(found.begin(), found.end());  // (names of one width sort by step)
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

std::string checkpoint_dir_of(const std::string& path) {
  if (is_checkpoint_dir(path)) return path;
  const std::string latest = find_latest_checkpoint(path);
  return latest.empty() ? path : latest;
}

std::string find_latest_checkpoint(const std::string& root) {
  const std::string latest = root + "/latest";
  struct stat st {};
  if (::stat(latest.c_str(), &st) != 0) {
    FT_CHECK_ARG(errno == ENOENT || errno == ENOTDIR, latest << ": cannot read (" << std::strerror(errno) << ")");
    // No `latest`: a first save that died between renaming its directory into place and writing
    // `latest`, or a removed `latest`. The newest complete checkpoint is the one to go on from —
    // never step 0 over checkpoints that exist.
    const std::vector<std::string> dirs = checkpoints_in_save_order(root);
    if (dirs.empty()) return "";
    const std::string& newest = dirs.back();
    static std::set<std::string> warned;  // (several callers look for it; every rank does)
    if (warned.insert(root).second && log::rank() <= 0)
      FT_LOG_WARN(root << " has checkpoints but no 'latest' (a save interrupted before writing it, or a removed file); "
                       "using the newest complete one, " << newest);
    return root + "/" + newest;
  }
  FT_CHECK_ARG(S_ISREG(st.st_mode), latest << ": expected a file naming the newest checkpoint directory, found "
                                           << (S_ISDIR(st.st_mode) ? "a directory" : "something else") << "; move it away");
  std::string name = read_text_file(latest, "checkpoint", 4096);  // a step directory's name
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  FT_CHECK_ARG(!name.empty() && name.find('/') == std::string::npos && name.find('\n') == std::string::npos,
               latest << ": expected the name of a checkpoint directory, got '" << excerpt(name) << "'");
  const std::string dir = root + "/" + name;
  FT_CHECK_ARG(is_checkpoint_dir(dir), latest << " names '" << excerpt(name) << "', but " << dir << "/meta.json does not exist");
  return dir;
}

bool is_checkpoint_dir(const std::string& dir) { return file_exists(dir + "/meta.json"); }

CheckpointReader::CheckpointReader(const std::string& dir) : dir_(dir) {
  FT_CHECK_ARG(is_directory(dir), "checkpoint: '" << dir << "' is not a directory");
  const std::string meta_path = dir + "/meta.json";
  meta_ = CheckpointMeta::from_json(read_text_file(meta_path, "checkpoint", uint64_t(64) << 20), meta_path);
  config_text_ = read_text_file(dir + "/config.json", "checkpoint");
  spec_ = plan::model_from_hf_config_text(config_text_, dir + "/config.json");
  meta_.check_model(spec_, meta_path);
  states_ = checkpoint_states(meta_.optimizer_kind());
  for (const plan::OptimizerState& st : states_)
    FT_CHECK_ARG(meta_.file_shards == 1 || meta_.shard_alignment % st.block == 0,
                 meta_path << ": \"shard_alignment\" " << meta_.shard_alignment << " does not keep the " << st.block
                           << "-element blocks of state " << st.name << " inside one file shard");
  for (int k = 0; k < meta_.file_shards; ++k) {
    const std::string path = dir + "/" + rank_file_name(k, meta_.file_shards);
    FT_CHECK_ARG(file_exists(path), "checkpoint: rank file '" << path << "' is missing (meta.json lists "
                                                              << meta_.file_shards << " rank files)");
    files_.push_back(std::make_unique<SafetensorsFile>(path));
    check_file_origin(k);
    for (const CheckpointMeta::Unit& u : meta_.units) check_file_states(k, u);
  }
}

// A rank file records the step it was saved at and its own name (older checkpoints: the step only):
// a file copied in from another step, or renamed, would otherwise load as a blend of two states.
void CheckpointReader::check_file_origin(int k) const {
  const SafetensorsFile& f = *files_.at(size_t(k));
  const auto& md = f.metadata();
  const auto step = md.find("step");
  FT_CHECK_ARG(step == md.end() || step->second == std::to_string(meta_.step),
               f.path() << ": the file was saved at step " << excerpt(step->second) << ", meta.json says step " << meta_.step
                        << ": the rank files of one checkpoint were mixed with another's");
  const auto name = md.find("file");
  FT_CHECK_ARG(name == md.end() || name->second == rank_file_name(k, meta_.file_shards),
               f.path() << ": the file was saved as '" << excerpt(name->second) << "': the rank files were renamed or swapped");
}

void CheckpointReader::check_file_states(int k, const CheckpointMeta::Unit& u) const {
  using D = plan::OptimizerState::Dtype;
  const SafetensorsFile& f = *files_.at(size_t(k));
  const auto [begin, end] = file_shard_range(u.numel, k, meta_.file_shards, meta_.shard_alignment);
  for (const plan::OptimizerState& st : states_) {
    const std::string name = state_tensor_name(u.name, st.name);
    FT_CHECK_ARG(f.contains(name), f.path() << ": tensor \"" << name << "\" is missing");
    const TensorInfo& t = f.info(name);
    const int64_t want = begin == end ? 0 : st.entries(end) - begin / st.block;
    const bool dtype_ok = st.dtype == D::U8 ? t.dtype == at::kByte
                          : st.dtype == D::F32 ? t.dtype == at::kFloat
                                               : (t.dtype == at::kFloat || t.dtype == at::kBFloat16);
    FT_CHECK_ARG(dtype_ok && t.numel() == want,
                 f.path() << ": tensor \"" << name << "\" should be " << (st.dtype == D::U8 ? "U8" : st.dtype == D::F32 ? "F32" : "F32 or BF16")
                          << " with " << want << " elements, found " << safetensors_dtype_name(t.dtype) << " with " << t.numel());
  }
}

CheckpointReader::~CheckpointReader() = default;

void CheckpointReader::read_unit_range(size_t unit, int64_t begin, const at::Tensor& out) const {
  read_state_range(unit, "master", begin, out);
}

void CheckpointReader::read_state_range(size_t unit, const std::string& state, int64_t begin, const at::Tensor& out) const {
  FT_CHECK(unit < meta_.units.size(), ErrorKind::Internal, dir_ << ": unit " << unit << " of " << meta_.units.size());
  FT_CHECK_ARG(out.is_contiguous() && begin >= 0, "read_state_range: a contiguous output and a non-negative start are needed");
  const auto st = std::find_if(states_.begin(), states_.end(), [&](const plan::OptimizerState& s) { return state == s.name; });
  FT_CHECK_ARG(st != states_.end(), dir_ << ": this checkpoint (optimizer " << plan::optimizer_name(meta_.optimizer_kind())
                                         << ") has no state \"" << state << "\"");
  FT_CHECK(begin % st->block == 0, ErrorKind::Internal, "read_state_range: " << state << " read from element " << begin
                                                                             << ", not a block boundary");
  const CheckpointMeta::Unit& u = meta_.units[unit];
  const std::string name = state_tensor_name(u.name, state);
  // In entries of the state (elements, or blocks): file k holds [k * s, min(count, (k + 1) * s)).
  const int64_t count = st->entries(u.numel), first = begin / st->block;
  const int64_t s = meta_.file_shards == 1 ? count : file_shard_size(u.numel, meta_.file_shards, meta_.shard_alignment) / st->block;
  at::Tensor flat = out.view({-1});
  const int64_t end = first + flat.numel();
  for (int64_t pos = first; pos < std::min(end, count);) {
    const int k = int(pos / s);
    const int64_t n = std::min({end, count, int64_t(k + 1) * s}) - pos;
    files_[size_t(k)]->read_range(name, pos - int64_t(k) * s, n, flat.narrow(0, pos - first, n));
    pos += n;
  }
  if (end > count) {
    const int64_t lo = std::max(first, count);
    flat.narrow(0, lo - first, end - lo).zero_();
  }
}

void CheckpointReader::release_pages() const {
  for (const auto& f : files_) f->release_pages();
}

}  // namespace ftdist::io
