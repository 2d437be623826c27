#include "bpf/splice_datapath.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <string_view>
#include <utility>
#include <vector>

#include "bpf/libbpf_log.hpp"
#include "bpf/splice_object.hpp"
#include "splice.skel.h"

namespace sluice::bpf {
namespace {

// bpffs refuses names with dots (reserved), so the staging pin is marked by a suffix.
constexpr std::string_view kStagingPrefix = SLUICE_PROG_VERDICT "_staging_";

std::string cookieText(std::uint64_t cookie) {
  return "cookie " + std::to_string(cookie);
}

std::string normalizePinRoot(std::string root) {
  while (root.size() > 1 && root.back() == '/') {
    root.pop_back();
  }
  return root;
}

// The pin root must be a directory on bpffs: libbpf's pinning fails with a bare EINVAL/EPERM
// elsewhere, and this is the first thing an operator gets wrong (no bpffs mount in the pod).
// Sets *created when this call made the directory, so a failed open can take it away again.
Result<void> preparePinRoot(const std::string& root, bool* created) {
  *created = false;
  if (root.empty() || root.front() != '/') {
    return Error(EINVAL, "pin root '" + root + "' must be an absolute path");
  }
  struct statfs fs {};
  if (::statfs(root.c_str(), &fs) == 0) {
    if (fs.f_type != BPF_FS_MAGIC) {
      return Error(ENOTSUP, "pin root " + root +
                                " is not on bpffs (mount it with: mount -t bpf bpf /sys/fs/bpf)");
    }
    struct stat st {};
    if (::stat(root.c_str(), &st) != 0) {
      return errnoError("pin root " + root);
    }
    if (!S_ISDIR(st.st_mode)) {
      return Error(ENOTDIR, "pin root " + root);
    }
    return success();
  }
  if (errno != ENOENT) {
    return errnoError("pin root " + root);
  }
  const std::size_t slash = root.find_last_of('/');
  const std::string parent = slash == 0 ? "/" : root.substr(0, slash);
  if (::statfs(parent.c_str(), &fs) != 0) {
    return errnoError("create pin root " + root + ": parent " + parent);
  }
  if (fs.f_type != BPF_FS_MAGIC) {
    return Error(ENOTSUP, "create pin root " + root + ": " + parent +
                              " is not on bpffs (is bpffs mounted? mount -t bpf bpf /sys/fs/bpf)");
  }
  if (::mkdir(root.c_str(), 0755) == 0) {
    *created = true;
  } else if (errno != EEXIST) {
    return errnoError("create pin root " + root);
  }
  return success();
}

std::uint64_t monotonicNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);  // the clock bpf_ktime_get_ns() reads
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// Deletes, in reverse order, the map entries an operation inserted unless it commits.
class Rollback {
public:
  Rollback() = default;
  Rollback(const Rollback&) = delete;
  Rollback& operator=(const Rollback&) = delete;
  ~Rollback() {
    for (auto it = inserted_.rbegin(); it != inserted_.rend(); ++it) {
      sluice_flow_key key{it->second};
      ::bpf_map_delete_elem(it->first, &key);
    }
  }

  void inserted(int map_fd, std::uint64_t cookie) { inserted_.emplace_back(map_fd, cookie); }
  void commit() { inserted_.clear(); }

private:
  std::vector<std::pair<int, std::uint64_t>> inserted_;
};

Result<void> insert(Rollback& rollback, int map_fd, std::uint64_t cookie, const void* value,
                    std::string_view what) {
  sluice_flow_key key{cookie};
  if (int err = ::bpf_map_update_elem(map_fd, &key, value, BPF_NOEXIST); err != 0) {
    return Error(err, std::string(what) + " (" + cookieText(cookie) + ")");
  }
  rollback.inserted(map_fd, cookie);
  return success();
}

// Deletes a per-socket entry; a missing one is fine (closed sockets leave the sockhash alone).
Result<void> eraseEntry(int map_fd, std::uint64_t cookie, const char* map) {
  sluice_flow_key key{cookie};
  int err = ::bpf_map_delete_elem(map_fd, &key);
  if (err != 0 && err != -ENOENT) {
    return Error(err, std::string("delete ") + cookieText(cookie) + " from " + map);
  }
  return success();
}

Result<std::vector<std::uint64_t>> mapKeys(int map_fd, const char* map) {
  std::vector<std::uint64_t> keys;
  sluice_flow_key key{};
  sluice_flow_key next{};
  const sluice_flow_key* prev = nullptr;
  // Bounded: a concurrent delete of `prev` restarts the walk from the first key.
  for (std::size_t i = 0; i < 4 * static_cast<std::size_t>(SLUICE_MAX_SOCKETS); ++i) {
    int err = ::bpf_map_get_next_key(map_fd, prev, &next);
    if (err == -ENOENT) {
      return keys;
    }
    if (err != 0) {
      return Error(err, std::string("iterate ") + map);
    }
    keys.push_back(next.cookie);
    key = next;
    prev = &key;
  }
  return Error(EAGAIN, std::string("iterate ") + map + ": map kept changing");
}

std::uint32_t programId(int prog_fd) {
  bpf_prog_info info{};
  std::uint32_t len = sizeof(info);
  return ::bpf_obj_get_info_by_fd(prog_fd, &info, &len) == 0 ? info.id : 0;
}

// Id of the program pinned at `path`; 0 if none (or not a program).
std::uint32_t pinnedProgramId(const std::string& path) {
  const int fd = ::bpf_obj_get(path.c_str());
  if (fd < 0) {
    return 0;
  }
  const std::uint32_t id = programId(fd);
  ::close(fd);
  return id;
}

// Pins the verdict as <root>/sluice_splice_verdict, replacing a previous agent's pin atomically:
// pinned under a private name first, then renamed over it (bpffs renames like tmpfs), so
// ingressctl never finds the name missing while an agent runs.
Result<void> pinVerdict(int prog_fd, const std::string& root) {
  static std::atomic<unsigned> counter{0};
  const std::string path = pinPath(root, kVerdictPin);
  const std::string staging =
      pinPath(root, std::string(kStagingPrefix) + std::to_string(::getpid()) + "_" +
                        std::to_string(counter.fetch_add(1)));
  if (int err = ::bpf_obj_pin(prog_fd, staging.c_str()); err != 0) {
    return Error(err, "pin " SLUICE_PROG_VERDICT " at " + staging);
  }
  if (::rename(staging.c_str(), path.c_str()) != 0) {
    const Error error =
        errnoError("pin " SLUICE_PROG_VERDICT ": rename " + staging + " to " + path);
    ::unlink(staging.c_str());
    return error;
  }
  return success();
}

}  // namespace

SpliceDatapath::SpliceDatapath(Skeleton<SpliceSkel> skel, std::string pin_root)
    : skel_(std::move(skel)), pin_root_(std::move(pin_root)) {
  fds_[kSocks] = ::bpf_map__fd(skel_->maps.sluice_socks_v3);
  fds_[kTargets] = ::bpf_map__fd(skel_->maps.sluice_targets);
  fds_[kPeers] = ::bpf_map__fd(skel_->maps.sluice_peers_v2);
  fds_[kFlowStats] = ::bpf_map__fd(skel_->maps.sluice_flow_stats);
  fds_[kVerdicts] = ::bpf_map__fd(skel_->maps.sluice_verdicts);
  fds_[kVerdict] = ::bpf_program__fd(skel_->progs.sluice_splice_verdict);
}

SpliceDatapath::SpliceDatapath(std::array<int, kFdCount> fds, std::string pin_root)
    : fds_(fds), pin_root_(std::move(pin_root)) {}

SpliceDatapath::~SpliceDatapath() {
  if (verdict_pinned_) {
    // Only our own pin: a second instance that took over renamed its program over it.
    const std::string path = pinPath(pin_root_, kVerdictPin);
    if (pinnedProgramId(path) == programId(verdictProgFd())) {
      ::unlink(path.c_str());
    }
  }
  if (attached_) {
    // Fails with ENOENT if another instance replaced our program on the shared pinned map,
    // which is what we want: never detach someone else's program.
    ::bpf_prog_detach2(verdictProgFd(), socksMapFd(), BPF_SK_SKB_STREAM_VERDICT);
  }
  if (!skel_) {
    for (const int fd : fds_) {
      ::close(fd);
    }
  }
}

Result<std::unique_ptr<SpliceDatapath>> SpliceDatapath::open(const Options& options) {
  installLibbpfLog();
  std::string root = normalizePinRoot(options.pin_root);
  bool created = false;
  if (auto prepared = preparePinRoot(root, &created); !prepared) {
    return prepared.error();
  }
  auto failed = [&](Error error) -> Result<std::unique_ptr<SpliceDatapath>> {
    if (created) {
      ::rmdir(root.c_str());  // only if libbpf left it empty
    }
    return error;
  };

  auto skel = loadSpliceObject(root);
  if (!skel) {
    return failed(skel.error());
  }
  std::unique_ptr<SpliceDatapath> datapath(new SpliceDatapath(std::move(*skel), root));
  // Programs are copied into each socket's psock when it is inserted, so attach before any
  // insert. flags 0 replaces a program a crashed agent left attached to the pinned map.
  if (int err = ::bpf_prog_attach(datapath->verdictProgFd(), datapath->socksMapFd(),
                                  BPF_SK_SKB_STREAM_VERDICT, 0);
      err != 0) {
    return failed(Error(err, "attach sk_skb/stream_verdict to " SLUICE_MAP_SOCKS));
  }
  datapath->attached_ = true;
  if (auto pinned = pinVerdict(datapath->verdictProgFd(), root); !pinned) {
    datapath.reset();  // detaches
    return failed(pinned.error());
  }
  datapath->verdict_pinned_ = true;
  return datapath;
}

Result<std::unique_ptr<SpliceDatapath>> SpliceDatapath::adopt(const Options& options) {
  const std::string root = normalizePinRoot(options.pin_root);
  const std::array<std::string, kFdCount> names = {SLUICE_MAP_SOCKS,    SLUICE_MAP_TARGETS,
                                                   SLUICE_MAP_PEERS,    SLUICE_MAP_FLOW_STATS,
                                                   SLUICE_MAP_VERDICTS, std::string(kVerdictPin)};
  std::array<int, kFdCount> fds;
  fds.fill(-1);
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string path = pinPath(root, names[i]);
    fds[i] = ::bpf_obj_get(path.c_str());
    if (fds[i] < 0) {
      const Error error = errnoError("adopt the splice datapath: open " + path);
      for (const int fd : fds) {
        if (fd >= 0) {
          ::close(fd);
        }
      }
      return error;
    }
  }
  std::unique_ptr<SpliceDatapath> datapath(new SpliceDatapath(fds, root));
  datapath->attached_ = true;
  datapath->verdict_pinned_ = true;
  return datapath;
}

Result<std::uint64_t> SpliceDatapath::socketCookie(int fd) {
  std::uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) != 0) {
    return errnoError("SO_COOKIE of fd " + std::to_string(fd));
  }
  return cookie;
}

Result<void> SpliceDatapath::unpinMaps(const std::string& pin_root) {
  const std::string root = normalizePinRoot(pin_root);
  for (std::string_view map : kSpliceMaps) {
    const std::string path = pinPath(root, map);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return errnoError("unpin " + path);
    }
  }
  const std::string verdict = pinPath(root, kVerdictPin);
  if (::unlink(verdict.c_str()) != 0 && errno != ENOENT) {
    return errnoError("unpin " + verdict);
  }
  // A staging pin of an agent that died between pinning and renaming it.
  if (DIR* dir = ::opendir(root.c_str()); dir != nullptr) {
    while (const dirent* entry = ::readdir(dir)) {
      if (std::string_view(entry->d_name).substr(0, kStagingPrefix.size()) == kStagingPrefix) {
        ::unlinkat(::dirfd(dir), entry->d_name, 0);
      }
    }
    ::closedir(dir);
  }
  if (::rmdir(root.c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST) {
    return errnoError("remove pin root " + root);
  }
  return success();
}

int SpliceDatapath::socksMapFd() const noexcept {
  return fds_[kSocks];
}
int SpliceDatapath::targetsMapFd() const noexcept {
  return fds_[kTargets];
}
int SpliceDatapath::peersMapFd() const noexcept {
  return fds_[kPeers];
}
int SpliceDatapath::flowStatsMapFd() const noexcept {
  return fds_[kFlowStats];
}
int SpliceDatapath::verdictsMapFd() const noexcept {
  return fds_[kVerdicts];
}
int SpliceDatapath::verdictProgFd() const noexcept {
  return fds_[kVerdict];
}

namespace {

// SO_RCVLOWAT is addPair's kick: setting it makes TCP call data_ready (the verdict, once the
// socket is in sluice_socks_v3) at once if that many bytes are queued. Lowering it to 1 after
// the inserts runs the verdict over bytes that queued before the socket had one, in order;
// without that they would wait for the next arrival, and a request waiting for its reply would
// deadlock. Raising it first keeps the verdict from running on every skb of a burst while the
// pair is half armed; correctness does not depend on it any more (TCP ignores the gate under
// memory pressure or a closed receive window: tests/kernels/FINDINGS.md, finding 5), the
// insert order does.
void setRcvLowat(int fd, int value) {
  ::setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &value, sizeof(value));
}

}  // namespace

Result<void> SpliceDatapath::addPair(int client_fd, int backend_fd, std::uint64_t flow_id,
                                     std::uint32_t budget) {
  auto client = socketCookie(client_fd);
  if (!client) {
    return client.error().wrap("splice client socket");
  }
  auto backend = socketCookie(backend_fd);
  if (!backend) {
    return backend.error().wrap("splice backend socket");
  }
  if (*client == *backend) {
    return Error(EINVAL, "splice: client and backend are the same socket");
  }

  sluice_flow client_flow{};
  client_flow.peer_cookie = *backend;
  client_flow.flow_id = flow_id != 0 ? flow_id : *client;
  client_flow.created_ns = monotonicNs();
  client_flow.flags = SLUICE_FLOW_F_CLIENT;
  client_flow.strategy = SLUICE_STRATEGY_REDIRECT;
  client_flow.budget = budget;
  sluice_flow backend_flow = client_flow;
  backend_flow.peer_cookie = *client;
  backend_flow.flags = SLUICE_FLOW_F_BACKEND;
  const sluice_flow_stats zero{};
  const __u64 client_value = static_cast<__u64>(client_fd);
  const __u64 backend_value = static_cast<__u64>(backend_fd);

  std::lock_guard lock(mutex_);
  Rollback rollback;
  // Metadata first: it is inert until a socket is in the sockhash. Then both sockets into
  // sluice_targets, which has no program, so their receive path does not change. Only then into
  // sluice_socks_v3, whose verdict redirects into sluice_targets: from the moment either
  // socket's verdict can run, its peer is a valid target, whichever side speaks first.
  const struct {
    int map_fd;
    std::uint64_t cookie;
    const void* value;
    const char* what;
    ArmingStep step;
  } steps[] = {
      {peersMapFd(), *client, &client_flow, "insert client peer into " SLUICE_MAP_PEERS, {}},
      {peersMapFd(), *backend, &backend_flow, "insert backend peer into " SLUICE_MAP_PEERS, {}},
      {flowStatsMapFd(), *client, &zero, "insert client counters into " SLUICE_MAP_FLOW_STATS, {}},
      {flowStatsMapFd(),
       *backend,
       &zero,
       "insert backend counters into " SLUICE_MAP_FLOW_STATS,
       {}},
      {targetsMapFd(),
       *client,
       &client_value,
       "insert client socket into " SLUICE_MAP_TARGETS,
       {SLUICE_MAP_TARGETS, true}},
      {targetsMapFd(),
       *backend,
       &backend_value,
       "insert backend socket into " SLUICE_MAP_TARGETS,
       {SLUICE_MAP_TARGETS, false}},
      {socksMapFd(),
       *client,
       &client_value,
       "insert client socket into " SLUICE_MAP_SOCKS,
       {SLUICE_MAP_SOCKS, true}},
      {socksMapFd(),
       *backend,
       &backend_value,
       "insert backend socket into " SLUICE_MAP_SOCKS,
       {SLUICE_MAP_SOCKS, false}},
  };
  // The kernel caps the value at half the receive buffer limit; INT_MAX asks for that cap.
  setRcvLowat(client_fd, INT_MAX);
  setRcvLowat(backend_fd, INT_MAX);
  for (const auto& step : steps) {
    if (auto inserted = insert(rollback, step.map_fd, step.cookie, step.value, step.what);
        !inserted) {
      setRcvLowat(client_fd, 1);
      setRcvLowat(backend_fd, 1);
      return inserted.error();
    }
    if (arming_hook_ && !step.step.map.empty()) {
      arming_hook_(step.step);
    }
  }
  rollback.commit();
  // Runs the verdict over bytes that arrived before or during the inserts (would otherwise wait
  // for the next arrival).
  setRcvLowat(client_fd, 1);
  setRcvLowat(backend_fd, 1);
  return success();
}

Result<sluice_flow> SpliceDatapath::flow(std::uint64_t cookie) const {
  sluice_flow_key key{cookie};
  sluice_flow value{};
  if (::bpf_map_lookup_elem(peersMapFd(), &key, &value) != 0) {
    return errnoError("lookup " SLUICE_MAP_PEERS);
  }
  return value;
}

Result<void> SpliceDatapath::removePair(int fd) {
  auto cookie = socketCookie(fd);
  if (!cookie) {
    return cookie.error().wrap("unsplice socket");
  }
  std::lock_guard lock(mutex_);
  return removeLocked(*cookie);
}

Result<void> SpliceDatapath::removePairByCookie(std::uint64_t cookie) {
  std::lock_guard lock(mutex_);
  return removeLocked(cookie);
}

Result<void> SpliceDatapath::removeLocked(std::uint64_t cookie) {
  sluice_flow_key key{cookie};
  sluice_flow flow{};
  if (int err = ::bpf_map_lookup_elem(peersMapFd(), &key, &flow); err != 0) {
    return Error(err, "unsplice " + cookieText(cookie) + ": lookup in " SLUICE_MAP_PEERS);
  }
  // Touch the peer's entries only if they point back: never break up someone else's pair.
  sluice_flow_key peer_key{flow.peer_cookie};
  sluice_flow peer_flow{};
  const bool with_peer = ::bpf_map_lookup_elem(peersMapFd(), &peer_key, &peer_flow) == 0 &&
                         peer_flow.peer_cookie == cookie;

  std::vector<std::uint64_t> cookies{cookie};
  if (with_peer) {
    cookies.push_back(flow.peer_cookie);
  }
  // The verdict's sockhash first so the verdict stops before the metadata it reads disappears,
  // then the targets (arming in reverse).
  Result<void> first = success();
  const std::pair<int, const char*> maps[] = {{socksMapFd(), SLUICE_MAP_SOCKS},
                                              {targetsMapFd(), SLUICE_MAP_TARGETS},
                                              {peersMapFd(), SLUICE_MAP_PEERS},
                                              {flowStatsMapFd(), SLUICE_MAP_FLOW_STATS}};
  for (const auto& [map_fd, name] : maps) {
    for (std::uint64_t c : cookies) {
      if (auto erased = eraseEntry(map_fd, c, name); !erased && first) {
        first = erased;
      }
    }
  }
  return first;
}

Result<FlowStats> SpliceDatapath::stats(std::uint64_t cookie) const {
  sluice_flow_key key{cookie};
  sluice_flow_stats value{};
  if (int err = ::bpf_map_lookup_elem(flowStatsMapFd(), &key, &value); err != 0) {
    return Error(err, "counters of " + cookieText(cookie) + " in " SLUICE_MAP_FLOW_STATS);
  }
  return FlowStats{value.bytes, value.packets, value.last_seen_ns, value.passed_bytes};
}

Result<VerdictCounters> SpliceDatapath::verdictCounters() const {
  const int cpus = ::libbpf_num_possible_cpus();
  if (cpus <= 0) {
    return Error(cpus, "count possible CPUs");
  }
  VerdictCounters totals{};
  std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(cpus));
  for (std::uint32_t reason = 0; reason < totals.size(); ++reason) {
    if (int err = ::bpf_map_lookup_elem(verdictsMapFd(), &reason, per_cpu.data()); err != 0) {
      return Error(err, "read " SLUICE_MAP_VERDICTS " slot " + std::to_string(reason));
    }
    for (std::uint64_t n : per_cpu) {
      totals[reason] += n;
    }
  }
  return totals;
}

Result<std::size_t> SpliceDatapath::clearStale() {
  std::lock_guard lock(mutex_);
  std::size_t removed = 0;
  const std::pair<int, const char*> maps[] = {{peersMapFd(), SLUICE_MAP_PEERS},
                                              {flowStatsMapFd(), SLUICE_MAP_FLOW_STATS}};
  for (const auto& [map_fd, name] : maps) {
    auto keys = mapKeys(map_fd, name);
    if (!keys) {
      return keys.error().wrap("clear stale entries");
    }
    for (std::uint64_t cookie : *keys) {
      // A sockhash lookup from userspace returns the socket's cookie while it is open; closed
      // sockets have left the map. Pairs are armed under mutex_, so no insert is half done.
      sluice_flow_key key{cookie};
      __u64 present = 0;
      int err = ::bpf_map_lookup_elem(socksMapFd(), &key, &present);
      if (err == 0) {
        continue;
      }
      if (err != -ENOENT) {
        return Error(err,
                     "clear stale entries: lookup " + cookieText(cookie) + " in " SLUICE_MAP_SOCKS);
      }
      if (int del = ::bpf_map_delete_elem(map_fd, &key); del == 0) {
        ++removed;
      } else if (del != -ENOENT) {
        return Error(del, "clear stale entries: delete " + cookieText(cookie) + " from " + name);
      }
    }
  }
  return removed;
}

}  // namespace sluice::bpf
