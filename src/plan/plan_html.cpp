// The plan report page (plan/plan_html.h): sections in page order, each a function writing HTML.
#include "ftdist/plan/plan_html.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <vector>

#include "ftdist/core/bytes.h"
#include "ftdist/core/html.h"
#include "ftdist/plan/timeline.h"

namespace ftdist::plan {
namespace {

std::string esc(const std::string& s) { return html_escape(s); }

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof(b), f, v);
  return b;
}

std::string gib(double bytes) { return fmt("%.2f", bytes / double(kGiB)) + " GiB"; }

// One colour per memory category, in all_mem_categories() order (bars and legend).
const char* category_color(MemCategory c) {
  static const char* colors[kNumMemCategories] = {"#1f5fa8", "#4f8fd6", "#9cc3ec", "#2e8b57", "#f0a030",
                                                  "#e8c050", "#c0392b", "#8e44ad", "#7f8c8d", "#b8bec4"};
  return colors[int(c)];
}

const char* kStyle =
    ":root{--fg:#1b1f24;--muted:#59636e;--line:#d0d7de;--accent:#1f5fa8}"
    "*{box-sizing:border-box}"
    "body{font:15px/1.45 \"DejaVu Sans\",system-ui,sans-serif;color:var(--fg);background:#fff;max-width:60rem;margin:0 auto;padding:0 1rem 2rem}"
    ".headline{height:8.5rem;overflow:hidden;padding-top:1rem;border-bottom:2px solid var(--accent)}"
    ".headline .count{font-size:2.5rem;line-height:3rem;margin:0;white-space:nowrap;overflow:hidden}"
    ".headline .sentence{margin:.4rem 0 0;color:var(--muted)}"
    "h2{font-size:1.15rem;margin:1.6rem 0 .5rem}"
    "figure{margin:.5rem 0}figcaption{color:var(--muted);font-size:.85rem}"
    "svg{width:100%;height:auto;display:block}svg text{font-family:\"DejaVu Sans\",sans-serif}"
    ".legend{display:flex;flex-wrap:wrap;gap:.2rem 1rem;list-style:none;padding:0;margin:.3rem 0;font-size:.8rem}"
    ".legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:-1px;border:1px solid #0003}"
    ".table-wrap{overflow-x:auto}"
    "table{border-collapse:collapse;width:100%;font-size:.82rem;font-variant-numeric:tabular-nums}"
    "th,td{padding:.3rem .45rem;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}"
    "th{border-bottom:2px solid var(--fg)}th .sort{color:var(--muted);font-size:.7rem;margin-left:.15rem}"
    "td.text,th.text{text-align:left}td.note{text-align:left;white-space:normal;color:var(--muted);padding-top:0}"
    "tr:not(.why) td{border-bottom:0}"
    "tr.recommended td{font-weight:700;border-left:0}tr.recommended td:first-child{box-shadow:inset 4px 0 var(--accent)}"
    "td.no{color:#c0392b}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:.5rem 0}"
    "dt{color:var(--muted)}dd{margin:0}"
    "pre{background:#f6f8fa;border:1px solid var(--line);padding:.6rem;white-space:pre-wrap;word-break:break-all;font-size:.85rem}"
    "@media (max-width:40rem){body{font-size:14px}.headline{height:9.5rem}.headline .count{font-size:1.8rem;line-height:2.4rem}}"
    "@media print{body{max-width:none;font-size:10pt}.table-wrap{overflow:visible}table{font-size:7.5pt}"
    "figure,tr,dl{break-inside:avoid}pre{white-space:pre-wrap}}";

// The candidate the page is about: the recommendation, or the one needing the least memory.
int focus_of(const PlanResult& res) { return res.recommended >= 0 ? res.recommended : least_memory_candidate(res); }

std::string gpus_text(const PlanRequest& req, const Candidate& c) {
  return std::to_string(c.gpus) + " &times; " + esc(req.hardware[c.hardware].gpu.name);
}

void headline(std::ostringstream& o, const PlanReport& r) {
  const PlanRequest& req = r.request;
  const PlanResult& res = r.result;
  o << "<header class=\"headline\">";
  if (res.recommended >= 0) {
    const Candidate& c = res.candidates[size_t(res.recommended)];
    o << "<h1 class=\"count\">" << gpus_text(req, c) << "</h1><p class=\"sentence\">" << esc(req.model.name) << ": "
      << esc(candidate_summary(req, c)) << "; " << gib(double(c.needed_bytes())) << " of " << gib(double(c.gpu_memory_bytes))
      << " per GPU at the step's peak, ";
    if (req.total_tokens > 0)
      o << esc(duration_text(c.time.total_s)) << " and $" << usd_text(c.time.cost_usd) << " for the workload.";
    else
      o << fmt("%.0f", c.time.tokens_per_s) << " tokens/s, $" << usd_text(c.time.cost_per_mtok_usd) << " per million tokens.";
    o << "</p>";
  } else {
    o << "<h1 class=\"count\">Nothing fits</h1><p class=\"sentence\">" << esc(req.model.name)
      << ": no candidate fits with the headroom; the bars show the closest.</p>";
  }
  o << "</header>\n";
}

// The bars: the focus, then up to four others of the table's rows — those that do not fit, closest
// first, then those that fit but lost, best first.
std::vector<int> bar_candidates(const PlanReport& r, int focus) {
  const PlanResult& res = r.result;
  std::vector<int> rows = shown_candidates(r, focus), out;
  if (focus >= 0) out.push_back(focus);
  std::vector<int> rejected, lost;
  for (int i : rows) {
    if (i == focus) continue;
    (res.candidates[size_t(i)].fits ? lost : rejected).push_back(i);
  }
  auto need = [&](int i) { return res.candidates[size_t(i)].needed_bytes(); };
  std::sort(rejected.begin(), rejected.end(), [&](int a, int b) { return need(a) < need(b); });
  std::sort(lost.begin(), lost.end(), [&](int a, int b) { return res.candidates[size_t(a)].time.step_s < res.candidates[size_t(b)].time.step_s; });
  for (const std::vector<int>* v : {&rejected, &lost})
    for (int i : *v)
      if (out.size() < 5) out.push_back(i);
  return out;
}

// A round step for axis ticks: at most 6 ticks up to `top` bytes.
double tick_step(double top) {
  for (double g : {0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0})
    if (top / (g * double(kGiB)) <= 6) return g * double(kGiB);
  return top / 5;
}

// Horizontal GiB gridlines and labels of a chart whose y axis runs from `base` (0 bytes) up by `scale` px per byte.
void y_axis(std::ostringstream& o, double top, double base, double scale, double x0, double x1) {
  const double step = tick_step(top);
  for (double b = 0; b <= top * 1.0001; b += step) {
    const double y = base - b * scale;
    o << "<line x1=\"" << x0 << "\" x2=\"" << x1 << "\" y1=\"" << fmt("%.2f", y) << "\" y2=\"" << fmt("%.2f", y)
      << "\" stroke=\"#e4e8ec\"/><text x=\"" << x0 - 6 << "\" y=\"" << fmt("%.2f", y + 4)
      << "\" font-size=\"11\" text-anchor=\"end\" fill=\"#59636e\">" << fmt("%g", b / double(kGiB)) << "</text>";
  }
}

void memory_bars(std::ostringstream& o, const PlanReport& r, int focus) {
  const PlanRequest& req = r.request;
  const PlanResult& res = r.result;
  const std::vector<int> bars = bar_candidates(r, focus);
  if (bars.empty()) return;
  double top = 0;
  for (int i : bars)
    top = std::max({top, double(res.candidates[size_t(i)].peak.alive.total()), double(res.candidates[size_t(i)].gpu_memory_bytes)});
  top *= 1.08;
  const double x0 = 70, x1 = 710, base = 300, height = 270, scale = height / top;
  const double slot = (x1 - x0) / double(bars.size()), width = std::min(90.0, slot * 0.55);
  o << "<h2>Memory per GPU at the step's peak</h2>\n<figure><svg viewBox=\"0 0 720 372\" role=\"img\" aria-label=\"memory per GPU by category\">";
  y_axis(o, top, base, scale, x0, x1);
  for (size_t k = 0; k < bars.size(); ++k) {
    const Candidate& c = res.candidates[size_t(bars[k])];
    const double cx = x0 + slot * (double(k) + 0.5), left = cx - width / 2;
    o << "<g class=\"bar\" data-gpus=\"" << c.gpus << "\" data-gpu=\"" << esc(req.hardware[c.hardware].gpu.name) << "\" data-shard=\""
      << stage_name(c.setup.stage) << "\" data-micro-batch=\"" << c.setup.micro_batch << "\" data-checkpointing=\""
      << esc(activation_checkpointing_name(c.setup.activation_checkpointing)) << "\" data-total=\"" << c.peak.alive.total() << "\">";
    double y = base;
    for (MemCategory cat : all_mem_categories()) {
      const double bytes = double(c.peak.alive[cat]), h = bytes * scale;
      y -= h;
      o << "<rect x=\"" << fmt("%.2f", left) << "\" y=\"" << fmt("%.4f", y) << "\" width=\"" << fmt("%.2f", width) << "\" height=\""
        << fmt("%.4f", h) << "\" fill=\"" << category_color(cat) << "\" data-category=\"" << mem_category_name(cat) << "\" data-bytes=\""
        << c.peak.alive[cat] << "\"><title>" << mem_category_name(cat) << " " << gib(bytes) << "</title></rect>";
    }
    // this GPU's capacity (solid) and what the headroom leaves usable (dashed)
    for (const auto& [bytes, dash] : {std::make_pair(double(c.gpu_memory_bytes), ""), std::make_pair(double(c.usable_bytes), "4 3")})
      o << "<line class=\"" << (*dash ? "usable" : "capacity") << "\" x1=\"" << fmt("%.2f", left - 8) << "\" x2=\"" << fmt("%.2f", left + width + 8)
        << "\" y1=\"" << fmt("%.2f", base - bytes * scale) << "\" y2=\"" << fmt("%.2f", base - bytes * scale) << "\" stroke=\"#1b1f24\" stroke-width=\"1.5\""
        << (*dash ? " stroke-dasharray=\"4 3\"" : "") << "/>";
    o << "<text x=\"" << fmt("%.2f", cx) << "\" y=\"" << fmt("%.2f", y - 6) << "\" font-size=\"12\" text-anchor=\"middle\" font-weight=\"700\">"
      << fmt("%.1f", double(c.peak.alive.total()) / double(kGiB)) << "</text>";
    const std::string line1 = std::to_string(c.gpus) + " \u00d7 " + req.hardware[c.hardware].gpu.name;
    const std::string line2 = std::string(stage_name(c.setup.stage)) + ", mb " + std::to_string(c.setup.micro_batch);
    const std::string line3 = "ckpt " + activation_checkpointing_name(c.setup.activation_checkpointing);
    const std::string line4 = bars[k] == res.recommended ? "recommended" : c.fits ? "fits, lost" : "does not fit";
    double ty = base + 15;
    for (const std::string& t : {line1, line2, line3, line4}) {
      o << "<text x=\"" << fmt("%.2f", cx) << "\" y=\"" << fmt("%.2f", ty) << "\" font-size=\"" << (slot < 110 ? 9 : 11)
        << "\" text-anchor=\"middle\"" << (&t == &line4 ? " font-weight=\"700\"" : "") << ">" << esc(t) << "</text>";
      ty += 14;
    }
    o << "</g>";
  }
  o << "</svg><figcaption>GiB per GPU, to scale. Solid line: the GPU's memory; dashed: what the " << fmt("%.0f", req.headroom * 100)
    << "% headroom leaves usable. A plan fits when its bar stays under the dashed line.</figcaption></figure>\n<ul class=\"legend\">";
  for (MemCategory cat : all_mem_categories())
    o << "<li><i style=\"background:" << category_color(cat) << "\"></i>" << mem_category_name(cat) << "</li>";
  o << "</ul>\n";
}

// The focus's bytes alive over the step, phase by phase, the peak marked.
void step_chart(std::ostringstream& o, const PlanReport& r, int focus) {
  if (focus < 0) return;
  const PlanRequest& req = r.request;
  const Candidate& c = r.result.candidates[size_t(focus)];
  const StepTimeline t = step_timeline(req.model, c.setup);
  if (t.phases.size() < 2) return;
  const double top = std::max(double(t.peak_phase().alive.total()), double(c.gpu_memory_bytes)) * 1.08;
  const double x0 = 70, x1 = 710, base = 250, scale = 220 / top;
  auto x_of = [&](size_t i) { return x0 + (x1 - x0) * double(i) / double(t.phases.size() - 1); };
  o << "<h2>Memory over one step</h2>\n<figure><svg viewBox=\"0 0 720 290\" role=\"img\" aria-label=\"memory over the step\">";
  y_axis(o, top, base, scale, x0, x1);
  std::string points;
  for (size_t i = 0; i < t.phases.size(); ++i)
    points += fmt("%.2f", x_of(i)) + "," + fmt("%.2f", base - double(t.phases[i].alive.total()) * scale) + " ";
  o << "<polygon points=\"" << fmt("%.2f", x0) << "," << base << " " << points << fmt("%.2f", x1) << "," << base
    << "\" fill=\"#9cc3ec\" fill-opacity=\"0.6\"/><polyline points=\"" << points << "\" fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"2\"/>";
  for (const auto& [bytes, dash] : {std::make_pair(double(c.gpu_memory_bytes), ""), std::make_pair(double(c.usable_bytes), "4 3")})
    o << "<line x1=\"" << x0 << "\" x2=\"" << x1 << "\" y1=\"" << fmt("%.2f", base - bytes * scale) << "\" y2=\"" << fmt("%.2f", base - bytes * scale)
      << "\" stroke=\"#1b1f24\" stroke-width=\"1.2\"" << (*dash ? " stroke-dasharray=\"4 3\"" : "") << "/>";
  // where forward and backward begin, and the optimizer step at the end
  for (const char* m : {"forward", "backward", "optimizer step"})
    for (size_t i = 0; i < t.phases.size(); ++i)
      if (t.phases[i].name.rfind(m, 0) == 0) {
        const bool last = i + 1 == t.phases.size();
        o << "<line x1=\"" << fmt("%.2f", x_of(i)) << "\" x2=\"" << fmt("%.2f", x_of(i)) << "\" y1=\"" << base << "\" y2=\"" << base + 6
          << "\" stroke=\"#59636e\"/><text x=\"" << fmt("%.2f", x_of(i) + (last ? 0 : 2)) << "\" y=\"" << base + 18
          << "\" font-size=\"11\" fill=\"#59636e\" text-anchor=\"" << (last ? "end" : "start") << "\">" << m << "</text>";
        break;
      }
  const double px = x_of(t.peak), py = base - double(t.peak_phase().alive.total()) * scale;
  const bool right = px > (x0 + x1) / 2;
  o << "<circle class=\"peak\" cx=\"" << fmt("%.2f", px) << "\" cy=\"" << fmt("%.2f", py) << "\" r=\"5\" fill=\"#c0392b\"/><text x=\""
    << fmt("%.2f", px + (right ? -8 : 8)) << "\" y=\"" << fmt("%.2f", std::max(14.0, py - 8)) << "\" font-size=\"12\" font-weight=\"700\" text-anchor=\""
    << (right ? "end" : "start") << "\" fill=\"#c0392b\">peak " << fmt("%.2f", double(t.peak_phase().alive.total()) / double(kGiB))
    << " GiB, " << esc(t.peak_phase().name) << "</text>";
  o << "</svg><figcaption>GiB alive on each GPU of " << esc(candidate_summary(req, c)) << ", phase by phase through forward, loss, "
    << "backward and the optimizer step (" << t.phases.size() << " phases; overhead included). Lines: the GPU's memory and the usable part.</figcaption></figure>\n";
}

void candidate_table(std::ostringstream& o, const PlanReport& r, int focus) {
  const PlanRequest& req = r.request;
  const PlanResult& res = r.result;
  int hidden = 0;
  const std::vector<int> rows = shown_candidates(r, focus, &hidden);
  o << "<h2>Candidates</h2>\n<div class=\"table-wrap\"><table><thead><tr>";
  bool first = true;  // (the GPU's name: text, left-aligned)
  for (const char* h : {"GPU", "GPUs", "nodes", "shard", "mb", "ckpt", "GiB/GPU", "fits", "step s", "tokens/s", "time", "cost $"}) {
    o << "<th" << (first ? " class=\"text\"" : "") << ">" << h << "<span class=\"sort\">&#x25B4;&#x25BE;</span></th>";
    first = false;
  }
  o << "</tr></thead><tbody>\n";
  for (int i : rows) {
    const Candidate& c = res.candidates[size_t(i)];
    const bool rec = i == res.recommended;
    o << "<tr" << (rec ? " class=\"recommended\"" : "") << "><td class=\"text\">" << esc(req.hardware[c.hardware].gpu.name) << "</td><td>"
      << c.gpus << "</td><td>" << c.nodes << "</td><td>" << stage_name(c.setup.stage) << "</td><td>" << c.setup.micro_batch << "</td><td>"
      << esc(activation_checkpointing_name(c.setup.activation_checkpointing)) << "</td><td>" << fmt("%.2f", double(c.needed_bytes()) / double(kGiB))
      << "</td><td" << (c.fits ? ">yes" : " class=\"no\">no") << "</td><td>" << fmt("%.2f", c.time.step_s) << "</td><td>"
      << fmt("%.0f", c.time.tokens_per_s) << "</td><td>" << (req.total_tokens > 0 ? esc(duration_text(c.time.total_s)) : "-") << "</td><td>"
      << (req.total_tokens > 0 ? usd_text(c.time.cost_usd) : "-") << "</td></tr>\n<tr class=\"why" << (rec ? " recommended" : "")
      << "\"><td class=\"note\" colspan=\"12\">" << (rec ? "recommended" : esc(c.rejected_because)) << "</td></tr>\n";
  }
  o << "</tbody></table></div>\n";
  if (hidden > 0) o << "<p>" << hidden << " more rows with more GPUs are in <code>ftdist plan --json</code>.</p>\n";
}

void time_and_cost(std::ostringstream& o, const PlanReport& r) {
  const PlanRequest& req = r.request;
  if (r.result.recommended < 0) return;
  const Candidate& c = r.result.candidates[size_t(r.result.recommended)];
  const GpuSpec& gpu = req.hardware[c.hardware].gpu;
  o << "<h2>Time and cost</h2>\n<dl><dt>step</dt><dd>" << fmt("%.3f", c.time.step_s) << " s (grad-accum " << c.grad_accum << ")</dd>"
    << "<dt>throughput</dt><dd>" << fmt("%.0f", c.time.tokens_per_s) << " tokens/s, " << fmt("%.0f", c.time.tokens_per_s / c.gpus)
    << " per GPU, MFU " << fmt("%.0f", c.time.mfu * 100) << "%</dd>";
  if (req.total_tokens > 0)
    o << "<dt>workload</dt><dd>" << c.time.steps << " steps, " << esc(duration_text(c.time.total_s)) << " in total</dd><dt>cost</dt><dd>"
      << fmt("%.2f", c.time.gpu_hours) << " GPU-hours &times; $" << fmt("%.2f", gpu.price_per_hour) << " = $" << usd_text(c.time.cost_usd) << "</dd>";
  else
    o << "<dt>cost</dt><dd>$" << usd_text(c.time.cost_per_mtok_usd) << " per million tokens (no workload given)</dd>";
  o << "<dt>price</dt><dd>$" << fmt("%.2f", gpu.price_per_hour) << " per GPU-hour, an assumption (" << esc(r.catalog_origin) << ")</dd></dl>\n";
  o << "<h2>Launch</h2>\n<pre>" << esc(r.launch_line) << "</pre>\n<p><code>ftdist plan ... --emit mpirun</code> (or <code>slurm</code>) "
    << "writes the launch files and the <code>run.toml</code> they train.</p>\n";
}

void inputs(std::ostringstream& o, const PlanReport& r) {
  o << "<h2>Inputs</h2>\n<dl>";
  for (auto it = r.inputs.begin(); it != r.inputs.end(); ++it)
    o << "<dt>" << esc(it.key()) << "</dt><dd>" << esc(it->is_string() ? it->get<std::string>() : it->dump()) << "</dd>";
  o << "</dl>\n";
}

}  // namespace

std::string plan_report_html(const PlanReport& r) {
  const int focus = focus_of(r.result);
  std::ostringstream o;
  o << "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
    << "<title>ftdist plan: " << esc(r.request.model.name) << "</title><style>" << kStyle << "</style></head><body>\n";
  headline(o, r);
  memory_bars(o, r, focus);
  step_chart(o, r, focus);
  candidate_table(o, r, focus);
  time_and_cost(o, r);
  inputs(o, r);
  o << "<footer><p>ftdist plan, " << esc(r.catalog_origin) << ". Every candidate is in <code>--json</code>; every formula in "
    << "<code>--explain</code>.</p></footer>\n</body></html>\n";
  return o.str();
}

}  // namespace ftdist::plan
