#include "ftdist/io/hf_checkpoint.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "ftdist/core/check.h"
#include "ftdist/core/dtype.h"
#include "ftdist/core/json.h"
#include "ftdist/core/log.h"
#include "ftdist/core/suggest.h"
#include "ftdist/core/text_file.h"

namespace ftdist::io {

HfCheckpoint::HfCheckpoint(const std::string& dir, const std::string& what) : dir_(dir) {
  FT_CHECK_ARG(is_directory(dir), what << ": '" << dir << "' is not a directory (expected a Hugging Face model directory "
                                                   "with config.json and *.safetensors)");
  config_text_ = read_text_file(dir + "/config.json", what);
  spec_ = plan::model_from_hf_config_text(config_text_, dir + "/config.json");
  refuse_quantized();
  units_ = spec_.units();
  const std::string index = dir + "/model.safetensors.index.json";
  std::vector<std::string> names;
  if (!file_exists(dir + "/model.safetensors") && file_exists(index)) {
    const nlohmann::json j = parse_json(read_text_file(index, what), index);
    FT_CHECK_ARG(j.contains("weight_map") && j["weight_map"].is_object(), index << ": missing object \"weight_map\"");
    std::set<std::string> files;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      FT_CHECK_ARG(it->is_string(), index << ": weight_map[\"" << it.key() << "\"] must be a file name");
      files.insert(it->get<std::string>());
    }
    names.assign(files.begin(), files.end());
  } else {
    FT_CHECK_ARG(file_exists(dir + "/model.safetensors"),
                 dir << ": neither model.safetensors nor model.safetensors.index.json found");
    names.push_back("model.safetensors");
  }
  for (const std::string& n : names) {
    FT_CHECK_ARG(n.find('/') == std::string::npos, index << ": shard name '" << n << "' must be a plain file name");
    files_.push_back(std::make_unique<SafetensorsFile>(dir + "/" + n));
    for (const TensorInfo& t : files_.back()->tensors()) {
      FT_CHECK_ARG(where_.count(t.name) == 0, dir << ": tensor \"" << t.name << "\" appears in two files");
      where_[t.name] = {files_.size() - 1, t.name};
    }
  }
  add_aliases();
  check_tied_head();
  const std::vector<std::string> unused = unused_tensors();
  if (!unused.empty() && log::rank() <= 0)
    FT_LOG_WARN(dir_ << ": " << unused.size() << " stored tensor(s) the config does not use are not loaded (\"" << unused[0]
                     << "\"" << (unused.size() > 1 ? ", ..." : "") << "; config.json has " << spec_.layers
                     << " layers): check that config.json belongs to these weights");
}

std::vector<std::string> HfCheckpoint::unused_tensors() const {
  std::set<std::string> used;
  for (const auto& unit : units_)
    for (const auto& t : spec_.hf_tensors(unit)) used.insert(t.name);
  std::set<std::string> stored_used;  // (a tied head stands for the embeddings under either name)
  for (const std::string& name : used)
    if (where_.count(name)) stored_used.insert(where_.at(name).stored);
  std::vector<std::string> out;
  for (const auto& [name, loc] : where_) {
    const bool rope_buffer = ends_with(name, ".inv_freq");
    const bool tied_copy = spec_.tie_embeddings && name == "lm_head.weight";  // (check_tied_head: equal)
    if (!used.count(name) && !stored_used.count(loc.stored) && !rope_buffer && !tied_copy) out.push_back(name);
  }
  return out;
}

// A quantized checkpoint (bitsandbytes, GPTQ, AWQ, compressed-tensors, ...) stores integer codes
// and scales where the model has weights: never computed with as if they were the weights.
void HfCheckpoint::refuse_quantized() const {
  const nlohmann::json config = parse_json(config_text_, dir_ + "/config.json");
  if (!config.contains("quantization_config") || config.at("quantization_config").is_null()) return;
  const nlohmann::json& q = config.at("quantization_config");
  const std::string method = q.is_object() && q.contains("quant_method") && q.at("quant_method").is_string()
                                 ? q.at("quant_method").get<std::string>() : "unnamed";
  FT_CHECK_ARG(false, dir_ << "/config.json: the checkpoint is quantized (quantization_config, quant_method \"" << excerpt(method)
                           << "\"); ftdist trains and evaluates full-precision weights (fp32, bf16 or fp16): use the "
                              "unquantized checkpoint");
}

void HfCheckpoint::add_aliases() {
  const std::string embed = "model.embed_tokens.weight", head = "lm_head.weight";
  const bool prefixed = std::any_of(where_.begin(), where_.end(), [](const auto& e) { return e.first.rfind("model.", 0) == 0; });
  if (!prefixed && where_.count("embed_tokens.weight")) {  // a base model's checkpoint (LlamaModel.save_pretrained)
    std::map<std::string, Location> named;
    for (auto& [name, loc] : where_) named[name == head ? name : "model." + name] = loc;
    where_ = std::move(named);
  }
  if (spec_.tie_embeddings && !where_.count(embed) && where_.count(head)) where_[embed] = where_.at(head);
}

// A tied config whose files also hold an lm_head.weight: fine when it is a copy of the embeddings;
// otherwise which head the model has is ambiguous (Transformers 5 loads it untied, older versions
// tie it over), so ftdist refuses rather than pick one. Compared in blocks of rows, never whole.
void HfCheckpoint::check_tied_head() const {
  const std::string head = "lm_head.weight", embed = "model.embed_tokens.weight";
  if (!spec_.tie_embeddings || !where_.count(head) || !where_.count(embed)) return;
  if (where_.at(head).stored == where_.at(embed).stored) return;  // the head standing for the embeddings
  const TensorInfo& h = info(head);
  const TensorInfo& e = info(embed);
  bool same = h.shape == e.shape;
  const int64_t n = e.numel(), block = int64_t(1) << 22;
  for (int64_t first = 0; same && first < n; first += block) {
    const int64_t count = std::min(block, n - first);
    at::Tensor a = at::empty({count}, at::kFloat), b = at::empty({count}, at::kFloat);
    read_range(head, first, count, a);
    read_range(embed, first, count, b);
    same = at::equal(a, b);
  }
  FT_CHECK_ARG(same, dir_ << "/config.json says tie_word_embeddings = true, but the checkpoint also holds an \"lm_head.weight\" "
                          "that differs from \"model.embed_tokens.weight\" (Transformers 5 loads it as a separate head, older "
                          "versions tie it over): set tie_word_embeddings to false to train that head, or remove the tensor");
}

const TensorInfo& HfCheckpoint::info(const std::string& name) const {
  auto it = where_.find(name);
  FT_CHECK_ARG(it != where_.end(), dir_ << ": the checkpoint has no tensor \"" << name << "\""
                                        << (name == "lm_head.weight" ? " (config.json does not tie the embeddings: tie_word_embeddings is "
                                                                       "false or absent, Transformers' default; set it to true where "
                                                                       "lm_head shares model.embed_tokens.weight)" : ""));
  return files_[it->second.file]->info(it->second.stored);
}

void HfCheckpoint::read_unit_range(size_t unit, int64_t begin, const at::Tensor& out) const {
  FT_CHECK(unit < units_.size(), ErrorKind::Internal, dir_ << ": unit " << unit << " of " << units_.size());
  load_unit_shard(*this, units_[unit], begin, out);
}

void HfCheckpoint::read_range(const std::string& name, int64_t first, int64_t count, const at::Tensor& out) const {
  info(name);  // names the directory when missing
  const Location& loc = where_.at(name);
  files_[loc.file]->read_range(loc.stored, first, count, out);
}

void HfCheckpoint::release_pages() const {
  for (const auto& f : files_) f->release_pages();
}

at::ScalarType HfCheckpoint::stored_dtype() const {
  const nlohmann::json config = parse_json(config_text_, dir_ + "/config.json");
  at::ScalarType named;
  for (const char* key : {"dtype", "torch_dtype"})
    if (config.contains(key) && config.at(key).is_string() && hf_dtype_from_name(config.at(key), &named))
      return named;
  std::map<at::ScalarType, int64_t> count;
  for (const auto& f : files_)  // (each stored tensor once, whatever names stand for it)
    for (const TensorInfo& t : f->tensors()) count[t.dtype] += t.numel();
  at::ScalarType best = at::kFloat;
  int64_t most = -1;
  for (const auto& [t, n] : count)
    if (n > most) best = t, most = n;
  return best;
}

void load_unit_shard(const HfCheckpoint& ckpt, const plan::ModelSpec::Unit& unit, int64_t shard_begin,
                     const at::Tensor& shard) {
  FT_CHECK_ARG(shard.is_contiguous(), "load_unit_shard: the shard buffer must be contiguous");
  const int64_t shard_end = shard_begin + shard.numel();
  at::Tensor flat = shard.view({-1});
  int64_t offset = 0;
  // As the files store them (Phi-3's fused qkv_proj / gate_up_proj cover their parts' contiguous range).
  for (const auto& t : ckpt.spec().hf_tensors(unit)) {
    const TensorInfo& info = ckpt.info(t.name);
    FT_CHECK_ARG(info.shape == t.shape, ckpt.dir() << ": tensor \"" << t.name << "\" has shape "
                                                   << c10::IntArrayRef(info.shape) << " in the checkpoint, config.json says "
                                                   << c10::IntArrayRef(t.shape));
    FT_CHECK_ARG(at::isFloatingType(info.dtype),
                 ckpt.dir() << ": tensor \"" << t.name << "\" is stored as " << safetensors_dtype_name(info.dtype)
                            << "; a weight must be F32, BF16 or F16 (integer codes of a quantized checkpoint are not weights)");
    int64_t numel = info.numel();
    int64_t lo = std::max(offset, shard_begin), hi = std::min(offset + numel, shard_end);
    if (lo < hi) ckpt.read_range(t.name, lo - offset, hi - lo, flat.narrow(0, lo - shard_begin, hi - lo));
    offset += numel;
  }
  // Padding past the unit's last tensor is zero.
  if (shard_end > offset) {
    int64_t lo = std::max(offset, shard_begin);
    flat.narrow(0, lo - shard_begin, shard_end - lo).zero_();
  }
}

void save_hf_model(const std::string& dir, const std::string& config_text,
                   const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  make_directories(dir, "save_hf_model");
  save_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});
  write_text_file_atomic(dir + "/config.json", config_text, "config.json");
}

}  // namespace ftdist::io
