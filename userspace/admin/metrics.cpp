#include "admin/metrics.hpp"

#include <cstdio>

namespace sluice::admin {

namespace {

std::string_view typeName(MetricsWriter::Type t) {
  switch (t) {
    case MetricsWriter::Type::kCounter:
      return "counter";
    case MetricsWriter::Type::kGauge:
      return "gauge";
    case MetricsWriter::Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

void appendEscaped(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void appendLabels(std::string& out, std::initializer_list<Label> labels,
                  std::string_view extra_name = {}, std::string_view extra_value = {}) {
  if (labels.size() == 0 && extra_name.empty()) {
    return;
  }
  out += '{';
  bool first = true;
  auto one = [&](std::string_view name, std::string_view value) {
    if (!first) {
      out += ',';
    }
    first = false;
    out.append(name).append("=\"");
    appendEscaped(out, value);
    out += '"';
  };
  for (const Label& l : labels) {
    one(l.name, l.value);
  }
  if (!extra_name.empty()) {
    one(extra_name, extra_value);
  }
  out += '}';
}

}  // namespace

void MetricsWriter::family(std::string_view name, Type type, std::string_view help) {
  for (const Family& f : families_) {
    if (f.name == name) {
      return;
    }
  }
  families_.push_back({std::string(name), type, std::string(help), {}});
}

MetricsWriter::Family* MetricsWriter::find(std::string_view sample_name) {
  for (Family& f : families_) {
    if (sample_name == f.name) {
      return &f;
    }
    if (f.type == Type::kHistogram && sample_name.starts_with(f.name)) {
      const std::string_view suffix = sample_name.substr(f.name.size());
      if (suffix == "_bucket" || suffix == "_sum" || suffix == "_count") {
        return &f;
      }
    }
  }
  return nullptr;
}

void MetricsWriter::add(std::string_view name, std::initializer_list<Label> labels,
                        const std::string& value) {
  Family* f = find(name);
  if (f == nullptr) {
    family(name, Type::kGauge, "");  // a programming error shows up as an untyped-looking gauge
    f = &families_.back();
  }
  f->samples.append(name);
  appendLabels(f->samples, labels);
  f->samples.append(" ").append(value).append("\n");
}

void MetricsWriter::histogram(std::string_view name, std::initializer_list<Label> labels,
                              std::span<const double> bounds,
                              std::span<const std::uint64_t> buckets, std::uint64_t count,
                              double sum) {
  Family* f = find(name);
  if (f == nullptr) {
    family(name, Type::kHistogram, "");
    f = &families_.back();
  }
  const std::string bucket = std::string(name) + "_bucket";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds.size() && i < buckets.size(); ++i) {
    cumulative += buckets[i];
    f->samples.append(bucket);
    appendLabels(f->samples, labels, "le", format(bounds[i]));
    f->samples.append(" ").append(std::to_string(cumulative)).append("\n");
  }
  f->samples.append(bucket);
  appendLabels(f->samples, labels, "le", "+Inf");
  f->samples.append(" ").append(std::to_string(count)).append("\n");
  f->samples.append(name).append("_sum");
  appendLabels(f->samples, labels);
  f->samples.append(" ").append(format(sum)).append("\n");
  f->samples.append(name).append("_count");
  appendLabels(f->samples, labels);
  f->samples.append(" ").append(std::to_string(count)).append("\n");
}

std::string MetricsWriter::format(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string MetricsWriter::text() const {
  std::string out;
  std::size_t size = 0;
  for (const Family& f : families_) {
    size += f.samples.size() + f.help.size() + 2 * f.name.size() + 32;
  }
  out.reserve(size);
  for (const Family& f : families_) {
    out.append("# HELP ").append(f.name).append(" ").append(f.help).append("\n");
    out.append("# TYPE ").append(f.name).append(" ").append(typeName(f.type)).append("\n");
    out.append(f.samples);
  }
  return out;
}

}  // namespace sluice::admin
