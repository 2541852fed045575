// What `ftdist plan` prints: the JSON document (stable keys, docs/planner.md#json-output) and the human tables.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ftdist/plan/alternatives.h"
#include "ftdist/plan/search.h"

namespace ftdist::plan {

struct PlanReport {
  const PlanRequest& request;
  const PlanResult& result;
  std::vector<AlternativeRow> alternatives;
  nlohmann::ordered_json inputs;        // as the user gave them (auto where the planner chose)
  std::string catalog_origin;
  std::string launch_line;      // for the recommendation; empty when nothing fits
};

nlohmann::ordered_json candidate_json(const PlanRequest& request, const Candidate& c);
nlohmann::ordered_json plan_json(const PlanReport& report);
std::string plan_table(const PlanReport& report);

// The candidates the tables show: per (hardware, GPU count, stage) the best fitting variant, else
// the one needing the least memory; up to max(8, 4 x the focus's GPUs) GPUs (`hidden`: how many
// more), in the order of hardware, GPU count and stage.
std::vector<int> shown_candidates(const PlanReport& report, int focus, int* hidden = nullptr);
// "4 x a100-80gb, shard full, micro-batch 4, grad-accum 1, checkpointing none".
std::string candidate_summary(const PlanRequest& request, const Candidate& c);

// Index of the candidate that needs the least memory per GPU (what comes closest when nothing fits).
int least_memory_candidate(const PlanResult& result);

}  // namespace ftdist::plan
