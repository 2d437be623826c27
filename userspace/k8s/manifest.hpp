// Kubernetes objects from YAML/JSON files in a directory: the agent's cluster-less source.
//
// A broken edit must never take down a working route, so the source is conservative: a file that
// does not parse keeps the objects it last produced, an object that does not decode keeps its last
// good version from the same file, and each such decision is reported as a warning. Everything runs
// on the caller's thread; poll() is cheap when nothing changed (one stat per file).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/value.hpp>

#include "k8s/objects.hpp"
#include "k8s/problem.hpp"
#include "k8s/source.hpp"
#include "k8s/store.hpp"

namespace sluice::k8s {

enum class ManifestFormat : std::uint8_t { kYaml, kJson };

struct ParsedManifest {
  std::vector<boost::json::value> objects;  // mappings in file order, `kind: *List` expanded
  std::vector<std::string> problems;        // documents skipped, e.g. "document 2: not a mapping"
};

// Splits a multi-document YAML text (or one JSON value) into JSON objects. YAML plain scalars
// become int64 (canonical decimal), bool (true/false) or null (null, ~, empty); quoted scalars
// and everything else stay strings, so the decoder sees what kubectl would send. Never throws;
// a text that does not parse is an error, and nothing of it is kept.
Result<ParsedManifest> parseManifest(std::string_view text, ManifestFormat format);

class ManifestSource : public Source {
public:
  // `executor` runs the polling once start()ed; tests that call poll() themselves need none.
  explicit ManifestSource(std::filesystem::path dir, boost::asio::any_io_executor executor = {},
                          std::chrono::milliseconds interval = std::chrono::milliseconds(250));
  ~ManifestSource() override;

  // Source: polls now (so the first state exists before start() returns), then every interval.
  void start(std::function<void()> on_change) override;
  void stop() override;
  const Store& store() const override { return store_; }
  std::vector<Problem> problems() const override { return warnings_; }
  bool ready() const override { return started_; }
  std::string kind() const override { return "manifests"; }
  void renderMetrics(admin::MetricsWriter&) const override {}
  void renderState(boost::json::object& out) const override;

  // Rescans the directory (non-recursive; *.yaml, *.yml, *.json; hidden and editor temp files
  // ignored; symlinks followed, so a ConfigMap volume works) and re-parses changed files. Returns
  // true if store() changed; the first successful scan always returns true so the caller builds
  // its first state. warnings() may change even when this returns false. Never throws.
  bool poll();

  // Current problems: bad files, bad objects, duplicate definitions.
  const std::vector<Problem>& warnings() const { return warnings_; }
  const std::filesystem::path& directory() const { return dir_; }

private:
  struct Stamp {
    std::uintmax_t size = 0;
    std::int64_t mtime_ns = 0;
    std::int64_t ctime_ns = 0;  // catches in-place rewrites that restore mtime (cp -p, rsync)
    std::uint64_t inode = 0;
    std::uint64_t device = 0;
    bool operator==(const Stamp&) const = default;
  };
  struct FileState {
    Stamp stamp;
    std::size_t hash = 0;
    bool parsed = false;   // hash describes content that was parsed
    bool recheck = false;  // modified too recently for the stamp to be trusted: read again
    std::map<ObjectRef, Object> objects;  // what this file contributes now
    std::vector<Problem> warnings;
  };

  bool pollOnce();
  FileState parseFile(const std::string& name, const std::string& content, const Stamp& stamp,
                      const FileState* old) const;
  void merge();
  void schedule();

  std::filesystem::path dir_;
  std::map<std::string, FileState> files_;  // by file name; sorted, so the first file wins
  std::string dir_error_;
  bool reported_ = false;
  Store store_;
  std::vector<Problem> warnings_;
  boost::asio::any_io_executor executor_;
  std::optional<boost::asio::steady_timer> timer_;  // once started
  std::chrono::milliseconds interval_;
  std::function<void()> on_change_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace sluice::k8s
