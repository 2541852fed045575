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

// A row's number under `key`, NaN when it is missing or not a number (a skipped step's null loss).
double number_or_nan(const json& row, const char* key) {
  return row.contains(key) && row[key].is_number() ? row[key].get<double>() : NAN;
}

std::vector<json> read_metrics(const std::string& path) {
  FT_CHECK_ARG(file_exists(path), "ftdist report: '" << path << "' does not exist (is this a run's output.dir?)");
  std::vector<json> rows;
  std::istringstream in(read_text_file(path, "ftdist report"));
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() && !in.good()) break;  // a running trainer's last line, half written
    FT_CHECK_ARG(j.is_object() && j.contains("step") && j["step"].is_number_integer(),
                 path << ":" << n << ": expected a metrics object with \"step\", got '" << line.substr(0, 80) << "'");
    rows.push_back(std::move(j));
  }
  return rows;
}

// A line chart of `key` over the steps (points where the value is a number), 640 x 200.
std::string chart(const std::vector<json>& rows, const std::string& key, const std::string& title) {
  std::vector<std::pair<double, double>> pts;
  for (const json& r : rows)
    if (r.contains(key) && r[key].is_number()) pts.push_back({r["step"].get<double>(), r[key].get<double>()});
  if (pts.empty()) return "";
  double x0 = pts.front().first, x1 = pts.back().first, y0 = pts[0].second, y1 = pts[0].second;
  for (const auto& p : pts) y0 = std::min(y0, p.second), y1 = std::max(y1, p.second);
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  std::ostringstream o;
  o << "<figure><figcaption>" << esc(title) << " (" << num(y0) << " to " << num(y1) << ")</figcaption>"
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

std::string steps_table(const std::vector<json>& rows) {
  std::string out = "<table class=\"steps\"><tr><th>step</th><th>loss</th><th>lr</th><th>grad_norm</th><th>tokens/s</th><th>eval_loss</th></tr>\n";
  auto cell = [](const json& r, const char* k) {
    const double v = number_or_nan(r, k);
    return "<td>" + (std::isnan(v) ? std::string() : num(v)) + "</td>";
  };
  for (const json& r : rows)
    out += "<tr><td>" + std::to_string(r["step"].get<int64_t>()) + "</td>" + cell(r, "loss") + cell(r, "lr") + cell(r, "grad_norm") +
           cell(r, "tokens_per_s") + cell(r, "eval_loss") + "</tr>\n";
  return out + "</table>\n";
}

std::string checkpoints(const std::string& run_dir, const json& config) {
  std::string root = run_dir + "/checkpoints";
  if (config.contains("checkpoint") && config["checkpoint"].contains("dir") && config["checkpoint"]["dir"].is_string())
    root = config["checkpoint"]["dir"].get<std::string>();
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
  const std::vector<json> rows = read_metrics(run_dir + "/" + name);
  std::ostringstream o;
  o << "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">"
    << "<title>ftdist run " << esc(run_dir) << "</title><style>body{font:14px sans-serif;max-width:60em;margin:auto;padding:1em}"
    << "svg{width:100%;height:auto;border:1px solid #ccc;color:#1f5fa8}table{border-collapse:collapse}"
    << "td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}</style></head><body>\n<h1>ftdist run " << esc(run_dir) << "</h1>\n";
  if (rows.empty()) o << "<p>No steps yet.</p>\n";
  else
    o << "<p>" << rows.size() << " steps recorded (to step " << rows.back()["step"].get<int64_t>() << "): loss "
      << num(number_or_nan(rows.front(), "loss")) << " &rarr; " << num(number_or_nan(rows.back(), "loss")) << ".</p>\n";
  o << "<h2>Curves</h2>\n" << chart(rows, "loss", "loss") << chart(rows, "eval_loss", "eval loss") << chart(rows, "lr", "learning rate")
    << chart(rows, "tokens_per_s", "tokens/s") << "<h2>Memory, planned and measured (memory.json)</h2>\n<table>"
    << key_table(memory, "") << "</table>\n<h2>Run config (run_config.json)</h2>\n<table>" << key_table(config, "")
    << "</table>\n<h2>Checkpoints</h2>\n" << checkpoints(run_dir, config) << "<h2>Steps</h2>\n" << steps_table(rows) << "</body></html>\n";
  return o.str();
}

}  // namespace ftdist::train
