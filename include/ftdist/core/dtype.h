// dtype helpers shared by every LibTorch-using module: the short names users type (fp32, bf16, fp16,
// int64) and their sizes.
//   dtype_from_name("bf16") == at::kBFloat16;  dtype_name(at::kFloat) == "fp32"
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace ftdist {

// Accepts fp32|float32|float, bf16|bfloat16, fp16|float16|half, int64|long, int32|int.
// Throws ftdist::Error(BadInput) naming `what` and the accepted names otherwise.
at::ScalarType dtype_from_name(const std::string& name, const std::string& what = "dtype");
std::string dtype_name(at::ScalarType type);
bool is_reduced_float(at::ScalarType type);  // bf16 or fp16: reductions are computed in fp32

// Hugging Face config.json's names for the floating dtypes ("dtype" / "torch_dtype"): "float32",
// "bfloat16", "float16". hf_dtype_from_name returns false (and leaves *type) for any other name.
const char* hf_dtype_name(at::ScalarType type);  // fp32, bf16 or fp16; BadInput otherwise
bool hf_dtype_from_name(const std::string& name, at::ScalarType* type);

}  // namespace ftdist
