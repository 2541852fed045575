#include "ftdist/io/weight_source.h"

#include "ftdist/core/check.h"
#include "ftdist/core/text_file.h"
#include "ftdist/io/checkpoint.h"
#include "ftdist/io/hf_checkpoint.h"

namespace ftdist::io {

std::unique_ptr<WeightSource> open_weights(const std::string& path, const std::string& what) {
  FT_CHECK_ARG(is_directory(path), what << ": '" << path << "' is not a directory (expected a Hugging Face model directory "
                                          "or an ftdist checkpoint directory)");
  if (is_checkpoint_dir(path)) return std::make_unique<CheckpointReader>(path);
  return std::make_unique<HfCheckpoint>(path);
}

}  // namespace ftdist::io
