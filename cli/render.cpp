#include "render.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ostream>

namespace sluice::cli {

Cell textCell(std::string text) {
  boost::json::value json = boost::json::string(text);
  return Cell{std::move(text), std::move(json)};
}

Cell numberCell(std::uint64_t value) {
  return Cell{std::to_string(value), value};
}

void Records::add(std::vector<Cell> row) {
  if (row.size() != fields_.size()) {
    std::fputs("ingressctl: record does not match its fields\n", stderr);
    std::abort();
  }
  rows_.push_back(std::move(row));
}

std::string Records::header(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (char c : field) {
    out += c == '_' ? '-' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

void Records::printTable(std::ostream& out, std::size_t indent) const {
  std::vector<std::string> headers;
  std::vector<std::size_t> widths;
  for (const auto& field : fields_) {
    headers.push_back(header(field));
    widths.push_back(headers.back().size());
  }
  for (const auto& row : rows_) {
    for (std::size_t c = 0; c < row.size(); ++c) {
      widths[c] = std::max(widths[c], row[c].text.size());
    }
  }
  auto line = [&](auto cell_text) {
    std::string text(indent, ' ');
    for (std::size_t c = 0; c < widths.size(); ++c) {
      const std::string& cell = cell_text(c);
      text += cell;
      if (c + 1 < widths.size()) {
        text.append(widths[c] - cell.size() + 2, ' ');
      }
    }
    while (!text.empty() && text.back() == ' ') {
      text.pop_back();
    }
    out << text << '\n';
  };
  line([&](std::size_t c) -> const std::string& { return headers[c]; });
  for (const auto& row : rows_) {
    line([&](std::size_t c) -> const std::string& { return row[c].text; });
  }
}

boost::json::object Records::object(std::size_t i) const {
  boost::json::object obj;
  for (std::size_t c = 0; c < fields_.size(); ++c) {
    obj[fields_[c]] = rows_[i][c].json;
  }
  return obj;
}

boost::json::array Records::array() const {
  boost::json::array out;
  for (std::size_t i = 0; i < rows_.size(); ++i) {
    out.push_back(object(i));
  }
  return out;
}

void printJson(std::ostream& out, const boost::json::value& value) {
  out << boost::json::serialize(value) << '\n';
}

std::string formatAge(std::uint64_t seconds) {
  char text[32];
  if (seconds < 60) {
    std::snprintf(text, sizeof(text), "%llus", static_cast<unsigned long long>(seconds));
  } else if (seconds < 3600) {
    std::snprintf(text, sizeof(text), "%llum%02llus", static_cast<unsigned long long>(seconds / 60),
                  static_cast<unsigned long long>(seconds % 60));
  } else if (seconds < 86400) {
    std::snprintf(text, sizeof(text), "%lluh%02llum",
                  static_cast<unsigned long long>(seconds / 3600),
                  static_cast<unsigned long long>(seconds % 3600 / 60));
  } else {
    std::snprintf(text, sizeof(text), "%llud%02lluh",
                  static_cast<unsigned long long>(seconds / 86400),
                  static_cast<unsigned long long>(seconds % 86400 / 3600));
  }
  return text;
}

}  // namespace sluice::cli
