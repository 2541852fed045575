// What the runtime is allocating right now, by the planner's memory categories: the runtime marks
// each stretch of work (building a unit's shards, gathering, a unit's forward, the loss, a
// reduction) with a CategoryScope, so that when an allocation fails the error can name the
// category that did not fit. Process-wide (the CPU backward runs on the calling thread; one
// training loop per process).
//
//   { CategoryScope scope(plan::MemCategory::unsharded_params); gather(); }
//   ... catch (const c10::OutOfMemoryError&) { CategoryScope::at_failure(); }
#pragma once

#include <optional>

#include "ftdist/plan/memory_model.h"

namespace ftdist::fsdp {

class CategoryScope {
 public:
  explicit CategoryScope(plan::MemCategory category);
  ~CategoryScope();
  CategoryScope(const CategoryScope&) = delete;
  CategoryScope& operator=(const CategoryScope&) = delete;

  // The category of the innermost scope that was open when the last out-of-memory error was
  // raised (set by note_failure(); scopes close while the exception unwinds).
  static std::optional<plan::MemCategory> at_failure();
  static void note_failure();  // called by whoever catches the allocation failure first
  static void clear_failure();

 private:
  int previous_;
};

}  // namespace ftdist::fsdp
