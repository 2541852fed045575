#include "model_source.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "ftdist/core/bytes.h"
#include "ftdist/core/log.h"
#include "ftdist/core/progress.h"
#include "ftdist/core/text_file.h"
#include "ftdist/data/documents.h"
#include "ftdist/data/token_file.h"
#include "ftdist/data/tokenizer.h"
#include "ftdist/io/hf_export.h"
#include "ftdist/plan/presets.h"
#include "training_data.h"

namespace ftdist::train {

ModelSource model_source(const RunConfig& c) {
  ModelSource m;
  if (!c.model_path.empty() && io::is_checkpoint_dir(c.model_path)) {  // (load_run_config: a root is its newest)
    m.checkpoint = std::make_unique<io::CheckpointReader>(c.model_path);
    m.spec = m.checkpoint->spec();
    m.config_text = m.checkpoint->config_text();
    return m;
  }
  if (!c.model_path.empty()) {
    m.hf = std::make_unique<io::HfCheckpoint>(c.model_path, "model.path");
    m.spec = m.hf->spec();
    m.config_text = m.hf->config_text();
    return m;
  }
  if (!c.model_preset.empty()) {
    m.spec = plan::preset_model(c.model_preset);
    m.config_text = plan::hf_config_text(m.spec);
  } else {
    const std::string file = is_directory(c.model_config) ? c.model_config + "/config.json" : c.model_config;
    m.config_text = read_text_file(file, "model.config");
    m.spec = plan::model_from_hf_config_text(m.config_text, file);
  }
  m.random = std::make_unique<io::RandomInit>(m.spec, m.config_text, c.seed);
  return m;
}

std::string prepare_tokenizer_files(const RunConfig& c, bool rank0) {
  if (!c.tokenizer.empty()) {
    if (is_directory(c.tokenizer)) return c.tokenizer;
    // (a tokenizer file under another name: its directory's files are not its)
    const std::string name = c.tokenizer.substr(c.tokenizer.find_last_of('/') + 1);
    return name == "tokenizer.model" || name == "tokenizer.json" || name == data::kByteTokenizerFile ? directory_of(c.tokenizer) : "";
  }
  if (!c.model_path.empty()) return c.model_path;
  const data::JsonlKind kind = data::is_token_file_path(c.train_data) ? data::JsonlKind::kTokenIds : data::jsonl_kind(c.train_data);
  if (!(kind == data::JsonlKind::kText || kind == data::JsonlKind::kMaskedText) || !(c.saves_checkpoints() || c.export_hf)) return "";
  const std::string dir = c.output_dir + "/tokenizer";
  if (rank0) {
    make_directories(dir, "output.dir");
    data::write_byte_tokenizer_file(dir);
  }
  return dir;
}

const io::WeightSource& starting_weights(const ModelSource& src, const io::CheckpointReader* resume) {
  if (resume) return *resume;
  if (src.checkpoint) return *src.checkpoint;
  if (src.hf) return *src.hf;
  return *src.random;
}

std::unique_ptr<model::LlamaModel> build_model(const RunConfig& c, const ModelSource& src) {
  return std::make_unique<model::LlamaModel>(src.spec, at::TensorOptions().dtype(at::kFloat).device(at::kMeta),
                                             runtime_attention(c));
}

std::unique_ptr<fsdp::FsdpModel> load_model(model::LlamaModel& model, comm::Communicator& comm, const fsdp::FsdpConfig& fc,
                                            const io::WeightSource& init, bool report) {
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<ProgressBar> bar;
  if (report) {
    bar = std::make_unique<ProgressBar>("loading " + init.dir(), model.units().size(), "units");
    bar->quiet_for(1.0);  // shown once loading takes more than a second
  }
  auto m = std::make_unique<fsdp::FsdpModel>(model, comm, fc, init, [&](size_t done, size_t) {
    if (bar) bar->update(done);
  });
  if (bar) bar->finish();
  char secs[32];
  std::snprintf(secs, sizeof(secs), "%.2f", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  FT_LOG_INFO("loaded " << model.spec().name << " from " << init.dir() << " in " << secs << " s ("
              << format_bytes(double(m->persistent_bytes().total())) << " per rank on " << m->config().device << ")");
  return m;
}

void export_model(const RunConfig& c, const ModelSource& src, fsdp::FsdpModel& fsdp, comm::Communicator& world) {
  const std::string out = c.output_dir + "/hf";
  std::unique_ptr<io::HfExporter> ex;
  if (world.rank() == 0) {
    io::ExportOptions options{c.export_dtype == "fp32" ? at::kFloat : at::kBFloat16};
    options.replace = true;  // the previous export of this output directory (ftdist's own only), kept if this one fails
    ex = std::make_unique<io::HfExporter>(out, src.spec, src.config_text, options);
  }
  // The ranks that write nothing wait for those that do, however long the export takes (a
  // heartbeat, not one barrier bounded by the communicators' timeout): in `none` every rank but 0
  // waits for rank 0; in `hybrid` the other replicas (which skip the gather: the same weights) wait
  // for the first one's ranks, each for the one of its replica group. Everyone else gathers.
  std::unique_ptr<comm::Communicator> replica_group;
  comm::Communicator* waiting = nullptr;
  if (fsdp.config().stage == plan::Stage::None) {
    waiting = &world;
  } else if (fsdp.config().stage == plan::Stage::Hybrid) {
    replica_group = world.split(world.rank() % fsdp.shard_group_size(), world.rank());
    waiting = replica_group.get();
  }
  // Rank 0 (rank 0 of its shard group too) converts and writes each piece as it lands: neither the
  // device nor the host holds a whole unit.
  auto gather_and_write = [&](const std::function<void()>& heartbeat) {
    for (size_t u = 0; u < fsdp.num_units() && fsdp.state_files().writes; ++u) {
      // (every gathering rank's sink sees each piece pass, paced by rank 0's writes: each keeps the
      // replicas waiting on it informed)
      fsdp.gather_state_pieces(u, "master", /*root=*/0, io::kExportPieceElements, [&](int64_t, const at::Tensor& piece) {
        if (ex && piece.defined()) {  // (`none`: every rank holds the whole; rank 0 writes)
          ex->add_piece(piece);
          if (const char* delay = std::getenv("FTDIST_TEST_EXPORT_DELAY_S"))  // a slow disk, in tests
            std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(delay)));
        }
        heartbeat();
      });
    }
    if (ex) {
      ex->copy_carried_files(src.tokenizer_dir, c.model_path);
      ex->finish();
      FT_LOG_INFO("exported the model to " << out << " (" << c.export_dtype << ")");
    }
  };
  if (waiting != nullptr && waiting->size() > 1) on_rank0_while_others_wait(*waiting, gather_and_write);
  else gather_and_write([] {});
  world.barrier_after_io("exporting the model", 0);  // rank 0's last writes (index, carried files, sync)
}

}  // namespace ftdist::train
