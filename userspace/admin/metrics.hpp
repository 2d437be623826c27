// The Prometheus text exposition (format 0.0.4), written by the components that own the counters:
// each one renders its own families into one MetricsWriter, and the writer groups every family's
// samples under one HELP and TYPE line, so two components may add samples to the same family
// (the source's and the leader's API clients both count sluice_k8s_api_requests_total).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace sluice::admin {

// One label; the value is escaped when written (backslash, double quote, newline).
struct Label {
  std::string_view name;
  std::string_view value;
};

class MetricsWriter {
public:
  enum class Type : std::uint8_t { kCounter, kGauge, kHistogram };

  // Declares a family; repeated declarations of the same name are ignored.
  void family(std::string_view name, Type type, std::string_view help);
  // One sample of a declared family (for a histogram, `name` is its _bucket/_sum/_count line).
  template <typename T>
  requires std::is_arithmetic_v<T>
  void sample(std::string_view name, std::initializer_list<Label> labels, T value) {
    add(name, labels, format(value));
  }
  // A family with one unlabelled sample.
  template <typename T>
  void counter(std::string_view name, std::string_view help, T value) {
    family(name, Type::kCounter, help);
    sample(name, {}, value);
  }
  template <typename T>
  void gauge(std::string_view name, std::string_view help, T value) {
    family(name, Type::kGauge, help);
    sample(name, {}, value);
  }
  // One labelled histogram: `buckets` are per bucket (not cumulative), one per bound; the writer
  // adds the cumulative _bucket lines with le="+Inf", _sum and _count.
  void histogram(std::string_view name, std::initializer_list<Label> labels,
                 std::span<const double> bounds, std::span<const std::uint64_t> buckets,
                 std::uint64_t count, double sum);

  // The whole exposition, families in the order they were first declared.
  std::string text() const;

private:
  struct Family {
    std::string name;
    Type type;
    std::string help;
    std::string samples;
  };
  static std::string format(double v);
  static std::string format(std::uint64_t v) { return std::to_string(v); }
  static std::string format(std::int64_t v) { return std::to_string(v); }
  template <typename T>
  requires std::is_integral_v<T>
  static std::string format(T v) {
    if constexpr (std::is_signed_v<T>) {
      return format(static_cast<std::int64_t>(v));
    } else {
      return format(static_cast<std::uint64_t>(v));
    }
  }
  void add(std::string_view name, std::initializer_list<Label> labels, const std::string& value);
  Family* find(std::string_view sample_name);

  std::vector<Family> families_;
};

}  // namespace sluice::admin
