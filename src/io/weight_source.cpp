#include "ftdist/io/weight_source.h"

#include "ftdist/core/check.h"
#include "ftdist/core/text_file.h"
#include "ftdist/io/checkpoint.h"
#include "ftdist/io/hf_checkpoint.h"

namespace ftdist::io {

std::unique_ptr<WeightSource> open_weights(const std::string& given, const std::string& what) {
  FT_CHECK_ARG(is_directory(given), what << ": '" << given << "' is not a directory (expected a Hugging Face model directory "
                                           "or an ftdist checkpoint directory)");
  const std::string path = checkpoint_dir_of(given);  // a checkpoint root: its latest
  if (is_checkpoint_dir(path)) return std::make_unique<CheckpointReader>(path);
  return std::make_unique<HfCheckpoint>(path, what);
}

}  // namespace ftdist::io
