// The run report: metrics.jsonl, memory.json, run_config.json and the checkpoint list as HTML.
#include "ftdist/train/run_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "ftdist/core/check.h"
#include "ftdist/core/html.h"
#include "ftdist/core/text_file.h"

namespace ftdist::train {
namespace {

using json = nlohmann::ordered_json;

std::string esc(const std::string& s) { return html_escape(s); }

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.6g", v);
  return b;
}

// The numbers the report shows of one metrics line (NaN: missing, null as a skipped step's loss,
// or not a number), kept instead of the parsed line: a long run's log has millions of lines.
struct Row {
  int64_t step = 0;
  double loss = NAN, lr = NAN, grad_norm = NAN, tokens_per_s = NAN, eval_loss = NAN;
};
using Field = double Row::*;

double number_or_nan(const json& row, const char* key) {
  return row.contains(key) && row[key].is_number() ? row[key].get<double>() : NAN;
}

std::vector<Row> read_metrics(const std::string& path) {
  FT_CHECK_ARG(file_exists(path), "ftdist report: '" << path << "' does not exist (is this a run's output.dir?)");
  std::vector<Row> rows;
  std::istringstream in(read_text_file(path, "ftdist report"));
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded() && !in.good()) break;  // a running trainer's last line, half written
    FT_CHECK_ARG(j.is_object() && j.contains("step") && j["step"].is_number_integer(),
                 path << ":" << n << ": expected a metrics object with \"step\", got '" << line.substr(0, 80) << "'");
    rows.push_back({j["step"].get<int64_t>(), number_or_nan(j, "loss"), number_or_nan(j, "lr"), number_or_nan(j, "grad_norm"),
                    number_or_nan(j, "tokens_per_s"), number_or_nan(j, "eval_loss")});
  }
  return rows;
}

// Points drawn per chart and rows listed in the steps table, at most: beyond them the page would
// grow with the run (tens of MB for 500k steps) while showing no more.
constexpr size_t kMaxChartPoints = 2000, kMaxTableRows = 2000;

// A line chart of `field` over the steps (points where it is a number), 640 x 200. Longer series
// keep each of kMaxChartPoints / 2 runs of steps as its lowest and highest point, so spikes show.
std::string chart(const std::vector<Row>& rows, Field field, const std::string& key, const std::string& title) {
  std::vector<std::pair<double, double>> all, pts;
  for (const Row& r : rows)
    if (!std::isnan(r.*field)) all.push_back({double(r.step), r.*field});
  if (all.empty()) return "";
  const size_t buckets = kMaxChartPoints / 2, per = (all.size() + buckets - 1) / buckets;
  if (per <= 1) pts = all;
  for (size_t b = 0; per > 1 && b < all.size(); b += per) {
    const auto first = all.begin() + long(b), last = all.begin() + long(std::min(all.size(), b + per));
    auto lo = std::min_element(first, last, [](const auto& a, const auto& c) { return a.second < c.second; });
    auto hi = std::max_element(first, last, [](const auto& a, const auto& c) { return a.second < c.second; });
    if (hi < lo) std::swap(lo, hi);
    pts.push_back(*lo);
    if (hi != lo) pts.push_back(*hi);
  }
  double x0 = pts.front().first, x1 = pts.back().first, y0 = pts[0].second, y1 = pts[0].second;
  for (const auto& p : pts) y0 = std::min(y0, p.second), y1 = std::max(y1, p.second);
  // (the caption says the values; a constant series is drawn across the middle of a unit's range)
  const std::string range = y1 == y0 ? num(y0) + " throughout" : num(y0) + " to " + num(y1);
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y0 -= 0.5, y1 += 0.5;
  std::ostringstream o;
  o << "<figure><figcaption>" << esc(title) << " (" << range << ")</figcaption>"
    << "<svg viewBox=\"0 0 640 200\" role=\"img\" aria-label=\"" << esc(key) << "\"><polyline class=\"" << esc(key)
    << "\" fill=\"none\" stroke=\"currentColor\" points=\"";
  for (const auto& [x, y] : pts) o << num(10 + 620 * (x - x0) / (x1 - x0)) << "," << num(190 - 180 * (y - y0) / (y1 - y0)) << " ";
  o << "\"/></svg></figure>\n";
  return o.str();
}

std::string key_table(const json& j, const std::string& prefix) {
  std::string out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it->is_object()) out += key_table(*it, prefix + it.key() + ".");
    else out += "<tr><td>" + esc(prefix + it.key()) + "</td><td>" + esc(it->dump()) + "</td></tr>\n";
  }
  return out;
}

// Every step, or for a longer run every k-th (and each evaluated step, and the last), k chosen to
// list at most about kMaxTableRows.
std::string steps_table(const std::vector<Row>& rows) {
  const size_t every = std::max<size_t>(1, (rows.size() + kMaxTableRows - 1) / kMaxTableRows);
  std::string out = every == 1 ? "" : "<p>One row per " + std::to_string(every) + " steps of the " + std::to_string(rows.size()) +
                                          " recorded, plus each evaluated step and the last; the metrics log holds them all.</p>\n";
  out += "<table class=\"steps\"><tr><th>step</th><th>loss</th><th>lr</th><th>grad_norm</th><th>tokens/s</th><th>eval_loss</th></tr>\n";
  auto cell = [](double v) { return "<td>" + (std::isnan(v) ? std::string() : num(v)) + "</td>"; };
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    if (i % every != 0 && i + 1 != rows.size() && std::isnan(r.eval_loss)) continue;
    out += "<tr><td>" + std::to_string(r.step) + "</td>" + cell(r.loss) + cell(r.lr) + cell(r.grad_norm) + cell(r.tokens_per_s) +
           cell(r.eval_loss) + "</tr>\n";
  }
  return out + "</table>\n";
}

std::string checkpoints(const std::string& run_dir, const json& config) {
  std::string root = run_dir + "/checkpoints";
  // (run_config.json names it absolute; a run of an older ftdist relative to where it was started,
  // which is this directory only if the path is there)
  if (config.contains("checkpoint") && config["checkpoint"].contains("dir") && config["checkpoint"]["dir"].is_string()) {
    const std::string dir = config["checkpoint"]["dir"].get<std::string>();
    if (!dir.empty() && (dir[0] == '/' || is_directory(dir))) root = dir;
  }
  if (!is_directory(root)) return "<p>No checkpoints.</p>\n";
  std::vector<std::string> names;
  for (const std::string& n : list_directory(root))
    if (n.rfind("step-", 0) == 0 && file_exists(root + "/" + n + "/meta.json")) names.push_back(n);
  std::sort(names.begin(), names.end());
  std::string out = "<ul class=\"checkpoints\">";
  for (const std::string& n : names) out += "<li>" + esc(root + "/" + n) + "</li>";
  return out + "</ul>\n";
}

json optional_json(const std::string& path) {
  if (!file_exists(path)) return json::object();
  json j = json::parse(read_text_file(path, "ftdist report"), nullptr, false);
  FT_CHECK_ARG(!j.is_discarded() && j.is_object(), "ftdist report: '" << path << "' is not a JSON object");
  return j;
}

}  // namespace

std::string run_report_html(const std::string& run_dir) {
  const json config = optional_json(run_dir + "/run_config.json"), memory = optional_json(run_dir + "/memory.json");
  // The run's output.metrics (a plain file name, checked when the run started), else the default.
  const json* metrics = config.contains("output") ? &config["output"] : nullptr;
  const std::string name = metrics && metrics->contains("metrics") && (*metrics)["metrics"].is_string() &&
                                   (*metrics)["metrics"].get<std::string>().find('/') == std::string::npos
                               ? (*metrics)["metrics"].get<std::string>()
                               : "metrics.jsonl";
  const std::vector<Row> rows = read_metrics(run_dir + "/" + name);
  std::ostringstream o;
  o << "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">"
    << "<title>ftdist run " << esc(run_dir) << "</title><style>body{font:14px sans-serif;max-width:60em;margin:auto;padding:1em}"
    << "svg{width:100%;height:auto;border:1px solid #ccc;color:#1f5fa8}table{border-collapse:collapse}"
    << "td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}</style></head><body>\n<h1>ftdist run " << esc(run_dir) << "</h1>\n";
  // (the first and last losses recorded: a skipped step has none)
  auto with_loss = [](const Row& r) { return !std::isnan(r.loss); };
  const auto first = std::find_if(rows.begin(), rows.end(), with_loss);
  const auto last = std::find_if(rows.rbegin(), rows.rend(), with_loss);
  if (rows.empty()) o << "<p>No steps yet.</p>\n";
  else
    o << "<p>" << rows.size() << " steps recorded (to step " << rows.back().step << ")"
      << (first == rows.end() ? std::string(", none with a loss") : ": loss " + num(first->loss) + " &rarr; " + num(last->loss)) << ".</p>\n";
  o << "<h2>Curves</h2>\n" << chart(rows, &Row::loss, "loss", "loss") << chart(rows, &Row::eval_loss, "eval_loss", "eval loss")
    << chart(rows, &Row::lr, "lr", "learning rate") << chart(rows, &Row::tokens_per_s, "tokens_per_s", "tokens/s") << "<h2>Memory, planned and measured (memory.json)</h2>\n<table>"
    << key_table(memory, "") << "</table>\n<h2>Run config (run_config.json)</h2>\n<table>" << key_table(config, "")
    << "</table>\n<h2>Checkpoints</h2>\n" << checkpoints(run_dir, config) << "<h2>Steps</h2>\n" << steps_table(rows) << "</body></html>\n";
  return o.str();
}

}  // namespace ftdist::train
