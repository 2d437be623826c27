#include "k8s/objects.hpp"

#include <charconv>

namespace sluice::k8s {

bool IngressClass::isDefault() const {
  auto it = metadata.annotations.find(std::string(kDefaultClassAnnotation));
  return it != metadata.annotations.end() && it->second == "true";
}

std::string EndpointSlice::serviceName() const {
  auto it = metadata.labels.find(std::string(kServiceNameLabel));
  return it == metadata.labels.end() ? std::string() : it->second;
}

std::string ObjectRef::key() const {
  return ns.empty() ? name : ns + "/" + name;
}

std::string ObjectRef::display() const {
  return kind + " " + key();
}

Result<NamespacedName> parseNamespacedName(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == text.size() ||
      text.find('/', slash + 1) != std::string_view::npos) {
    return Error("'" + std::string(text) + "' is not NAMESPACE/NAME");
  }
  return NamespacedName{std::string(text.substr(0, slash)), std::string(text.substr(slash + 1))};
}

bool isClusterScoped(std::string_view kind) {
  return kind == "IngressClass";
}

std::string_view kindOf(const Object& object) {
  struct Visitor {
    std::string_view operator()(const Ingress&) const { return "Ingress"; }
    std::string_view operator()(const IngressClass&) const { return "IngressClass"; }
    std::string_view operator()(const Service&) const { return "Service"; }
    std::string_view operator()(const EndpointSlice&) const { return "EndpointSlice"; }
    std::string_view operator()(const Secret&) const { return "Secret"; }
    std::string_view operator()(const ConfigMap&) const { return "ConfigMap"; }
  };
  return std::visit(Visitor{}, object);
}

const ObjectMeta& metaOf(const Object& object) {
  return std::visit([](const auto& o) -> const ObjectMeta& { return o.metadata; }, object);
}

ObjectRef refOf(const Object& object) {
  const ObjectMeta& meta = metaOf(object);
  return ObjectRef{std::string(kindOf(object)), meta.ns, meta.name};
}

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
std::int64_t daysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool readDigits(std::string_view text, std::size_t pos, std::size_t count, int& out) {
  if (pos + count > text.size()) {
    return false;
  }
  for (std::size_t i = pos; i < pos + count; ++i) {
    if (text[i] < '0' || text[i] > '9') {
      return false;
    }
  }
  auto [ptr, ec] = std::from_chars(text.data() + pos, text.data() + pos + count, out);
  return ec == std::errc() && ptr == text.data() + pos + count;
}

}  // namespace

std::optional<std::int64_t> parseRfc3339(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!readDigits(text, 0, 4, year) || text.size() < 20 || text[4] != '-' ||
      !readDigits(text, 5, 2, month) || text[7] != '-' || !readDigits(text, 8, 2, day) ||
      (text[10] != 'T' && text[10] != 't' && text[10] != ' ') || !readDigits(text, 11, 2, hour) ||
      text[13] != ':' || !readDigits(text, 14, 2, minute) || text[16] != ':' ||
      !readDigits(text, 17, 2, second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  if (text[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      ++pos;
    }
    if (pos == start) {
      return std::nullopt;
    }
  }
  std::int64_t offset = 0;
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    int oh = 0, om = 0;
    if (!readDigits(text, pos + 1, 2, oh) || pos + 3 >= text.size() || text[pos + 3] != ':' ||
        !readDigits(text, pos + 4, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset = (oh * 3600 + om * 60) * (text[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != text.size()) {
    return std::nullopt;
  }
  const std::int64_t days =
      daysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  return days * 86400 + hour * 3600 + minute * 60 + second - offset;
}

}  // namespace sluice::k8s
