// Small helpers for the HTML reports (ftdist plan --report, ftdist report): text escaped for HTML
// content and attribute values.
#pragma once

#include <string>

namespace ftdist {

// & < > " and ' as character references.
inline std::string html_escape(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}

}  // namespace ftdist
