#include "k8s/manifest.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <system_error>

#include <yaml-cpp/yaml.h>
#include <boost/json.hpp>

namespace sluice::k8s {
namespace {

namespace json = boost::json;

// Kubernetes objects are shallow (managedFields is the deepest part, around 15 levels); the limits
// stop a hostile file, e.g. nested aliases ("billion laughs"), from exhausting stack or memory.
constexpr int kMaxDepth = 64;
constexpr std::size_t kMaxNodes = 1'000'000;
constexpr std::uintmax_t kMaxFileBytes = 16 * 1024 * 1024;
// A file modified this recently may be modified again within the mtime granularity without
// changing its stamp, so its content is re-read (and re-hashed) on the next poll.
constexpr std::int64_t kRacyNs = 2'000'000'000;

bool isCanonicalInt(std::string_view s) {
  std::string_view digits = s;
  if (!digits.empty() && digits.front() == '-') {
    digits.remove_prefix(1);
  }
  if (digits.empty() || digits.size() > 18 || (digits.front() == '0' && digits.size() > 1)) {
    return false;
  }
  for (char c : digits) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return s != "-0";
}

class YamlToJson {
public:
  // Converts `node` into `out`, within the depth and node budgets.
  Result<void> convert(const YAML::Node& node, json::value& out, int depth) {
    if (depth > kMaxDepth) {
      return Error("nested deeper than " + std::to_string(kMaxDepth) + " levels");
    }
    if (budget_ == 0) {
      return Error("more than " + std::to_string(kMaxNodes) + " nodes (aliases expanded)");
    }
    --budget_;
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        out = nullptr;
        return success();
      case YAML::NodeType::Scalar:
        out = scalar(node);
        return success();
      case YAML::NodeType::Sequence: {
        json::array& a = out.emplace_array();
        a.reserve(node.size());
        for (const YAML::Node& item : node) {
          a.emplace_back(nullptr);
          SLUICE_CHECK(convert(item, a.back(), depth + 1));
        }
        return success();
      }
      case YAML::NodeType::Map:
        return convertMap(node, out.emplace_object(), depth);
    }
    out = nullptr;
    return success();
  }

private:
  Result<void> convertMap(const YAML::Node& node, json::object& o, int depth) {
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) {
        return Error(lineOf(kv.first) + "mapping keys must be strings");
      }
      const std::string& key = kv.first.Scalar();
      if (o.contains(key)) {
        // kubectl refuses duplicate keys too; silently picking one would hide a typo.
        return Error(lineOf(kv.first) + "duplicate key \"" + key + "\"");
      }
      SLUICE_CHECK(convert(kv.second, o[key], depth + 1));
    }
    return success();
  }

  static std::string lineOf(const YAML::Node& node) {
    const YAML::Mark mark = node.Mark();
    if (mark.is_null()) {
      return "";
    }
    return "line " + std::to_string(mark.line + 1) + ": ";
  }

  static json::value scalar(const YAML::Node& node) {
    const std::string& text = node.Scalar();
    const std::string& tag = node.Tag();
    if (tag == "?") {  // plain scalar: resolve like YAML 1.2's core schema, conservatively
      if (text == "null" || text == "Null" || text == "NULL" || text == "~" || text.empty()) {
        return nullptr;
      }
      if (text == "true") {
        return true;
      }
      if (text == "false") {
        return false;
      }
      if (isCanonicalInt(text)) {
        return std::stoll(text);
      }
      return json::string(text);
    }
    if (tag == "tag:yaml.org,2002:int" && isCanonicalInt(text)) {
      return std::stoll(text);
    }
    if (tag == "tag:yaml.org,2002:bool" && (text == "true" || text == "false")) {
      return text == "true";
    }
    if (tag == "tag:yaml.org,2002:null") {
      return nullptr;
    }
    return json::string(text);  // "!" = quoted or block scalar, !!str, unknown tags
  }

  std::size_t budget_ = kMaxNodes;
};

void expand(json::value&& value, const std::string& where, ParsedManifest& out) {
  json::object* o = value.if_object();
  if (o == nullptr) {
    out.problems.push_back(where + ": not a mapping (an object needs apiVersion, kind, metadata)");
    return;
  }
  const json::value* kind = o->if_contains("kind");
  json::value* items = o->if_contains("items");
  if (kind != nullptr && kind->is_string() && kind->get_string().ends_with("List") &&
      items != nullptr && items->is_array()) {
    json::array& a = items->get_array();
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (a[i].is_object()) {
        out.objects.push_back(std::move(a[i]));
      } else {
        out.problems.push_back(where + ": items[" + std::to_string(i) + "]: not a mapping");
      }
    }
    return;
  }
  out.objects.push_back(std::move(value));
}

Result<ParsedManifest> parseYaml(std::string_view text) {
  ParsedManifest out;
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) {
      return Error(e.msg);
    }
    return Error("line " + std::to_string(e.mark.line + 1) + ", column " +
                 std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  YamlToJson converter;
  for (std::size_t i = 0; i < docs.size(); ++i) {
    const std::string where = "document " + std::to_string(i + 1);
    if (docs[i].IsNull()) {
      continue;  // "---" with nothing after it
    }
    json::value value;
    if (auto converted = converter.convert(docs[i], value, 0); !converted) {
      return converted.error().wrap(where);
    }
    expand(std::move(value), where, out);
  }
  return out;
}

Result<ParsedManifest> parseJson(std::string_view text) {
  ParsedManifest out;
  json::parse_options options;
  options.max_depth = kMaxDepth;
  std::error_code ec;
  json::value value = json::parse(text, ec, json::storage_ptr(), options);
  if (ec) {
    return Error(ec.message());
  }
  expand(std::move(value), "document 1", out);
  return out;
}

bool isManifestName(const std::string& name) {
  if (name.empty() || name.front() == '.' || name.front() == '#' || name.back() == '~') {
    return false;
  }
  return name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json");
}

std::int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The whole file, refused when larger than kMaxFileBytes.
Result<std::string> readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Error(std::strerror(errno));
  }
  std::string content;
  char buf[65536];
  while (in && content.size() <= kMaxFileBytes) {
    in.read(buf, sizeof buf);
    content.append(buf, static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) {
    return Error("read error");
  }
  if (content.size() > kMaxFileBytes) {
    return Error("larger than " + std::to_string(kMaxFileBytes / (1024 * 1024)) + " MiB");
  }
  return content;
}

}  // namespace

Result<ParsedManifest> parseManifest(std::string_view text, ManifestFormat format) {
  try {
    return format == ManifestFormat::kJson ? parseJson(text) : parseYaml(text);
  } catch (const std::exception& e) {
    return Error(e.what());
  }
}

ManifestSource::ManifestSource(std::filesystem::path dir, boost::asio::any_io_executor executor,
                               std::chrono::milliseconds interval)
    : dir_(std::move(dir)), executor_(std::move(executor)), interval_(interval) {}

ManifestSource::~ManifestSource() = default;

void ManifestSource::start(std::function<void()> on_change) {
  on_change_ = std::move(on_change);
  timer_.emplace(executor_);
  poll();
  started_ = true;
  on_change_();
  schedule();
}

void ManifestSource::renderState(boost::json::object& out) const {
  out["source"] = kind();
  out["manifests"] = dir_.string();
}

void ManifestSource::stop() {
  stopped_ = true;
  if (timer_) {
    timer_->cancel();
  }
}

void ManifestSource::schedule() {
  timer_->expires_after(interval_);
  timer_->async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) {
      return;
    }
    const std::vector<Problem> before = warnings_;
    if (poll() || warnings_ != before) {
      on_change_();
    }
    schedule();
  });
}

bool ManifestSource::poll() {
  try {
    return pollOnce();
  } catch (const std::exception& e) {
    dir_error_ = std::string("scan failed: ") + e.what() + "; keeping last good state";
  } catch (...) {
    dir_error_ = "scan failed; keeping last good state";
  }
  try {
    merge();
  } catch (...) {  // only bad_alloc can get here; the previous warnings stay
  }
  return false;
}

bool ManifestSource::pollOnce() {
  std::error_code ec;
  std::map<std::string, Stamp> listed;
  std::filesystem::directory_iterator it(dir_, ec);
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!isManifestName(name)) {
      continue;
    }
    struct stat st {};
    // stat, not lstat: follow symlinks (ConfigMap volumes link each key through ..data/). A
    // dangling link is treated like a missing file.
    if (::stat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      continue;
    }
    Stamp stamp;
    stamp.size = static_cast<std::uintmax_t>(st.st_size);
    stamp.mtime_ns =
        static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    stamp.ctime_ns =
        static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
    stamp.inode = static_cast<std::uint64_t>(st.st_ino);
    stamp.device = static_cast<std::uint64_t>(st.st_dev);
    listed.emplace(name, stamp);
  }
  if (ec) {
    // A transient failure (unmounted volume, permissions) must not look like "all files deleted".
    const std::string error = "cannot read directory " + dir_.string() + ": " + ec.message() +
                              "; keeping last good state";
    const bool changed = error != dir_error_;
    dir_error_ = error;
    if (changed) {
      merge();
    }
    return false;
  }

  bool dirty = !dir_error_.empty();
  dir_error_.clear();
  std::map<std::string, FileState> next;
  const std::int64_t now = nowNs();
  for (const auto& [name, stamp] : listed) {
    auto old = files_.find(name);
    const FileState* previous = old == files_.end() ? nullptr : &old->second;
    if (previous != nullptr && previous->stamp == stamp && !previous->recheck) {
      next.emplace(name, std::move(old->second));
      continue;
    }
    const bool recent = now - stamp.mtime_ns < kRacyNs;
    Result<std::string> read = readFile(dir_ / name);
    if (!read) {
      FileState state;
      if (previous != nullptr) {
        state.objects = previous->objects;
      }
      state.stamp = stamp;
      state.recheck = true;  // try again next time
      state.warnings.push_back(
          {name, "cannot read: " + read.error().message() +
                     (state.objects.empty() ? "; ignored" : "; keeping last good version")});
      dirty = true;
      next.emplace(name, std::move(state));
      continue;
    }
    const std::string& content = *read;
    const std::size_t hash = std::hash<std::string>{}(content);
    if (previous != nullptr && previous->parsed && previous->hash == hash) {
      FileState state = std::move(old->second);
      state.stamp = stamp;
      state.recheck = recent;
      next.emplace(name, std::move(state));
      continue;
    }
    FileState state = parseFile(name, content, stamp, previous);
    state.recheck = recent;
    dirty = true;
    next.emplace(name, std::move(state));
  }
  if (next.size() != files_.size()) {
    dirty = true;  // files appeared or disappeared
  } else {
    for (auto a = next.begin(), b = files_.begin(); a != next.end(); ++a, ++b) {
      if (a->first != b->first) {
        dirty = true;
        break;
      }
    }
  }
  files_ = std::move(next);

  bool changed = false;
  if (dirty || !reported_) {
    const Store before = store_;
    merge();
    changed = !(store_ == before);
  }
  if (!reported_) {
    reported_ = true;
    return true;
  }
  return changed;
}

ManifestSource::FileState ManifestSource::parseFile(const std::string& name,
                                                    const std::string& content, const Stamp& stamp,
                                                    const FileState* old) const {
  FileState state;
  state.stamp = stamp;
  state.hash = std::hash<std::string>{}(content);
  state.parsed = true;
  const bool is_json = name.ends_with(".json");
  Result<ParsedManifest> parsed =
      parseManifest(content, is_json ? ManifestFormat::kJson : ManifestFormat::kYaml);
  if (!parsed) {
    if (old != nullptr) {
      state.objects = old->objects;
    }
    state.warnings.push_back(
        {name, std::string(is_json ? "invalid JSON: " : "invalid YAML: ") +
                   parsed.error().message() +
                   (state.objects.empty() ? "; ignored" : "; keeping last good version")});
    return state;
  }
  for (const std::string& problem : parsed->problems) {
    state.warnings.push_back({name, problem + "; ignored"});
  }
  for (const json::value& value : parsed->objects) {
    Result<Object> decoded = decodeObject(value);
    if (decoded) {
      ObjectRef ref = refOf(*decoded);
      if (state.objects.contains(ref)) {
        state.warnings.push_back(
            {name, ref.display() + " is defined more than once in this file; using the first"});
        continue;
      }
      state.objects.emplace(std::move(ref), std::move(*decoded));
      continue;
    }
    std::optional<ObjectRef> ref = peekRef(value);
    if (ref && old != nullptr && !state.objects.contains(*ref)) {
      if (auto last = old->objects.find(*ref); last != old->objects.end()) {
        state.objects.emplace(last->first, last->second);
        state.warnings.push_back({name, decoded.error().message() + "; keeping last good version"});
        continue;
      }
    }
    state.warnings.push_back({name, decoded.error().message() + "; skipped"});
  }
  return state;
}

void ManifestSource::merge() {
  Store merged;
  std::vector<Problem> warnings;
  if (!dir_error_.empty()) {
    warnings.push_back({dir_.string(), dir_error_});
  }
  std::map<ObjectRef, const std::string*> owner;
  for (const auto& [name, state] : files_) {
    warnings.insert(warnings.end(), state.warnings.begin(), state.warnings.end());
    for (const auto& [ref, object] : state.objects) {
      auto [it, inserted] = owner.emplace(ref, &name);
      if (!inserted) {
        warnings.push_back({ref.display(), "defined in both " + *it->second + " and " + name +
                                               "; using " + *it->second});
        continue;
      }
      merged.upsert(object);
    }
  }
  if (!dir_error_.empty()) {
    // Keep serving what we had; the directory listing is not trustworthy right now.
    warnings_ = std::move(warnings);
    return;
  }
  merged.keepCertificatesFrom(store_);
  store_ = std::move(merged);
  warnings_ = std::move(warnings);
}

}  // namespace sluice::k8s
