// `ftdist plan --report FILE`: the plan as one self-contained HTML page (inline CSS and SVG, no
// scripts, nothing fetched) to look at and share. From the top:
//   headline      the recommended GPUs in large type (or "Nothing fits") and the plan in a sentence
//   memory        a stacked bar per candidate — the recommendation and the closest rejected ones —
//                 of the bytes alive at the step's peak by category (the JSON's
//                 timeline_peak.by_category, to scale), with each GPU's capacity and the headroom line
//   the step      the recommendation's memory over the step (plan/timeline.h), the peak marked
//   candidates    the table of `ftdist plan` (best variant per GPU count and stage) with why each lost
//   time, cost    step time, tokens/s, MFU, totals and the price
//   launch        the launch line
//   inputs        what was asked ("auto" where the planner chose)
// Every bar rect carries data-category and data-bytes, every bar group data-gpus, data-shard,
// data-micro-batch and data-checkpointing, so the picture can be checked against the JSON. The
// page reads at phone width (the table scrolls sideways) and prints (no backgrounds needed).
#pragma once

#include <string>

#include "ftdist/plan/report.h"

namespace ftdist::plan {

std::string plan_report_html(const PlanReport& report);

}  // namespace ftdist::plan
