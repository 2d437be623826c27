// The two renderers every ingressctl command shares (STYLE.md rule 9). A command fills its model
// struct, turns it into Records (fields named once, in snake_case), and prints those either as
// aligned columns under upper-case headers ("bytes_in" → "BYTES-IN") or as JSON objects keyed by
// the same field names. Deriving both from one list of fields is what keeps them the same.
#pragma once

#include <boost/json.hpp>

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::cli {

enum class Output { kTable, kJson };

// One value as both renderers show it: table text, and the JSON value under the same field.
struct Cell {
  std::string text;
  boost::json::value json;
};

Cell textCell(std::string text);
Cell numberCell(std::uint64_t value);

// Records with a fixed list of fields.
class Records {
public:
  explicit Records(std::vector<std::string> fields) : fields_(std::move(fields)) {}

  // Precondition: row.size() == fields().size().
  void add(std::vector<Cell> row);

  const std::vector<std::string>& fields() const noexcept { return fields_; }
  std::size_t size() const noexcept { return rows_.size(); }
  bool empty() const noexcept { return rows_.empty(); }

  // Header line, then one line per record; columns two spaces apart, each line prefixed with
  // `indent` spaces, no trailing blanks.
  void printTable(std::ostream& out, std::size_t indent = 0) const;
  // Record i as a JSON object.
  boost::json::object object(std::size_t i) const;
  // Every record, as a JSON array of objects.
  boost::json::array array() const;

  // "bytes_in" → "BYTES-IN".
  static std::string header(std::string_view field);

private:
  std::vector<std::string> fields_;
  std::vector<std::vector<Cell>> rows_;
};

// Compact JSON and a newline.
void printJson(std::ostream& out, const boost::json::value& value);

// Human-friendly durations for the table: "45s", "3m07s", "2h05m", "4d03h".
std::string formatAge(std::uint64_t seconds);

}  // namespace sluice::cli
