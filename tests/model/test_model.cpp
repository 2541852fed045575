// model/: hand-checkable pieces, masks, RoPE, gradients against finite differences, chunked loss.
#include <gtest/gtest.h>

#include <ATen/core/grad_mode.h>

#include <cmath>

#include "ftdist/model/llama.h"
#include "ftdist/model/loss.h"
#include "ftdist/model/rope.h"
#include "ftdist/plan/presets.h"
#include "tiny_model.h"

using namespace ftdist;
using namespace ftdist::model;

namespace {

const at::TensorOptions kF64 = at::TensorOptions().dtype(at::kDouble);

TEST(RmsNorm, HandChecked) {
  at::Tensor x = at::tensor({3.0, 4.0}, kF64);
  at::Tensor w = at::tensor({1.0, 2.0}, kF64);
  at::Tensor y = rms_norm(x, w, 0.0);
  const double rms = std::sqrt((9.0 + 16.0) / 2.0);
  EXPECT_NEAR(y[0].item<double>(), 3.0 / rms, 1e-6);
  EXPECT_NEAR(y[1].item<double>(), 2.0 * 4.0 / rms, 1e-6);
}

TEST(Rope, RotatesPairsByPositionTimesFrequency) {
  plan::ModelSpec s = tiny_spec();
  s.head_dim = 2;  // one frequency: inv_freq = 1
  RopeTable t = rope_table(s, 5, kF64);
  at::Tensor x = at::tensor({1.0, 0.0}, kF64).view({1, 1, 1, 2}).expand({1, 1, 5, 2}).contiguous();
  at::Tensor y = apply_rope(x, t);
  for (int p = 0; p < 5; ++p) {
    EXPECT_NEAR(y[0][0][p][0].item<double>(), std::cos(p), 1e-6) << p;  // fp32 tables
    EXPECT_NEAR(y[0][0][p][1].item<double>(), std::sin(p), 1e-6) << p;
  }
}

TEST(Rope, DotProductsDependOnlyOnRelativePosition) {
  plan::ModelSpec s = tiny_spec();
  s.head_dim = 8;
  RopeTable t = rope_table(s, 12, kF64);
  at::manual_seed(3);
  at::Tensor q = at::randn({8}, kF64), k = at::randn({8}, kF64);
  auto at_pos = [&](const at::Tensor& v) { return apply_rope(v.view({1, 1, 1, 8}).expand({1, 1, 12, 8}).contiguous(), t)[0][0]; };
  at::Tensor rq = at_pos(q), rk = at_pos(k);
  double d1 = (rq[5] * rk[2]).sum().item<double>(), d2 = (rq[9] * rk[6]).sum().item<double>();
  EXPECT_NEAR(d1, d2, 1e-5);
}

TEST(Rope, Llama3ScalingKeepsHighAndDividesLowFrequencies) {
  plan::ModelSpec s = plan::preset_model("llama-3.1-8b");
  at::Tensor plain = rope_inv_freq(s);
  s.rope_type = "llama3";
  s.rope_theta = 500000.0;
  s.rope_factor = 8.0;
  s.rope_low_freq_factor = 1.0;
  s.rope_high_freq_factor = 4.0;
  s.rope_original_max_position = 8192;
  at::Tensor base = at::pow(500000.0, at::arange(0, 128, 2, at::kLong).to(at::kFloat) / 128.0).reciprocal();
  at::Tensor scaled = rope_inv_freq(s);
  EXPECT_FLOAT_EQ(scaled[0].item<float>(), base[0].item<float>());            // wavelength 2π: kept
  EXPECT_FLOAT_EQ(scaled[63].item<float>(), base[63].item<float>() / 8.0f);   // longest: divided by factor
  (void)plain;
}

// LongRoPE: inv_freq_i = 1 / (factor_i x theta^(2i/d)), the short factors up to the pre-training
// context and the long ones beyond it; cos and sin scaled by the attention factor.
TEST(Rope, LongRopeTakesTheShortOrLongFactorsByLength) {
  plan::ModelSpec s = tiny_spec("phi3");
  s.head_dim = 8;  // 4 frequencies
  s.rope_type = "longrope";
  s.rope_theta = 100.0;
  s.rope_original_max_position = 6;
  s.rope_short_factor = {1, 2, 3, 4};
  s.rope_long_factor = {5, 6, 7, 8};
  s.rope_attention_factor = 1.5;
  for (int64_t len : {0, 1, 6, 7, 100}) {
    const at::Tensor f = rope_inv_freq(s, len);
    ASSERT_EQ(f.size(0), 4);
    for (int64_t i = 0; i < 4; ++i) {
      const double factor = len > 6 ? s.rope_long_factor[size_t(i)] : s.rope_short_factor[size_t(i)];
      EXPECT_FLOAT_EQ(f[i].item<float>(), float(1.0 / (factor * std::pow(100.0, 2.0 * double(i) / 8.0)))) << len << " " << i;
    }
  }
  EXPECT_EQ(rope_scaling_length(s, 6), 0);
  EXPECT_EQ(rope_scaling_length(s, 7), rope_scaling_length(s, 4000));  // one long table for every length beyond
  const RopeTable t = rope_table(s, 9, kF64);  // 9 > 6: the long factors
  EXPECT_NEAR(t.cos[3][1].item<double>(), 1.5 * std::cos(3.0 / (6.0 * std::pow(100.0, 0.25))), 1e-6);
  EXPECT_NEAR(t.sin[3][5].item<double>(), 1.5 * std::sin(3.0 / (6.0 * std::pow(100.0, 0.25))), 1e-6);
  const RopeTable shorter = rope_table(s, 9, rope_scaling_length(s, 5), kF64);  // rows of a 5-token sequence's frequencies
  EXPECT_NEAR(shorter.cos[3][1].item<double>(), 1.5 * std::cos(3.0 / (2.0 * std::pow(100.0, 0.25))), 1e-6);
}

TEST(Attention, CausalWindowAndEagerEqualsFused) {
  at::manual_seed(1);
  at::Tensor q = at::randn({2, 3, 6, 4}, kF64), k = at::randn({2, 3, 6, 4}, kF64), v = at::randn({2, 3, 6, 4}, kF64);
  for (int64_t window : {0, 1, 3}) {
    at::Tensor eager = causal_attention(q, k, v, window, plan::Attention::Eager);
    at::Tensor fused = causal_attention(q, k, v, window, plan::Attention::Flash);
    EXPECT_TRUE(at::allclose(eager, fused, 1e-10, 1e-10)) << "window " << window;
    // The first position only sees itself.
    EXPECT_TRUE(at::allclose(eager.select(2, 0), v.select(2, 0), 1e-12, 1e-12));
    if (window == 1) {
      EXPECT_TRUE(at::allclose(eager, v, 1e-12, 1e-12));  // each position sees only itself
    }
  }
  // A window as long as the sequence is plain causal attention.
  EXPECT_TRUE(at::allclose(causal_attention(q, k, v, 6, plan::Attention::Eager),
                           causal_attention(q, k, v, 0, plan::Attention::Eager), 1e-12, 1e-12));
  // Future keys do not matter.
  at::Tensor k2 = k.clone(), v2 = v.clone();
  k2.select(2, 5).normal_();
  v2.select(2, 5).normal_();
  EXPECT_TRUE(at::allclose(causal_attention(q, k, v, 0, plan::Attention::Eager).narrow(2, 0, 5),
                           causal_attention(q, k2, v2, 0, plan::Attention::Eager).narrow(2, 0, 5), 1e-12, 1e-12));
}

TEST(Model, UnitsCoverEveryParameterInOrder) {
  for (bool tied : {false, true}) {
    plan::ModelSpec s = tiny_spec("qwen2", tied);
    LlamaModel m(s, kF64);
    int64_t total = 0;
    for (const auto& u : m.units()) total += u.numel;
    EXPECT_EQ(total, s.param_count());
    EXPECT_EQ(m.units().front().name, tied ? "root" : "embed");
    EXPECT_EQ(m.units()[1].specs.front().name, "model.layers.0.self_attn.q_proj.weight");
    EXPECT_EQ(m.units().size(), size_t(s.layers + (tied ? 1 : 2)));
    EXPECT_TRUE(m.param("model.layers.1.self_attn.q_proj.bias").defined());
  }
}

TEST(Model, ParametersAreViewsOfTheUnitsFlatBuffer) {
  LlamaModel m(tiny_spec(), kF64);
  randomize(m, 7);
  at::Tensor ids = at::randint(0, 37, {1, 5}, at::kLong);
  at::Tensor before = m.forward(ids);
  at::Tensor replacement = m.units()[1].flat.clone();
  replacement.narrow(0, 0, 10).add_(1.0);  // perturb q_proj of layer 0
  m.bind(1, replacement);
  EXPECT_EQ(m.param("model.layers.0.self_attn.q_proj.weight").data_ptr(), replacement.data_ptr());
  EXPECT_FALSE(at::allclose(before, m.forward(ids)));
}

TEST(Model, MetaDeviceAllocatesNothing) {
  LlamaModel m(plan::preset_model("llama-3-8b"), at::TensorOptions().dtype(at::kFloat).device(at::kMeta));
  EXPECT_TRUE(m.units()[1].flat.is_meta());
  EXPECT_EQ(m.units()[1].numel, plan::preset_model("llama-3-8b").layer_params());
}

TEST(Model, UnitByUnitEqualsWholeForward) {
  LlamaModel m(tiny_spec("mistral"), kF64);
  randomize(m, 2);
  at::Tensor ids = at::randint(0, 37, {2, 7}, at::kLong);
  ForwardContext ctx = m.context(7);
  at::Tensor h = m.embed(ids);
  for (int64_t i = 0; i < 2; ++i) h = m.layer(i, h, ctx);
  EXPECT_TRUE(at::allclose(at::linear(m.final_norm(h), m.lm_head_weight()), m.forward(ids)));
}

TEST(Model, RopeTableIsBuiltOncePerSequenceLengthAndDtype) {
  LlamaModel m(tiny_spec(), kF64);
  const ForwardContext a = m.context(7), b = m.context(7);
  EXPECT_EQ(a.rope.cos.data_ptr(), b.rope.cos.data_ptr()) << "the same length reuses the table";
  const ForwardContext c = m.context(5);
  ASSERT_EQ(c.seq_len, 5);
  EXPECT_EQ(c.rope.cos.size(0), 5);
  EXPECT_TRUE(at::equal(c.rope.cos, a.rope.cos.narrow(0, 0, 5)));
  EXPECT_TRUE(at::equal(c.rope.sin, a.rope.sin.narrow(0, 0, 5)));
  EXPECT_TRUE(at::equal(c.rope.cos, rope_table(m.spec(), 5, kF64).cos));
  for (auto& u : m.units()) u.flat = u.flat.to(at::kFloat);  // the units' dtype changed: a new table
  EXPECT_EQ(m.context(5).rope.cos.scalar_type(), at::kFloat);
  // A plain context's mask (an eval set of plain text) is not kept once packed examples' contexts
  // (positioned: masks of their own) follow: their plan holds no s x s mask.
  LlamaModel eager(tiny_spec(), kF64, plan::Attention::Eager);  // (masks are the eager kernel's)
  const ForwardContext plain = eager.context(6);
  ASSERT_TRUE(plain.causal_mask.defined());
  EXPECT_EQ(plain.causal_mask.use_count(), 2) << "the model keeps the plain mask";
  eager.context(6, at::tensor({0, 1, 2, 0, 1, 2}, at::kLong).view({1, 6}));
  EXPECT_EQ(plain.causal_mask.use_count(), 1) << "a positioned context drops the plain mask";
}

TEST(Model, GroupedQueryAttentionEqualsRepeatedKeyValueHeads) {
  // kv head j serves query heads 2j and 2j+1: an MHA model with k/v rows duplicated that way is the
  // same model, in eager attention (k/v expanded) and in the fused kernel (grouped heads read in
  // place), forward and backward.
  for (plan::Attention kind : {plan::Attention::Eager, plan::Attention::Flash}) {
    SCOPED_TRACE(plan::attention_name(kind));
    plan::ModelSpec gqa = tiny_spec("llama");  // 4 heads, 2 kv heads, head_dim 4
    LlamaModel a(gqa, kF64, kind);
    randomize(a, 9);
    plan::ModelSpec mha = gqa;
    mha.kv_heads = 4;
    LlamaModel b(mha, kF64, kind);
    {
      at::NoGradGuard ng;
      for (size_t u = 0; u < a.units().size(); ++u) {
        for (size_t i = 0; i < a.units()[u].specs.size(); ++i) {
          const std::string& name = a.units()[u].specs[i].name;
          at::Tensor src = a.param(name);
          bool kv = name.find("k_proj.weight") != std::string::npos || name.find("v_proj.weight") != std::string::npos;
          b.param(name).copy_(kv ? src.view({2, 4, 16}).repeat_interleave(2, 0).reshape({16, 16}) : src);
        }
      }
    }
    for (LlamaModel* m : {&a, &b})
      for (size_t u = 0; u < m->units().size(); ++u) m->bind(u, m->units()[u].flat.detach().clone().requires_grad_());
    at::Tensor ids = at::randint(0, 37, {2, 6}, at::kLong);
    at::Tensor la = a.forward(ids), lb = b.forward(ids);
    EXPECT_TRUE(at::allclose(la, lb, 1e-12, 1e-12));
    (la * la).sum().backward();
    (lb * lb).sum().backward();
    // A parameter's gradient: its slice of its unit's flat gradient (layer 0 is unit 1).
    auto grad = [](const LlamaModel& m, const std::string& name) {
      const at::Tensor& p = m.param(name);
      const at::Tensor& flat = m.units()[1].flat;
      return flat.grad().narrow(0, p.storage_offset() - flat.storage_offset(), p.numel()).view(p.sizes());
    };
    const std::string q = "model.layers.0.self_attn.q_proj.weight", k = "model.layers.0.self_attn.k_proj.weight";
    EXPECT_TRUE(at::allclose(grad(a, q), grad(b, q), 1e-10, 1e-10));
    // A shared kv head's gradient is the sum of its two copies' gradients.
    EXPECT_TRUE(at::allclose(grad(a, k), grad(b, k).view({2, 2, 4, 16}).sum(1).reshape({8, 16}), 1e-10, 1e-10));
  }
}

TEST(Model, SlidingWindowChangesMistralButNotShortSequences) {
  plan::ModelSpec s = tiny_spec("mistral");  // window 3
  LlamaModel windowed(s, kF64);
  randomize(windowed, 4);
  s.sliding_window = 0;
  LlamaModel full(s, kF64);
  for (size_t u = 0; u < full.units().size(); ++u) full.bind(u, windowed.units()[u].flat);
  at::Tensor shortseq = at::randint(0, 37, {1, 3}, at::kLong), longseq = at::randint(0, 37, {1, 8}, at::kLong);
  EXPECT_TRUE(at::allclose(windowed.forward(shortseq), full.forward(shortseq)));
  EXPECT_FALSE(at::allclose(windowed.forward(longseq), full.forward(longseq)));
}

// Qwen3 normalizes each head of q and k before RoPE: scaling q_proj and k_proj changes nothing (with
// a negligible eps); the q_norm weight does change the logits, and so does scaling q_proj without it.
TEST(Model, Qwen3PerHeadNormsRemoveTheScaleOfQueriesAndKeys) {
  plan::ModelSpec spec = tiny_spec("qwen3");
  spec.rms_norm_eps = 1e-14;  // so that the scale really is all the norm removes
  LlamaModel m(spec, kF64);
  ASSERT_EQ(m.spec().q_dim(), 24);  // 4 heads of 6, hidden 16
  randomize(m, 5);
  at::Tensor ids = at::randint(0, 37, {2, 6}, at::kLong);
  const at::Tensor before = m.forward(ids);
  at::NoGradGuard no_grad;
  m.param("model.layers.0.self_attn.q_proj.weight").mul_(7.0);
  m.param("model.layers.1.self_attn.k_proj.weight").mul_(0.2);
  EXPECT_TRUE(at::allclose(m.forward(ids), before, 1e-6, 1e-6));
  m.param("model.layers.0.self_attn.q_norm.weight").mul_(3.0);
  EXPECT_FALSE(at::allclose(m.forward(ids), before, 1e-3, 1e-3));

  plan::ModelSpec plain = spec;
  plain.qk_norm = false;
  LlamaModel p(plain, kF64);
  randomize(p, 5);
  const at::Tensor plain_before = p.forward(ids);
  p.param("model.layers.0.self_attn.q_proj.weight").mul_(7.0);
  EXPECT_FALSE(at::allclose(p.forward(ids), plain_before, 1e-3, 1e-3));
}

// Phi-3's partial_rotary_factor: the first rotary_dim() dimensions of each head turn as a head of
// that size would, the rest pass through.
TEST(Rope, PartialRotationLeavesTheTailOfEachHead) {
  plan::ModelSpec s = tiny_spec("phi3");
  s.head_dim = 8, s.rope_partial = 0.5;
  plan::ModelSpec small = s;
  small.head_dim = 4, small.rope_partial = 1.0;
  const RopeTable t = rope_table(s, 5, kF64), t_small = rope_table(small, 5, kF64);
  ASSERT_EQ(t.cos.size(-1), 4);
  EXPECT_TRUE(at::equal(t.cos, t_small.cos));
  at::Tensor x = at::randn({1, 2, 5, 8}, kF64);
  at::Tensor y = apply_rope(x, t);
  EXPECT_TRUE(at::equal(y.narrow(-1, 4, 4), x.narrow(-1, 4, 4)));
  EXPECT_TRUE(at::allclose(y.narrow(-1, 0, 4), apply_rope(x.narrow(-1, 0, 4).contiguous(), t_small)));
  EXPECT_FALSE(at::allclose(y.narrow(-1, 0, 4), x.narrow(-1, 0, 4)));
}

TEST(Loss, UniformLogitsGiveLogVocab) {
  at::Tensor logits = at::zeros({1, 4, 37}, kF64);
  at::Tensor labels = at::tensor({1L, 2L, -100L, 5L}, at::kLong).view({1, 4});
  LossSum l = causal_lm_loss(logits, labels);
  EXPECT_EQ(l.count, 2);  // targets 2, (ignored), 5; the last position predicts nothing
  EXPECT_EQ(counted_targets(labels), 2);
  EXPECT_TRUE(at::equal(causal_lm_loss_sum(logits, labels), l.sum));
  EXPECT_NEAR(l.sum.item<double>(), 2 * std::log(37.0), 1e-5);
}

TEST(Loss, ChunkedEqualsPlainInValueAndGradients) {
  at::manual_seed(5);
  at::Tensor hidden = at::randn({2, 9, 16}, kF64).requires_grad_();
  at::Tensor weight = at::randn({37, 16}, kF64).requires_grad_();
  at::Tensor labels = at::randint(0, 37, {2, 9}, at::kLong);
  labels[0][3] = -100;
  LossSum plain = causal_lm_loss(at::linear(hidden, weight), labels);
  plain.sum.backward();
  at::Tensor gh = hidden.grad().clone(), gw = weight.grad().clone();
  for (int64_t chunk : {1, 4, 18, 100}) {
    hidden.mutable_grad().reset();
    weight.mutable_grad().reset();
    LossSum c = chunked_causal_lm_loss(hidden, weight, labels, chunk);
    EXPECT_EQ(c.count, plain.count);
    EXPECT_NEAR(c.sum.item<double>(), plain.sum.item<double>(), 1e-9) << chunk;
    c.sum.backward();
    EXPECT_TRUE(at::allclose(hidden.grad(), gh, 1e-9, 1e-12)) << chunk;
    EXPECT_TRUE(at::allclose(weight.grad(), gw, 1e-9, 1e-12)) << chunk;
  }
}

TEST(Gradients, MatchFiniteDifferencesInFloat64) {
  for (const char* type : {"llama", "qwen2", "mistral"}) {
    LlamaModel m(tiny_spec(type, std::string(type) == "qwen2"), kF64);
    randomize(m, 11);
    for (auto& u : m.units()) {
      at::Tensor leaf = u.flat.detach().clone().requires_grad_();
      m.bind(&u - &m.units()[0], leaf);
    }
    at::Tensor ids = at::randint(0, 37, {2, 6}, at::kLong);
    auto loss = [&] {
      LossSum l = causal_lm_loss(m.forward(ids), ids);
      return l.sum / double(l.count);
    };
    loss().backward();
    at::manual_seed(13);
    for (size_t u = 0; u < m.units().size(); ++u) {
      at::Tensor flat = m.units()[u].flat;
      at::Tensor grad = flat.grad().clone();
      for (int trial = 0; trial < 4; ++trial) {
        int64_t i = at::randint(0, flat.numel(), {1}, at::kLong).item<int64_t>();
        const double eps = 1e-6;
        double orig;
        double up, down;
        {
          at::NoGradGuard ng;
          orig = flat[i].item<double>();
          flat[i].fill_(orig + eps);
          up = loss().item<double>();
          flat[i].fill_(orig - eps);
          down = loss().item<double>();
          flat[i].fill_(orig);
        }
        double numeric = (up - down) / (2 * eps);
        EXPECT_NEAR(grad[i].item<double>(), numeric, 1e-6 + 1e-5 * std::abs(numeric))
            << type << " unit " << m.units()[u].name << " element " << i;
      }
    }
  }
}

}  // namespace

// Packed examples (data::Packing::Documents): several examples in one row, positions restarting at 0
// for each, padding after them; per row the summed loss and every parameter's gradient equal those
// of each example run alone (fp64, within 1e-10 relative: the order of fp32 sums differs by CPU), for eager and fused attention, with a sliding window
// (Mistral, window 3 < example lengths) and a tied root with q/k/v biases (Qwen2).
TEST(Model, PackedExamplesTrainLikeEachExampleAlone) {
  for (const std::string type : {"llama", "mistral", "qwen2"}) {
    for (plan::Attention kind : {plan::Attention::Eager, plan::Attention::Flash}) {
      SCOPED_TRACE(type + " " + plan::attention_name(kind));
      const PackedVsAlone r = packed_vs_alone(tiny_spec(type, type == "qwen2"), kind, at::TensorOptions().dtype(at::kDouble));
      EXPECT_LE(r.loss, 1e-10);
      for (size_t u = 0; u < r.grads.size(); ++u) EXPECT_LE(r.grads[u], 1e-10) << "unit " << u;
    }
  }
}

// RoPE scalings that depend on the sequence's length (dynamic NTK beyond max_position_embeddings,
// longrope's long factors beyond the pre-training context): each packed example takes the
// frequencies of its own length (examples of 5, 9, 3 and 7, 6 tokens in rows of 20; the limit 6
// puts some on each side), so packing changes nothing.
TEST(Model, PackedExamplesTakeTheRopeOfTheirOwnLength) {
  plan::ModelSpec dynamic = tiny_spec("llama");
  dynamic.rope_type = "dynamic", dynamic.rope_factor = 2.0, dynamic.max_position = 6;
  plan::ModelSpec longrope = tiny_spec("phi3");
  longrope.rope_type = "longrope", longrope.rope_original_max_position = 6, longrope.rope_attention_factor = 1.2;
  longrope.rope_short_factor = {1.0, 1.5}, longrope.rope_long_factor = {3.0, 7.0};
  for (const plan::ModelSpec& spec : {dynamic, longrope}) {
    SCOPED_TRACE(spec.rope_type);
    const PackedVsAlone r = packed_vs_alone(spec, plan::Attention::Eager, at::TensorOptions().dtype(at::kDouble));
    EXPECT_LE(r.loss, 1e-10);
    for (size_t u = 0; u < r.grads.size(); ++u) EXPECT_LE(r.grads[u], 1e-10) << "unit " << u;
  }
}

// The document mask: within an example causal (and windowed), nothing across examples.
TEST(Model, DocumentMaskKeepsEachExampleToItself) {
  const at::Tensor pos = at::tensor({0, 1, 2, 0, 1, 2, 3}, at::kLong).unsqueeze(0);
  const at::Tensor mask = document_mask(pos, 0, at::TensorOptions().dtype(at::kFloat));
  ASSERT_EQ(mask.sizes(), (std::vector<int64_t>{1, 1, 7, 7}));
  const at::Tensor seen = mask[0][0] == 0;
  for (int64_t i = 0; i < 7; ++i)
    for (int64_t j = 0; j < 7; ++j) EXPECT_EQ(seen[i][j].item<bool>(), j <= i && (i < 3) == (j < 3)) << i << "," << j;
  const at::Tensor windowed = document_mask(pos, 2, at::TensorOptions().dtype(at::kFloat))[0][0] == 0;
  EXPECT_FALSE(windowed[6][4].item<bool>());  // 2 back in its example: outside a window of 2
  EXPECT_TRUE(windowed[6][5].item<bool>());
}
