// RandomInit — the seeded random starting weights of a model that has no checkpoint, as a
// WeightSource: any range of any unit is computed on its own, so a rank fills only its shards and
// 1, 2, 3 or 8 ranks start from bit-identical weights.
//
// Element i of unit u's flat buffer (plan::ModelSpec::units() order) is
//   weights (2-D and up)   0.02 * z(seed, u, i),  z standard normal
//   norm weights (1-D)     1
//   biases (other 1-D)     0
// where z is counter-based: the pair p = i / 2 is hashed with (seed, u) into two uniforms, Box-Muller
// turns them into two normals, element i takes the (i % 2)-th. No generator state is carried from
// one element to the next, which is what makes a range independent of the ranges before it.
//
//   io::RandomInit init(spec, config_text, /*seed=*/1234);
//   init.read_unit_range(u, rank * S, my_shard);   // any dtype, zero past the unit's end
#pragma once

#include <cstdint>

#include "ftdist/io/weight_source.h"

namespace ftdist::io {

class RandomInit : public WeightSource {
 public:
  RandomInit(plan::ModelSpec spec, std::string config_text, uint64_t seed);

  const std::string& dir() const override { return name_; }
  const plan::ModelSpec& spec() const override { return spec_; }
  const std::string& config_text() const override { return config_text_; }
  at::ScalarType stored_dtype() const override { return at::kFloat; }
  void read_unit_range(size_t unit, int64_t begin, const at::Tensor& out) const override;

  // The standard normal of element `index` of unit `unit` (exposed for tests). Matrices are it times
  // the config's initializer_range (Transformers' default 0.02), the pad row of the embeddings 0, as
  // Transformers initializes them; norms 1, biases 0.
  static float normal(uint64_t seed, uint64_t unit, int64_t index);
  static constexpr double kStd = 0.02;  // initializer_range where the config has none

 private:
  plan::ModelSpec spec_;
  std::vector<plan::ModelSpec::Unit> units_;
  std::string config_text_;
  std::string name_;
  uint64_t seed_;
};

}  // namespace ftdist::io
