#include "ftdist/plan/run_setup.h"

#include "ftdist/core/check.h"
#include "ftdist/core/suggest.h"

namespace ftdist::plan {

StagePolicy stage_policy(Stage s) {
  StagePolicy p;
  p.shard_params = s == Stage::Full || s == Stage::GradOp || s == Stage::Hybrid;
  p.reshard_after_forward = s == Stage::Full || s == Stage::Hybrid;
  p.shard_states = s != Stage::None;
  p.gather_after_step = s == Stage::Optimizer;
  p.replicate_groups = s == Stage::Hybrid;
  return p;
}

int shard_group_size(Stage stage, int world, int hybrid_group) {
  FT_CHECK_ARG(world >= 1, "the world size must be >= 1, got " << world);
  const StagePolicy p = stage_policy(stage);
  if (!p.shard_states) return 1;
  if (!p.replicate_groups) return world;
  FT_CHECK_ARG(hybrid_group >= 1 && world % hybrid_group == 0,
               "parallel.shard_group (" << hybrid_group << ") must divide the " << world
                                        << " ranks (hybrid: shard groups of equal size)");
  return hybrid_group;
}

const char* stage_name(Stage s) {
  switch (s) {
    case Stage::Full: return "full";
    case Stage::GradOp: return "grad-op";
    case Stage::Optimizer: return "optimizer";
    case Stage::None: return "none";
    case Stage::Hybrid: return "hybrid";
  }
  return "?";
}

Stage stage_from_name(const std::string& raw) {
  std::string n = to_lower(raw);
  if (n == "full" || n == "zero3" || n == "zero-3" || n == "3") return Stage::Full;
  if (n == "grad-op" || n == "zero2" || n == "zero-2" || n == "2") return Stage::GradOp;
  if (n == "optimizer" || n == "zero1" || n == "zero-1" || n == "1") return Stage::Optimizer;
  if (n == "none" || n == "ddp" || n == "zero0" || n == "zero-0" || n == "0") return Stage::None;
  if (n == "hybrid" || n == "hsdp") return Stage::Hybrid;
  FT_CHECK_ARG(false, "--shard: unknown stage '" << raw << "' (expected full, grad-op, optimizer, none, hybrid, "
                      "their ZeRO names zero3, zero2, zero1, zero0, or auto)");
  return Stage::Full;
}

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::Bf16Mixed: return "bf16-mixed";
    case Precision::Fp32: return "fp32";
    case Precision::Bf16Pure: return "bf16-pure";
  }
  return "?";
}

Precision precision_from_name(const std::string& n) {
  if (n == "bf16-mixed") return Precision::Bf16Mixed;
  if (n == "fp32") return Precision::Fp32;
  if (n == "bf16-pure") return Precision::Bf16Pure;
  FT_CHECK_ARG(false, "--precision: unknown '" << n << "' (expected bf16-mixed, fp32 or bf16-pure)");
  return Precision::Bf16Mixed;
}

const char* optimizer_name(OptimizerKind o) {
  switch (o) {
    case OptimizerKind::AdamW: return "adamw";
    case OptimizerKind::AdamW8bit: return "adamw-8bit";
    case OptimizerKind::SgdMomentum: return "sgd-momentum";
  }
  return "?";
}

OptimizerKind optimizer_from_name(const std::string& n) {
  if (n == "adamw") return OptimizerKind::AdamW;
  if (n == "adamw-8bit") return OptimizerKind::AdamW8bit;
  if (n == "sgd-momentum") return OptimizerKind::SgdMomentum;
  FT_CHECK_ARG(false, "--optimizer: unknown '" << n << "' (expected adamw, adamw-8bit or sgd-momentum)");
  return OptimizerKind::AdamW;
}

std::string activation_checkpointing_name(ActivationCheckpointing c) {
  return c == ActivationCheckpointing::None ? "none" : c == ActivationCheckpointing::Full ? "full" : std::to_string(c.layers);
}

ActivationCheckpointing activation_checkpointing_from_name(const std::string& n) {
  if (n == "none") return ActivationCheckpointing::None;
  if (n == "full") return ActivationCheckpointing::Full;
  const bool digits = !n.empty() && n.size() <= 9 && n.find_first_not_of("0123456789") == std::string::npos;
  FT_CHECK_ARG(digits, "--checkpointing: unknown '" << n << "' (expected none, full, auto or a number of layers)");
  return ActivationCheckpointing::first(std::stoll(n));
}

std::string activation_checkpointing_text(ActivationCheckpointing c, int64_t model_layers) {
  const std::string name = activation_checkpointing_name(c);
  return c.partial() ? name + " of " + std::to_string(model_layers) + " layers" : name;
}

void check_activation_checkpointing(ActivationCheckpointing c, int64_t model_layers, const std::string& where) {
  FT_CHECK_ARG(c.layers >= ActivationCheckpointing::kAll && c.layers <= model_layers,
               where << ": " << c.layers << " checkpointed layers, but the model has " << model_layers
                     << " (give 0.." << model_layers << ", \"none\" or \"full\")");
}

const char* attention_name(Attention a) { return a == Attention::Flash ? "flash" : "eager"; }

Attention attention_from_name(const std::string& n) {
  if (n == "flash") return Attention::Flash;
  if (n == "eager") return Attention::Eager;
  FT_CHECK_ARG(false, "--attention: unknown '" << n << "' (expected flash or eager)");
  return Attention::Flash;
}

const char* float_type_name(FloatType t) { return t == FloatType::Bf16 ? "bf16" : "fp32"; }

FloatType float_type_from_name(const std::string& n, const std::string& what) {
  if (n == "bf16") return FloatType::Bf16;
  if (n == "fp32") return FloatType::Fp32;
  FT_CHECK_ARG(false, what << ": unknown '" << n << "' (expected bf16 or fp32)");
  return FloatType::Fp32;
}

}  // namespace ftdist::plan
