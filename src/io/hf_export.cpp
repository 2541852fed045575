#include "ftdist/io/hf_export.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>  // AT_FDCWD
#include <stdio.h>  // renameat2, RENAME_EXCHANGE
#include <map>
#include <nlohmann/json.hpp>

#include "ftdist/core/check.h"
#include "ftdist/core/dtype.h"
#include "ftdist/core/json.h"
#include "ftdist/core/log.h"
#include "ftdist/core/suggest.h"
#include "ftdist/core/stop_signal.h"
#include "ftdist/core/text_file.h"
#include "ftdist/io/checkpoint.h"

namespace ftdist::io {
namespace {

// The config with its dtype set to the exported one (Transformers' default load dtype), and without
// "auto_map": the export holds the native architecture ftdist computed (and checked against
// Transformers' own code), not a model directory's custom code, whose .py files it does not carry.
std::string config_with_dtype(const std::string& text, at::ScalarType dtype) {
  nlohmann::ordered_json j = parse_ordered_json(text, "config.json");
  j.erase("auto_map");
  const char* name = hf_dtype_name(dtype);
  if (j.contains("dtype")) j["dtype"] = name;
  if (j.contains("torch_dtype") || !j.contains("dtype")) j["torch_dtype"] = name;
  return j.dump(2) + "\n";
}

}  // namespace

std::string hf_shard_file_name(int f, int n) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "model-%05d-of-%05d.safetensors", f + 1, n);
  return buf;
}

const std::vector<std::string>& tokenizer_file_names() {
  static const std::vector<std::string> names = {
      "tokenizer.json",      "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
      "added_tokens.json",   "vocab.json",      "merges.txt",            "vocab.txt",
      "chat_template.jinja", "chat_template.json",
      "ftdist-tokenizer.json"};  // (data::kByteTokenizerFile: the byte-level tokenizer's)
  return names;
}

const std::vector<std::string>& model_side_file_names() {
  static const std::vector<std::string> names = {"generation_config.json"};
  return names;
}

int copy_carried_files(const std::string& tokenizer_dir, const std::string& model_dir, const std::string& to) {
  int copied = 0;
  // The files `names` of directory `from` that exist, into directory `into`.
  auto copy = [&](const std::string& from, const std::string& into, const std::vector<std::string>& names, const char* what) {
    if (from.empty()) return;
    for (const std::string& name : names) {
      if (!file_exists(from + "/" + name)) continue;
      write_text_file_atomic(into + "/" + name, read_text_file(from + "/" + name, what), what);
      ++copied;
    }
  };
  copy(tokenizer_dir, to, tokenizer_file_names(), "tokenizer files");
  copy(model_dir, to, model_side_file_names(), "generation config");
  // The named chat templates Transformers 5 saves in a directory of their own ("tool_use", ...).
  const std::string more = tokenizer_dir + "/" + kChatTemplatesDir;
  if (!tokenizer_dir.empty() && is_directory(more)) {
    make_directories(to + "/" + kChatTemplatesDir, "tokenizer files");
    copy(more, to + "/" + kChatTemplatesDir, list_directory(more), "tokenizer files");
  }
  return copied;
}

namespace {

constexpr const char* kManifest = "ftdist-export.json";

void write_manifest(const std::string& dir, const std::vector<std::string>& files) {
  const nlohmann::ordered_json j = {{"format", "ftdist-export"}, {"files", files}};
  write_text_file_atomic(dir + "/" + kManifest, j.dump(2) + "\n", "export manifest");
}

// The files the manifest of `dir` lists, the manifest itself included; Error(BadInput) naming `what`
// when there is no manifest or it is not one.
std::vector<std::string> manifest_files(const std::string& dir, const std::string& what) {
  const std::string path = dir + "/" + kManifest;
  FT_CHECK_ARG(file_exists(path), what << ": '" << dir << "' exists and was not written by ftdist (no " << kManifest
                                       << "); move it away or choose another directory");
  const nlohmann::json j = parse_json(read_text_file(path, what, uint64_t(16) << 20), path);
  FT_CHECK_ARG(j.is_object() && j.value("format", "") == "ftdist-export" && j.contains("files") && j["files"].is_array(),
               path << ": not an ftdist export manifest");
  std::vector<std::string> files{kManifest};
  for (const nlohmann::json& f : j["files"]) {
    FT_CHECK_ARG(f.is_string() && f.get<std::string>().find('/') == std::string::npos && f.get<std::string>() != ".." &&
                     f.get<std::string>() != ".",
                 path << ": \"files\" must hold plain file names, got " << json_excerpt(f));
    files.push_back(f.get<std::string>());
  }
  return files;
}

}  // namespace

void check_replaceable_export(const std::string& dir, const std::string& what) {
  if (!is_directory(dir) && !file_exists(dir)) return;
  FT_CHECK_ARG(is_directory(dir), what << ": '" << dir << "' is a file, not an export directory; move it away");
  const std::vector<std::string> ours = manifest_files(dir, what);
  std::vector<std::string> theirs;
  for (const std::string& name : list_directory(dir))
    if (std::find(ours.begin(), ours.end(), name) == ours.end()) theirs.push_back(name);
  FT_CHECK_ARG(theirs.empty(), what << ": '" << dir << "' holds files ftdist did not write (" << excerpt(join_or(theirs), 200)
                                    << "); move them away, or choose another directory");
}

void remove_export(const std::string& dir, const std::string& what) {
  check_replaceable_export(dir, what);
  remove_tree(dir, what);  // every file in it is ours (checked)
}

namespace {
// "out/" is "out" (a shell's completion adds the slash; OUT.tmp must be OUT's sibling, not inside it).
std::string without_trailing_slashes(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}
}  // namespace

HfExporter::HfExporter(std::string out_dir, const plan::ModelSpec& spec, const std::string& config_text,
                       ExportOptions options)
    : out_(without_trailing_slashes(std::move(out_dir))), tmp_(out_ + ".tmp"), options_(options), units_(spec.units()) {
  for (auto& unit : units_) unit.tensors = spec.hf_tensors(unit);  // as the files store them (Phi-3 fused)
  lock_ = std::make_unique<OutputLock>(out_, "export");
  FT_CHECK_ARG(at::isFloatingType(options.dtype), "export: the dtype must be floating, got " << dtype_name(options.dtype));
  FT_CHECK_ARG(options.max_shard_bytes > 0, "export: --max-shard-size must be positive");
  if (options.replace && !is_directory(out_) && is_directory(out_ + ".old"))  // a replace_previous() that died midway
    FT_CHECK_ARG(std::rename((out_ + ".old").c_str(), out_.c_str()) == 0, "export: cannot restore '" << out_ << ".old'");
  if (options.replace) check_replaceable_export(out_, "export");
  else FT_CHECK_ARG(!is_directory(out_) && !file_exists(out_), "export: '" << out_ << "' already exists; remove it or choose another --out");
  if (is_directory(tmp_) || file_exists(tmp_)) {  // the scratch directory of an export that died: ftdist's when marked
    manifest_files(tmp_, "export");
    remove_tree(tmp_, "export");
  }
  make_directories(tmp_, "export");
  write_manifest(tmp_, {});  // marks the directory as ftdist's from the start
  // Cut the tensors, in order, into files of at most max_shard_bytes.
  const uint64_t elem = c10::elementSize(options.dtype);
  uint64_t in_file = 0;
  for (const auto& unit : units_)
    for (const auto& t : unit.tensors) {
      const uint64_t bytes = uint64_t(plan::shape_numel(t.shape)) * elem;
      if (file_first_.empty() || (in_file > 0 && in_file + bytes > options.max_shard_bytes)) {
        file_first_.push_back(entries_.size());
        in_file = 0;
      }
      in_file += bytes;
      total_bytes_ += bytes;
      entries_.push_back({t.name, options.dtype, t.shape});
    }
  write_text_file_atomic(tmp_ + "/config.json", config_with_dtype(config_text, options.dtype), "export config.json");
}

HfExporter::~HfExporter() {
  writer_.reset();
  if (!finished_) {
    try {
      remove_tree(tmp_, "export");
    } catch (...) {
    }
  }
}

void HfExporter::open_file(size_t f) {
  const size_t end = f + 1 < file_first_.size() ? file_first_[f + 1] : entries_.size();
  std::vector<SafetensorsWriter::Entry> mine(entries_.begin() + long(file_first_[f]), entries_.begin() + long(end));
  writer_ = std::make_unique<SafetensorsWriter>(tmp_ + "/" + hf_shard_file_name(int(f), num_files()), std::move(mine),
                                                std::map<std::string, std::string>{{"format", "pt"}});
  open_ = int(f);
}

void HfExporter::add_unit(const at::Tensor& flat) {
  FT_CHECK(next_unit_ < units_.size() && in_unit_ == 0, ErrorKind::Internal, "export: add_unit() after a partial unit, or past the last");
  const auto& unit = units_[next_unit_];
  FT_CHECK(flat.numel() >= unit.numel(), ErrorKind::Internal,
           "export: unit " << unit.name << " has " << flat.numel() << " elements, expected " << unit.numel());
  add_piece(flat.reshape({-1}).narrow(0, 0, unit.numel()));
}

void HfExporter::add_piece(const at::Tensor& piece_in) {
  FT_CHECK(next_unit_ < units_.size(), ErrorKind::Internal, "export: more units than the model has");
  const auto& unit = units_[next_unit_];
  const at::Tensor piece = piece_in.reshape({-1});
  FT_CHECK(in_unit_ + piece.numel() <= unit.numel(), ErrorKind::Internal,
           "export: unit " << unit.name << " gets " << in_unit_ + piece.numel() << " elements, it has " << unit.numel());
  // A weight that is NaN or Inf would load in Transformers and compute nothing: not exported.
  FT_CHECK_ARG(at::isfinite(piece).all().item<bool>(),
               "export: unit " << unit.name << " holds NaN or Inf weights; nothing was written to '" << out_ << "'");
  for (int64_t at = 0; at < piece.numel();) {
    const SafetensorsWriter::Entry& e = entries_[next_entry_];
    const size_t f = size_t(std::upper_bound(file_first_.begin(), file_first_.end(), next_entry_) - file_first_.begin()) - 1;
    if (open_ != int(f)) {
      if (writer_) writer_->finish();
      open_file(f);
    }
    const int64_t numel = plan::shape_numel(e.shape), n = std::min(numel - in_entry_, piece.numel() - at);
    writer_->write_part(e.name, piece.narrow(0, at, n));
    at += n;
    in_entry_ += n;
    if (in_entry_ == numel) {
      ++next_entry_;
      in_entry_ = 0;
    }
  }
  in_unit_ += piece.numel();
  if (in_unit_ == unit.numel()) {
    ++next_unit_;
    in_unit_ = 0;
  }
}

void HfExporter::copy_carried_files(const std::string& tokenizer_dir, const std::string& model_dir) {
  io::copy_carried_files(tokenizer_dir, model_dir, tmp_);
}

void HfExporter::finish() {
  FT_CHECK(next_unit_ == units_.size(), ErrorKind::Internal,
           "export: " << next_unit_ << " of " << units_.size() << " units were written");
  if (writer_) writer_->finish();
  writer_.reset();
  nlohmann::ordered_json index;
  nlohmann::ordered_json map = nlohmann::ordered_json::object();
  for (size_t f = 0; f < file_first_.size(); ++f) {
    const size_t end = f + 1 < file_first_.size() ? file_first_[f + 1] : entries_.size();
    for (size_t e = file_first_[f]; e < end; ++e) map[entries_[e].name] = hf_shard_file_name(int(f), num_files());
  }
  index["metadata"] = {{"total_size", total_bytes_}};
  index["weight_map"] = map;
  write_text_file_atomic(tmp_ + "/model.safetensors.index.json", index.dump(2) + "\n", "export index");
  std::vector<std::string> files;
  for (const std::string& name : list_directory(tmp_))
    if (name != kManifest) files.push_back(name);
  write_manifest(tmp_, files);
  fsync_directory(tmp_, "export");
  if (options_.replace && is_directory(out_)) {
    replace_previous();
  } else {
    FT_CHECK_ARG(std::rename(tmp_.c_str(), out_.c_str()) == 0,
                 "export: cannot rename '" << tmp_ << "' to '" << out_ << "' (" << std::strerror(errno) << ")");
  }
  finished_ = true;
}

// The complete new export (OUT.tmp) takes OUT's place in one rename(2) exchange; the previous
// export, now OUT.tmp, is removed (an interrupted removal is swept by the next export's constructor).
// Where the file system cannot exchange, the previous export moves to OUT.old first.
void HfExporter::replace_previous() {
  if (::renameat2(AT_FDCWD, tmp_.c_str(), AT_FDCWD, out_.c_str(), RENAME_EXCHANGE) == 0) {
    remove_tree(tmp_, "export");  // OUT is the new export; what remains in OUT.tmp is the old one
    return;
  }
  const std::string old = out_ + ".old";
  if (is_directory(old)) remove_export(old, "export");
  FT_CHECK_ARG(std::rename(out_.c_str(), old.c_str()) == 0,
               "export: cannot move the previous export '" << out_ << "' to '" << old << "' (" << std::strerror(errno) << ")");
  if (std::rename(tmp_.c_str(), out_.c_str()) != 0) {
    const int err = errno;
    std::rename(old.c_str(), out_.c_str());  // put the previous export back
    FT_CHECK_ARG(false, "export: cannot rename '" << tmp_ << "' to '" << out_ << "' (" << std::strerror(err) << ")");
  }
  remove_export(old, "export");
}

int export_checkpoint(const CheckpointReader& ckpt, const std::string& out_dir, ExportOptions options) {
  HfExporter ex(out_dir, ckpt.spec(), ckpt.config_text(), options);
  const auto units = ckpt.spec().units();
  for (size_t u = 0; u < units.size(); ++u) {
    StopOnSignal::check();  // (under `ftdist export`: a SIGTERM removes OUT.tmp, never a half export)
    // The fp32 master in pieces of kExportPieceElements; the pages read are dropped after each piece.
    at::Tensor buf = at::empty({std::min(units[u].numel(), kExportPieceElements)}, at::kFloat);
    for (int64_t at = 0; at < units[u].numel(); at += buf.numel()) {
      const at::Tensor piece = buf.narrow(0, 0, std::min(buf.numel(), units[u].numel() - at));
      ckpt.read_unit_range(u, at, piece);
      ex.add_piece(piece);
      ckpt.release_pages();
    }
    if ((u + 1) % 8 == 0 || u + 1 == units.size())
      FT_LOG_INFO("export: " << u + 1 << "/" << units.size() << " units written");
  }
  ex.copy_carried_files(ckpt.dir(), ckpt.dir());
  StopOnSignal::check();
  ex.finish();
  return ex.num_files();
}

}  // namespace ftdist::io
