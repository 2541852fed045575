#include "ftdist/core/dtype.h"

#include "ftdist/core/check.h"

namespace ftdist {

at::ScalarType dtype_from_name(const std::string& name, const std::string& what) {
  if (name == "fp32" || name == "float32" || name == "float") return at::kFloat;
  if (name == "bf16" || name == "bfloat16") return at::kBFloat16;
  if (name == "fp16" || name == "float16" || name == "half") return at::kHalf;
  if (name == "int64" || name == "long") return at::kLong;
  if (name == "int32" || name == "int") return at::kInt;
  FT_CHECK_ARG(false, what << ": unknown dtype '" << name << "' (expected fp32, bf16, fp16, int64 or int32)");
  return at::kFloat;  // unreachable
}

std::string dtype_name(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return "fp32";
    case at::kBFloat16: return "bf16";
    case at::kHalf: return "fp16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kDouble: return "fp64";
    default: return c10::toString(type);
  }
}

bool is_reduced_float(at::ScalarType type) { return type == at::kBFloat16 || type == at::kHalf; }

namespace {
const std::pair<const char*, at::ScalarType> kHfNames[] = {
    {"float32", at::kFloat}, {"bfloat16", at::kBFloat16}, {"float16", at::kHalf}};
}  // namespace

const char* hf_dtype_name(at::ScalarType type) {
  for (const auto& [name, t] : kHfNames)
    if (t == type) return name;
  FT_CHECK_ARG(false, "no Hugging Face dtype name for " << dtype_name(type) << " (expected fp32, bf16 or fp16)");
  return "";  // unreachable
}

bool hf_dtype_from_name(const std::string& name, at::ScalarType* type) {
  for (const auto& [n, t] : kHfNames)
    if (name == n) return *type = t, true;
  return false;
}

}  // namespace ftdist
