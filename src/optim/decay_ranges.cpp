#include <algorithm>

#include "ftdist/core/check.h"
#include "ftdist/optim/adamw.h"

namespace ftdist::optim {

std::vector<Range> decay_ranges(const plan::ModelSpec::Unit& unit, int64_t shard_begin, int64_t shard_len) {
  std::vector<Range> out;
  int64_t offset = 0;
  for (const auto& t : unit.tensors) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    if (t.shape.size() >= 2) {
      int64_t lo = std::max(offset, shard_begin), hi = std::min(offset + n, shard_begin + shard_len);
      if (lo < hi) {
        if (!out.empty() && out.back().end == lo - shard_begin) out.back().end = hi - shard_begin;  // merge neighbours
        else out.push_back({lo - shard_begin, hi - shard_begin});
      }
    }
    offset += n;
  }
  return out;
}

std::vector<Segment> segments(int64_t n, const std::vector<Range>& decay) {
  std::vector<Segment> out;
  int64_t pos = 0;
  for (const Range& r : decay) {
    FT_CHECK(r.begin >= pos && r.end >= r.begin && r.end <= n, ErrorKind::Internal,
             "decay ranges must be sorted, disjoint and inside [0, " << n << ")");
    if (r.begin > pos) out.push_back({pos, r.begin, false});
    if (r.end > r.begin) out.push_back({r.begin, r.end, true});
    pos = r.end;
  }
  if (pos < n) out.push_back({pos, n, false});
  return out;
}

}  // namespace ftdist::optim
