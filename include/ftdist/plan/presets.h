// Model presets: the shapes of well-known checkpoints, as their config.json files give them.
//   preset_model("llama-3.1-8b").param_count() == 8'030'261'248
#pragma once

#include <string>
#include <vector>

#include "ftdist/plan/model_spec.h"

namespace ftdist::plan {

const std::vector<ModelSpec>& model_presets();
// Case-insensitive; throws Error(BadInput) suggesting the closest preset names.
ModelSpec preset_model(const std::string& name);

}  // namespace ftdist::plan
