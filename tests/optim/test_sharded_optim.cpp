// Under mpirun (2, 4 ranks): AdamW on each rank's shard of a padded flat buffer equals AdamW on
// the whole buffer; clipping on shards equals clipping the whole gradient.
#include <gtest/gtest.h>

#include "../comm/mpi_world.h"
#include "ftdist/optim/adamw.h"
#include "ftdist/optim/clip.h"

using namespace ftdist;
using namespace ftdist::optim;

TEST(ShardedAdamW, ShardsEqualTheUnshardedRun) {
  auto comm = mpi_world();
  const int n_ranks = comm->size();
  const int64_t numel = 1001, shard = (numel + n_ranks - 1) / n_ranks, padded = shard * n_ranks;
  at::manual_seed(7);  // every rank draws the same full tensors
  at::Tensor init = at::zeros({padded});
  init.narrow(0, 0, numel).normal_();
  std::vector<Range> decay_full = {{100, 700}};
  at::Tensor whole = init.clone();
  AdamW full(AdamWConfig{}, whole, decay_full);
  const int64_t begin = comm->rank() * shard;
  std::vector<Range> mine;
  for (const Range& r : decay_full) {
    int64_t lo = std::max(r.begin, begin), hi = std::min(r.end, begin + shard);
    if (lo < hi) mine.push_back({lo - begin, hi - begin});
  }
  at::Tensor my_master = init.narrow(0, begin, shard).clone();
  at::Tensor my_param = at::empty({shard}, at::kBFloat16);
  AdamW part(AdamWConfig{}, my_master, mine, my_param);
  for (int step = 0; step < 20; ++step) {
    at::Tensor g = at::zeros({padded});
    g.narrow(0, 0, numel).normal_();
    full.step(g, 1e-2);
    part.step(g.narrow(0, begin, shard).contiguous(), 1e-2);
  }
  at::Tensor gathered = at::empty({padded});
  comm->all_gather_into(gathered, my_master);
  EXPECT_TRUE(at::equal(gathered, whole));  // elementwise: bitwise equal
  at::Tensor params = at::empty({padded}, at::kBFloat16);
  comm->all_gather_into(params, my_param);
  EXPECT_TRUE(at::equal(params, whole.to(at::kBFloat16)));
}

TEST(ShardedClip, NormOfShardsIsTheNormOfTheWhole) {
  auto comm = mpi_world();
  const int n_ranks = comm->size();
  at::manual_seed(8);
  at::Tensor whole = at::randn({64 * n_ranks});
  const double want = whole.to(at::kDouble).norm().item<double>();
  at::Tensor mine = whole.narrow(0, comm->rank() * 64, 64).clone();
  ClipResult r = clip_grad_norm({mine}, want / 2, comm.get());
  EXPECT_NEAR(r.norm, want, 1e-9 * want);
  at::Tensor all = at::empty({64 * n_ranks});
  comm->all_gather_into(all, mine);
  EXPECT_NEAR(all.to(at::kDouble).norm().item<double>(), want / 2, 1e-5 * want);
  // Replicas (hybrid: the same shard in another group) take their rank 0's norm, bit for bit, even
  // where their own reductions came out otherwise.
  at::Tensor own = at::full({4}, double(comm->rank() + 1), at::kFloat);
  const ClipResult agreed = clip_grad_norm({own}, 0, nullptr, NonFinite::Skip, comm.get());
  EXPECT_EQ(agreed.norm, 2.0) << "rank 0's norm (sqrt(4 x 1^2)) on every replica";
}
