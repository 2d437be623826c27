#include "control/events.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <set>

#include <boost/json.hpp>

#include "control/leader.hpp"

namespace sluice::control {

namespace json = boost::json;

TokenBucket::TokenBucket(std::size_t capacity, Clock::duration period, Clock::time_point now)
    : capacity_(capacity),
      period_(std::max<Clock::duration>(period, Clock::duration(1))),
      tokens_(capacity),
      last_(now) {}

void TokenBucket::refill(Clock::time_point now) {
  if (tokens_ >= capacity_) {
    last_ = std::max(last_, now);  // a full bucket gains nothing: the next token counts from now
    return;
  }
  if (now <= last_) {
    return;
  }
  const auto added = static_cast<std::size_t>((now - last_) / period_);
  if (added >= capacity_ - tokens_) {
    tokens_ = capacity_;
    last_ = now;
  } else {
    tokens_ += added;
    last_ += period_ * static_cast<Clock::rep>(added);
  }
}

bool TokenBucket::take(Clock::time_point now) {
  refill(now);
  if (tokens_ == 0) {
    return false;
  }
  --tokens_;
  return true;
}

std::size_t TokenBucket::available(Clock::time_point now) {
  refill(now);
  return tokens_;
}

EventDedup::EventDedup(std::size_t capacity) : capacity_(std::max<std::size_t>(capacity, 1)) {}

bool EventDedup::insert(const EventKey& key) {
  if (index_.contains(key)) {
    return false;
  }
  if (index_.size() >= capacity_) {
    auto oldest = order_.begin();
    index_.erase(oldest->second);
    order_.erase(oldest);
  }
  auto [it, inserted] = index_.emplace(key, next_);
  order_.emplace(next_++, it);
  return inserted;
}

bool EventDedup::erase(const EventKey& key) {
  auto it = index_.find(key);
  if (it == index_.end()) {
    return false;
  }
  order_.erase(it->second);
  index_.erase(it);
  return true;
}

EventThrottle::EventThrottle(EventThrottleOptions options, Clock::time_point now)
    : bucket_(options.burst, options.refill, now), seen_(options.dedup_capacity) {}

EventThrottle::Decision EventThrottle::observe(const std::vector<EventKey>& current, bool leading,
                                               Clock::time_point now) {
  const std::set<EventKey> holding(current.begin(), current.end());
  seen_.retainIf([&](const EventKey& key) { return holding.contains(key); });
  Decision decision;
  if (!leading) {
    return decision;
  }
  for (std::size_t i = 0; i < current.size(); ++i) {
    if (!seen_.insert(current[i])) {
      continue;  // written (or dropped) already while it holds; or a duplicate in `current`
    }
    if (bucket_.take(now)) {
      decision.write.push_back(i);
    } else {
      ++decision.rate_limited;
    }
  }
  return decision;
}

namespace {

bool contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

}  // namespace

std::string_view eventReason(std::string_view m) {
  // The texts are model::translate()'s and the decoder's; tests/unit/control/events_test.cpp
  // checks every kind translate() produces, so a reworded warning shows up there. Prefixes and
  // suffixes are checked before anything in the middle: a path quoted in the text is the
  // Ingress author's and may say anything.
  if (m.starts_with("spec.rules[") && m.ends_with("; rule skipped") && contains(m, ".path \"")) {
    return "InvalidPath";
  }
  if (m.starts_with("spec.rules[") && contains(m, ") is shadowed by ")) {
    return "RuleShadowed";
  }
  if (m.starts_with("spec.defaultBackend is shadowed")) {
    return "DefaultBackendShadowed";
  }
  if (m.starts_with("spec.") && m.ends_with("resource backends are not supported; ignored")) {
    return "UnsupportedBackend";
  }
  if (m.starts_with("backend ")) {
    if (m.ends_with(" not found")) {
      return "ServiceNotFound";
    }
    if (contains(m, " has no port ")) {
      return "ServicePortNotFound";
    }
    if (m.ends_with("which has no endpoints to route to") || m.ends_with(", not TCP")) {
      return "UnsupportedService";
    }
  }
  if (m.starts_with("spec.tls[")) {
    if (contains(m, " not found; its hosts use the default certificate")) {
      return "SecretNotFound";
    }
    if (contains(m, "want kubernetes.io/tls; its hosts use the default certificate")) {
      return "InvalidSecret";
    }
    if (m.ends_with(" (an older Ingress); ignored")) {
      return "TlsHostShadowed";
    }
  }
  if (m.starts_with("annotation sluice.dev/")) {
    return "InvalidAnnotation";
  }
  if (m.starts_with("spec.rules[") && contains(m, ": ssl-passthrough ")) {
    return "InvalidPassthrough";
  }
  if (m.starts_with("IngressClass ") && contains(m, " not found; ")) {
    return "IngressClassNotFound";
  }
  if (m.ends_with("(keeping the last good version)")) {
    return "InvalidIngress";  // the decoder refused a newer version of the object
  }
  if (contains(m, "refused")) {
    return "RuleRefused";
  }
  return "IngressWarning";
}

std::string truncateUtf8(std::string_view text, std::size_t max) {
  if (text.size() <= max) {
    return std::string(text);
  }
  if (max < 3) {
    return std::string(max, '.');
  }
  std::size_t cut = max - 3;
  // Never split a character: back off over continuation bytes (10xxxxxx).
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  return std::string(text.substr(0, cut)) + "...";
}

std::string eventName(std::string_view object_name, std::chrono::system_clock::time_point at) {
  // Object names are DNS subdomains of at most 253 characters; ours adds 17.
  std::string base(object_name.substr(0, 200));
  while (!base.empty() && (base.back() == '.' || base.back() == '-')) {
    base.pop_back();
  }
  if (base.empty()) {
    base = "event";
  }
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch());
  std::array<char, 24> hex{};
  std::snprintf(hex.data(), hex.size(), "%llx", static_cast<unsigned long long>(ns.count()));
  return base + "." + hex.data();
}

std::string reportingInstance(std::string_view identity) {
  std::string out;
  for (const char c : identity) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    out.push_back(ok ? c : '-');
  }
  // A qualified name: at most 63 characters, alphanumeric at both ends.
  if (out.size() > 63) {
    out = out.substr(0, 54) + out.substr(out.size() - 9);
  }
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  while (!out.empty() && !alnum(out.back())) {
    out.pop_back();
  }
  std::size_t start = 0;
  while (start < out.size() && !alnum(out[start])) {
    ++start;
  }
  out.erase(0, start);
  return out.empty() ? std::string("sluice") : out;
}

std::string eventJson(const IngressEvent& event, std::string_view instance,
                      std::chrono::system_clock::time_point at) {
  json::object regarding{{"apiVersion", "networking.k8s.io/v1"},
                         {"kind", "Ingress"},
                         {"namespace", event.ns},
                         {"name", event.name},
                         {"uid", event.uid}};
  if (!event.resource_version.empty()) {
    regarding["resourceVersion"] = event.resource_version;
  }
  json::object out{{"apiVersion", "events.k8s.io/v1"},
                   {"kind", "Event"},
                   {"metadata", {{"name", eventName(event.name, at)}, {"namespace", event.ns}}},
                   {"eventTime", microTime(at)},
                   {"reportingController", std::string(kEventsController)},
                   {"reportingInstance", std::string(instance)},
                   {"action", "Translate"},
                   {"reason", event.reason},
                   {"type", "Warning"},
                   {"note", truncateUtf8(event.note, kEventNoteMax)},
                   {"regarding", std::move(regarding)}};
  return json::serialize(out);
}

}  // namespace sluice::control
