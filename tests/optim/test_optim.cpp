// optim/: AdamW and SGD against LibTorch's own optimizers, 8-bit AdamW against a reference written
// here, decay masking, bf16 outputs, schedules, clipping, and the CUDA kernels against the CPU loops
// (skipped, visibly, without a GPU).
#include <gtest/gtest.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <cmath>

#include "expect_error.h"
#include "ftdist/comm/communicator.h"
#include "ftdist/optim/adamw.h"
#include "ftdist/optim/adamw_8bit.h"
#include "ftdist/optim/sgd.h"
#include "ftdist/optim/clip.h"
#include "ftdist/optim/lr_schedule.h"
#include "ftdist/plan/presets.h"

using namespace ftdist;
using namespace ftdist::optim;

namespace {

// Relative 1e-6 elementwise, with a 1e-6 absolute floor for elements that pass near zero (there
// the two implementations' different rounding order shows as a large relative difference), and the
// whole vector within 1e-6 in norm.
void expect_close(const at::Tensor& got, const at::Tensor& want, double rel) {
  at::Tensor d = (got - want).abs();
  EXPECT_TRUE(at::allclose(got, want, rel, rel)) << "max abs diff " << d.max().item<double>();
  EXPECT_LT((d.norm() / want.norm()).item<double>(), rel);
}

TEST(AdamW, MatchesLibTorchAdamWOver100StepsWithWeightDecay) {
  at::manual_seed(0);
  const int64_t n = 10007;  // not a multiple of any vector width
  at::Tensor init = at::randn({n});
  AdamWConfig cfg;
  cfg.beta1 = 0.9, cfg.beta2 = 0.95, cfg.eps = 1e-8, cfg.weight_decay = 0.1;
  at::Tensor master = init.clone();
  AdamW ours(cfg, master, {{0, n}});

  at::Tensor ref = init.clone().requires_grad_();
  torch::optim::AdamW theirs({ref}, torch::optim::AdamWOptions(1e-3).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.1));
  for (int step = 1; step <= 100; ++step) {
    const double lr = 1e-3 * (1.0 + 0.01 * step);  // changes every step, as a schedule does
    at::Tensor g = at::randn({n}) * (step % 7 == 0 ? 10.0 : 1.0);
    ours.step(g, lr);
    static_cast<torch::optim::AdamWOptions&>(theirs.param_groups()[0].options()).lr(lr);
    ref.mutable_grad() = g.clone();
    theirs.step();
  }
  expect_close(master, ref.detach(), 1e-6);
  EXPECT_EQ(ours.steps(), 100);
}

TEST(AdamW, Bf16GradientsAndBf16ParameterOutput) {
  at::manual_seed(1);
  const int64_t n = 999;
  at::Tensor master = at::randn({n}), copy = master.clone();
  at::Tensor out = at::empty({n}, at::kBFloat16);
  AdamW a(AdamWConfig{}, master, {{0, n}}, out);
  AdamW b(AdamWConfig{}, copy, {{0, n}});
  at::Tensor g = at::randn({n}).to(at::kBFloat16);
  a.step(g, 1e-2);
  b.step(g.to(at::kFloat), 1e-2);
  EXPECT_TRUE(at::equal(master, copy));               // a bf16 gradient is read exactly
  EXPECT_TRUE(at::equal(out, master.to(at::kBFloat16)));  // the parameter shard is the rounded master
}

// bf16-pure: master and moments in bf16. Each step is the fp32 update of the bf16 values, rounded
// to nearest on store: the reference runs the fp32 optimizer one step at a time from the bf16
// state, then rounds, and must agree bit for bit; the states are bf16 (half the bytes).
TEST(AdamW, Bf16MasterIsTheFp32UpdateRoundedEachStep) {
  at::manual_seed(2);
  const int64_t n = 777;
  const std::vector<Range> decay = {{0, 300}, {400, n}};
  AdamWConfig cfg;
  cfg.weight_decay = 0.1;
  at::Tensor master = at::randn({n}).to(at::kBFloat16);
  const at::Tensor start = master.clone();
  AdamW ours(cfg, master, decay);
  EXPECT_EQ(ours.exp_avg().scalar_type(), at::kBFloat16);
  EXPECT_EQ(ours.exp_avg_sq().scalar_type(), at::kBFloat16);
  at::Tensor p = master.to(at::kFloat), m = at::zeros({n}), v = at::zeros({n});
  for (int step = 1; step <= 5; ++step) {
    // odd steps an fp32 gradient, even steps a bf16 one (the reference reads its exact fp32 value)
    at::Tensor g = at::randn({n});
    if (step % 2 == 0) g = g.to(at::kBFloat16);
    AdamW ref(cfg, p.clone(), decay);
    ref.load_state(m, v, step - 1);
    ref.step(g.to(at::kFloat), 1e-2);
    ours.step(g, 1e-2);
    p = ref.master().to(at::kBFloat16).to(at::kFloat);
    m = ref.exp_avg().to(at::kBFloat16).to(at::kFloat);
    v = ref.exp_avg_sq().to(at::kBFloat16).to(at::kFloat);
    ASSERT_TRUE(at::equal(master.to(at::kFloat), p)) << "step " << step;
    ASSERT_TRUE(at::equal(ours.exp_avg().to(at::kFloat), m)) << "step " << step;
    ASSERT_TRUE(at::equal(ours.exp_avg_sq().to(at::kFloat), v)) << "step " << step;
  }
  EXPECT_GT((master.to(at::kFloat) - start.to(at::kFloat)).abs().max().item<float>(), 0.01f);  // it moved
}

TEST(AdamW, WeightDecayOnlyInsideDecayRanges) {
  at::manual_seed(2);
  const int64_t n = 100;
  at::Tensor init = at::randn({n}), g = at::randn({n});
  AdamWConfig with;
  with.weight_decay = 0.5;
  AdamWConfig without = with;
  without.weight_decay = 0.0;
  at::Tensor masked = init.clone(), all = init.clone(), none = init.clone();
  AdamW(with, masked, {{10, 30}, {50, 60}}).step(g, 0.1);
  AdamW(with, all, {{0, n}}).step(g, 0.1);
  AdamW(without, none, {}).step(g, 0.1);
  for (int64_t i = 0; i < n; ++i) {
    bool decayed = (i >= 10 && i < 30) || (i >= 50 && i < 60);
    EXPECT_EQ(masked[i].item<float>(), (decayed ? all : none)[i].item<float>()) << i;
  }
  EXPECT_FALSE(at::equal(all, none));
}

TEST(DecayRanges, MatricesOnlyAndCutToTheShard) {
  plan::ModelSpec m = plan::preset_model("qwen2.5-0.5b");
  auto units = m.units();
  const auto& layer = units[1];  // q,k,v,o,gate,up,down weights, 2 norms, 3 biases
  const int64_t matrices = layer.numel() - 2 * m.hidden - (m.q_dim() + 2 * m.kv_dim());
  auto whole = decay_ranges(layer, 0, layer.numel());
  ASSERT_EQ(whole.size(), 1u);  // the seven matrices are contiguous at the front
  EXPECT_EQ(whole[0].begin, 0);
  EXPECT_EQ(whole[0].end, matrices);
  // A shard straddling the end of the matrices.
  auto cut = decay_ranges(layer, matrices - 10, 100);
  ASSERT_EQ(cut.size(), 1u);
  EXPECT_EQ(cut[0].begin, 0);
  EXPECT_EQ(cut[0].end, 10);
  EXPECT_TRUE(decay_ranges(layer, matrices + 5, 50).empty());
}

TEST(Sgd, MatchesLibTorchSgdWithMomentumAndWeightDecay) {
  at::manual_seed(3);
  const int64_t n = 513;
  at::Tensor init = at::randn({n});
  at::Tensor master = init.clone();
  SgdMomentum ours({0.9, 0.01}, master, {{0, n}});
  at::Tensor ref = init.clone().requires_grad_();
  torch::optim::SGD theirs({ref}, torch::optim::SGDOptions(0.05).momentum(0.9).weight_decay(0.01));
  for (int step = 0; step < 50; ++step) {
    at::Tensor g = at::randn({n});
    ours.step(g, 0.05);
    ref.mutable_grad() = g.clone();
    theirs.step();
  }
  expect_close(master, ref.detach(), 1e-6);
}

TEST(Schedule, WarmupCosineLinearConstant) {
  LrSchedule s{LrSchedule::Kind::Cosine, 3e-4, 100, 1100, 3e-5};
  s.validate();
  EXPECT_DOUBLE_EQ(s.lr_at(1), 3e-6);
  EXPECT_DOUBLE_EQ(s.lr_at(50), 1.5e-4);
  EXPECT_DOUBLE_EQ(s.lr_at(100), 3e-4);               // warmup end: peak
  EXPECT_NEAR(s.lr_at(600), (3e-4 + 3e-5) / 2, 1e-15);  // cosine midpoint: halfway
  EXPECT_DOUBLE_EQ(s.lr_at(1100), 3e-5);              // end: min
  EXPECT_DOUBLE_EQ(s.lr_at(5000), 3e-5);
  s.kind = LrSchedule::Kind::Linear;
  EXPECT_NEAR(s.lr_at(350), 3e-4 - 0.25 * (3e-4 - 3e-5), 1e-15);
  s.kind = LrSchedule::Kind::Constant;
  EXPECT_DOUBLE_EQ(s.lr_at(5000), 3e-4);
  LrSchedule bad{LrSchedule::Kind::Cosine, 1e-3, 10, 10, 0};
  expect_bad_input([&] { bad.validate(); }, "total_steps (10) must exceed warmup_steps (10)");
  expect_bad_input([] { schedule_kind_from_name("step"); }, "unknown learning-rate schedule 'step'");
}

TEST(Clip, GlobalNormAndScalingOnOneRank) {
  auto comm = comm::make_communicator(at::kCPU);
  at::Tensor a = at::tensor({3.0f, 0.0f}), b = at::tensor({4.0f});
  ClipResult r = clip_grad_norm({a, b}, 1.0, comm.get());
  EXPECT_DOUBLE_EQ(r.norm, 5.0);
  EXPECT_NEAR(a[0].item<float>(), 3.0 / (5.0 + 1e-6), 1e-7);
  EXPECT_NEAR(b[0].item<float>(), 4.0 / (5.0 + 1e-6), 1e-7);
  at::Tensor c = at::tensor({0.3f, 0.4f});
  EXPECT_NEAR(clip_grad_norm({c}, 1.0, comm.get()).norm, 0.5, 1e-7);
  EXPECT_FLOAT_EQ(c[0].item<float>(), 0.3f);  // below the limit: untouched
  at::Tensor bad = at::tensor({1.0f, std::nanf("")});
  SkipCounter skips;
  EXPECT_FALSE(skips.should_step(clip_grad_norm({bad}, 1.0, comm.get())));
  EXPECT_TRUE(skips.should_step(clip_grad_norm({c}, 1.0, comm.get())));
  EXPECT_EQ(skips.skipped(), 1);
  EXPECT_TRUE(std::isnan(bad[1].item<float>()));  // left alone: the step is skipped
  expect_error([&] { clip_grad_norm({bad}, 1.0, comm.get(), NonFinite::Abort); }, ErrorKind::Internal, "non-finite");
}

// Without a communicator the shards are the whole gradient (a replicated one): the same norm,
// no collective; bf16 shards are normed in fp32 (no rounding of the sum to bf16).
TEST(Clip, ReplicatedGradientsNeedNoCommunicator) {
  at::Tensor a = at::tensor({3.0f, 0.0f}), b = at::tensor({4.0f});
  EXPECT_DOUBLE_EQ(global_grad_norm({a, b}, nullptr), 5.0);
  at::Tensor many = at::full({4096}, 0.01f).to(at::kBFloat16);  // sum of squares 0.4096 (bf16 0.01 = 0.010009765625)
  const double want = std::sqrt(4096.0) * double(at::full({1}, 0.01f).to(at::kBFloat16).item<float>());
  EXPECT_NEAR(global_grad_norm({many}, nullptr), want, 1e-6 * want);
  ClipResult r = clip_grad_norm({a, b}, 2.5, nullptr);
  EXPECT_DOUBLE_EQ(r.norm, 5.0);
  EXPECT_NEAR(b[0].item<float>(), 4.0 * 2.5 / (5.0 + 1e-6), 1e-6);
}

// ---- 8-bit AdamW: a plain reference of the algorithm documented in adamw_8bit.h ----

// The dynamic map by bitsandbytes' construction: per exponent e, the midpoints of
// linspace(0.1, 1, k + 1) times 10^(e - 6), negated too when signed; 0 and 1; sorted.
std::vector<float> reference_map(bool is_signed) {
  std::vector<double> v = {0.0, 1.0};
  for (int e = 0; e <= 6; ++e) {
    const int k = is_signed ? (1 << e) : (2 << e);
    std::vector<double> edges;
    for (int j = 0; j <= k; ++j) edges.push_back(0.1 + 0.9 * j / k);
    for (int j = 0; j < k; ++j) {
      const double mid = (edges[size_t(j)] + edges[size_t(j) + 1]) / 2 * std::pow(10.0, e - 6);
      v.push_back(mid);
      if (is_signed) v.push_back(-mid);
    }
  }
  std::sort(v.begin(), v.end());
  return std::vector<float>(v.begin(), v.end());
}

struct Ref8bit {  // one shard: fp32 master, moments as (code index, absmax) per block
  std::vector<float> p, sm = reference_map(true), um = reference_map(false);
  std::vector<int> qm, qv;
  std::vector<float> am, av;
  int64_t step = 0;
  explicit Ref8bit(std::vector<float> master) : p(std::move(master)) {
    const size_t n = p.size(), blocks = (n + 2047) / 2048;
    const int zs = int(std::find(sm.begin(), sm.end(), 0.f) - sm.begin());
    qm.assign(n, zs), qv.assign(n, 0), am.assign(blocks, 0.f), av.assign(blocks, 0.f);
  }
  static int nearest(const std::vector<float>& map, float x) {
    int best = 0;
    for (int i = 1; i < 256; ++i)
      if (std::fabs(map[size_t(i)] - x) < std::fabs(map[size_t(best)] - x)) best = i;
    return best;
  }
  void update(const std::vector<float>& g, double lr, const AdamWConfig& c, const std::vector<Range>& decay) {
    ++step;
    const float b1 = float(c.beta1), b2 = float(c.beta2), omb1 = float(1 - c.beta1), omb2 = float(1 - c.beta2);
    const float bc2 = float(std::sqrt(1 - std::pow(c.beta2, double(step)))), ss = float(lr / (1 - std::pow(c.beta1, double(step))));
    const float dec = float(1 - lr * c.weight_decay);
    for (size_t b = 0; b < am.size(); ++b) {
      const size_t lo = b * 2048, hi = std::min(p.size(), lo + 2048);
      std::vector<float> m(hi - lo), v(hi - lo);
      float mmax = 0, vmax = 0;
      for (size_t i = lo; i < hi; ++i) {
        bool d = false;
        for (const Range& r : decay) d = d || (int64_t(i) >= r.begin && int64_t(i) < r.end);
        const float pi = p[i] * (d ? dec : 1.f);
        m[i - lo] = sm[size_t(qm[i])] * am[b] * b1 + g[i] * omb1;
        v[i - lo] = um[size_t(qv[i])] * av[b] * b2 + omb2 * g[i] * g[i];
        p[i] = pi + (-ss) * (m[i - lo] / (std::sqrt(v[i - lo]) / bc2 + float(c.eps)));
        mmax = std::max(mmax, std::fabs(m[i - lo])), vmax = std::max(vmax, v[i - lo]);
      }
      am[b] = mmax, av[b] = vmax;
      for (size_t i = lo; i < hi; ++i) {
        qm[i] = nearest(sm, mmax > 0 ? m[i - lo] / mmax : 0.f);
        qv[i] = nearest(um, vmax > 0 ? v[i - lo] / vmax : 0.f);
      }
    }
  }
};

std::vector<float> to_vector(const at::Tensor& t) {
  at::Tensor c = t.to(at::kFloat).contiguous().cpu();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

TEST(AdamW8bit, DynamicMapsAreBitsandbytesMaps) {
  for (bool is_signed : {true, false}) {
    const auto& map = dynamic_map(is_signed);
    const std::vector<float> ref = reference_map(is_signed);
    ASSERT_EQ(ref.size(), 256u);
    for (int i = 0; i < 256; ++i) EXPECT_NEAR(map[size_t(i)], ref[size_t(i)], 1e-7 * std::fabs(ref[size_t(i)])) << i;
    EXPECT_EQ(map[255], 1.f);
    EXPECT_EQ(map[size_t(dynamic_map_zero(is_signed))], 0.f);
  }
  EXPECT_EQ(dynamic_map_zero(true), 127);  // 127 negative codes below zero
  EXPECT_EQ(dynamic_map_zero(false), 0);
  EXPECT_NEAR(dynamic_map(false)[1], 1e-6 * 0.1 + 1e-6 * 0.45 / 2, 1e-12);  // the smallest positive code
}

// Three blocks (the last partial), decay on part of them, fp32 and bf16 gradients, 4 steps: master
// to 1e-6, every code and block scale equal to the reference's.
TEST(AdamW8bit, MatchesTheReferenceStepByStep) {
  at::manual_seed(5);
  const int64_t n = 2 * 2048 + 777;
  AdamWConfig cfg;
  cfg.beta1 = 0.9, cfg.beta2 = 0.95, cfg.weight_decay = 0.1;
  const std::vector<Range> decay = {{100, 3000}, {4200, n}};
  at::Tensor master = at::randn({n}), out = at::empty({n}, at::kBFloat16);
  Ref8bit ref(to_vector(master));
  AdamW8bit ours(cfg, master, decay, out);
  ASSERT_EQ(ours.state_bytes(), uint64_t(2 * n + 2 * 3 * 4));  // two codes per element, two scales per block
  EXPECT_EQ(ours.state_bytes(), plan::optimizer_state_bytes(plan::OptimizerKind::AdamW8bit, plan::Precision::Bf16Mixed, n));
  for (int step = 1; step <= 4; ++step) {
    at::Tensor g = at::randn({n}) * (step == 3 ? 0.0 : 1.0 / step);  // step 3: an all-zero gradient
    if (step % 2 == 0) g = g.to(at::kBFloat16);
    ref.update(to_vector(g), 1e-2, cfg, decay);
    ours.step(g, 1e-2);
    expect_close(master, at::tensor(ref.p), 1e-6);
    EXPECT_TRUE(at::equal(out, master.to(at::kBFloat16)));
    const auto& st = ours.states();
    std::vector<int> qm(static_cast<size_t>(n)), qv(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      qm[size_t(i)] = (st[0][i].item<uint8_t>() + dynamic_map_zero(true)) % 256;
      qv[size_t(i)] = (st[2][i].item<uint8_t>() + dynamic_map_zero(false)) % 256;
    }
    ASSERT_EQ(qm, ref.qm) << "step " << step;
    ASSERT_EQ(qv, ref.qv) << "step " << step;
    ASSERT_EQ(to_vector(st[1]), ref.am) << "step " << step;
    ASSERT_EQ(to_vector(st[3]), ref.av) << "step " << step;
  }
  // The round trip: the dequantized moments are the codes' values times the block's absmax, within
  // half a code gap of the fp32 moments an unquantized AdamW would hold.
  at::Tensor m = ours.exp_avg();
  EXPECT_EQ(m.numel(), n);
  for (int64_t i : {int64_t(0), int64_t(2048), n - 1})
    EXPECT_EQ(m[i].item<float>(), reference_map(true)[size_t(ref.qm[size_t(i)])] * ref.am[size_t(i / 2048)]) << i;
}

// 8-bit moments follow fp32 AdamW closely on a smooth problem (a quadratic): after 200 steps the
// parameters are within a small fraction of the distance travelled.
TEST(AdamW8bit, TracksFp32AdamWOnAQuadratic) {
  at::manual_seed(6);
  const int64_t n = 4096;
  at::Tensor target = at::randn({n}), a = at::zeros({n}), b = at::zeros({n});
  AdamW full(AdamWConfig{}, a, {{0, n}});
  AdamW8bit q8(AdamWConfig{}, b, {{0, n}});
  for (int s = 0; s < 200; ++s) {
    full.step(a - target, 1e-2);
    q8.step(b - target, 1e-2);
  }
  const double moved = (a).norm().item<double>(), apart = (a - b).norm().item<double>();
  EXPECT_GT(moved, 1.0);
  EXPECT_LT(apart, 0.02 * moved) << "moved " << moved << ", apart " << apart;
}

TEST(Sgd, Bf16MasterIsTheFp32UpdateRoundedEachStep) {
  at::manual_seed(7);
  const int64_t n = 300;
  at::Tensor master = at::randn({n}).to(at::kBFloat16);
  SgdMomentum ours({0.9, 0.1}, master, {{0, 200}});
  EXPECT_EQ(ours.momentum_buffer().scalar_type(), at::kBFloat16);
  at::Tensor p = master.to(at::kFloat), buf = at::zeros({n});
  for (int step = 1; step <= 3; ++step) {
    at::Tensor g = at::randn({n});
    at::Tensor gd = g.clone();
    gd.narrow(0, 0, 200).add_(p.narrow(0, 0, 200) * 0.1f);
    buf = step == 1 ? gd : buf.mul(0.9f).add(gd);
    p = (p + buf * -0.05f).to(at::kBFloat16).to(at::kFloat);
    buf = buf.to(at::kBFloat16).to(at::kFloat);
    ours.step(g, 0.05);
    ASSERT_TRUE(at::equal(master.to(at::kFloat), p)) << "step " << step;
  }
}

TEST(AdamW8bitKernel, MatchesTheCpuLoop) {
  if (!comm::cuda_device_present()) GTEST_SKIP() << "no CUDA device present";
  at::manual_seed(8);
  for (int64_t n : {int64_t(1), int64_t(2047), int64_t(2049), int64_t(1) << 20}) {
    for (at::ScalarType gt : {at::kFloat, at::kBFloat16}) {
      at::Tensor init = at::randn({n});
      at::Tensor cpu = init.clone(), gpu = init.cuda();
      at::Tensor out_cpu = at::empty({n}, at::kBFloat16), out_gpu = at::empty({n}, at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA));
      AdamW8bit a(AdamWConfig{}, cpu, {{0, n / 2}}, out_cpu);
      AdamW8bit b(AdamWConfig{}, gpu, {{0, n / 2}}, out_gpu);
      for (int s = 0; s < 5; ++s) {
        at::Tensor g = at::randn({n}).to(gt);
        a.step(g, 1e-2);
        b.step(g.cuda(), 1e-2);
      }
      expect_close(gpu.cpu(), cpu, 1e-5);
      // Codes may differ where an fp32 moment lies on a rounding boundary (FMA contraction on the GPU).
      const double differ = (b.states()[0].cpu() != a.states()[0]).to(at::kDouble).mean().item<double>();
      EXPECT_LT(differ, 1e-3) << n;
      expect_close(b.states()[1].cpu(), a.states()[1], 1e-5);
    }
  }
}

// A NaN gradient (a step taken without the global norm's check) stores the same codes on both:
// code 0 for the NaN moments, whatever the block's absmax became.
TEST(AdamW8bitKernel, NaNMomentsStoreTheCpuCodes) {
  if (!comm::cuda_device_present()) GTEST_SKIP() << "no CUDA device present";
  const int64_t n = 4096;
  at::Tensor cpu = at::ones({n}), gpu = cpu.cuda();
  at::Tensor out_cpu = at::empty({n}, at::kBFloat16), out_gpu = at::empty({n}, at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA));
  AdamW8bit a(AdamWConfig{}, cpu, {{0, n}}, out_cpu);
  AdamW8bit b(AdamWConfig{}, gpu, {{0, n}}, out_gpu);
  at::Tensor g = at::full({n}, 0.5f);
  g[7] = NAN;  // its block's absmax is NaN: every moment of that block is NaN / NaN
  a.step(g, 1e-2);
  b.step(g.cuda(), 1e-2);
  for (size_t k = 0; k < a.states().size(); ++k) {
    const at::Tensor got = b.states()[k].cpu(), want = a.states()[k];
    if (want.scalar_type() == at::kByte) EXPECT_TRUE(at::equal(got, want)) << "codes " << k;
    else EXPECT_TRUE(at::allclose(got, want, 1e-6, 0, /*equal_nan=*/true)) << "absmax " << k;
  }
}

TEST(FusedAdamWKernel, MatchesTheCpuLoop) {
  if (!comm::cuda_device_present()) GTEST_SKIP() << "no CUDA device present";
  at::manual_seed(4);
  for (int64_t n : {1, 3, 4, 1000, 1 << 20}) {
    for (at::ScalarType gt : {at::kFloat, at::kBFloat16}) {
      at::Tensor init = at::randn({n});
      at::Tensor cpu = init.clone(), gpu = init.cuda();
      at::Tensor out_cpu = at::empty({n}, at::kBFloat16), out_gpu = at::empty({n}, at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA));
      AdamW a(AdamWConfig{}, cpu, {{0, n / 2}}, out_cpu);
      AdamW b(AdamWConfig{}, gpu, {{0, n / 2}}, out_gpu);
      for (int s = 0; s < 5; ++s) {
        at::Tensor g = at::randn({n}).to(gt);
        a.step(g, 1e-2);
        b.step(g.cuda(), 1e-2);
      }
      expect_close(gpu.cpu(), cpu, 1e-6);
      EXPECT_TRUE(at::allclose(out_gpu.cpu().to(at::kFloat), out_cpu.to(at::kFloat), 1e-2, 1e-6)) << n;
    }
  }
}

}  // namespace
