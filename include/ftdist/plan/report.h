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

// Index of the candidate that needs the least memory per GPU (what comes closest when nothing fits).
int least_memory_candidate(const PlanResult& result);

}  // namespace ftdist::plan
