#include "ftdist/fsdp/memory_category.h"

#include <atomic>

namespace ftdist::fsdp {
namespace {
std::atomic<int> g_current{-1};
std::atomic<int> g_at_failure{-1};

std::optional<plan::MemCategory> category_of(int v) {
  if (v < 0) return std::nullopt;
  return static_cast<plan::MemCategory>(v);
}
}  // namespace

CategoryScope::CategoryScope(plan::MemCategory category) : previous_(g_current.exchange(static_cast<int>(category))) {}
CategoryScope::~CategoryScope() { g_current.store(previous_); }

std::optional<plan::MemCategory> CategoryScope::at_failure() { return category_of(g_at_failure.load()); }
void CategoryScope::note_failure() { g_at_failure.store(g_current.load()); }
void CategoryScope::clear_failure() { g_at_failure.store(-1); }

}  // namespace ftdist::fsdp
