#include "bpf/pinned_maps.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdio>
#include <string_view>
#include <unordered_set>
#include <utility>

namespace sluice::bpf {
namespace {

std::string unknown(std::uint32_t value) {
  return "unknown(" + std::to_string(value) + ")";
}

std::string orUnknown(const char* name, std::uint32_t value) {
  return name != nullptr ? std::string(name) : unknown(value);
}

bool perCpu(std::uint32_t type) {
  switch (type) {
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
      return true;
    default:
      return false;
  }
}

std::string layoutText(std::uint32_t type, std::uint32_t key_size, std::uint32_t value_size) {
  return mapTypeName(type) + " key " + std::to_string(key_size) + "B value " +
         std::to_string(value_size) + "B";
}

}  // namespace

Result<void> checkPinDir(const std::string& dir) {
  struct statfs fs {};
  if (::statfs(dir.c_str(), &fs) != 0) {
    return errnoError("pin dir " + dir);
  }
  if (fs.f_type != BPF_FS_MAGIC) {
    return Error(ENOTSUP, dir + " is not on bpffs");
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return errnoError("pin dir " + dir);
  }
  if (!S_ISDIR(st.st_mode)) {
    return Error(ENOTDIR, "pin dir " + dir);
  }
  return success();
}

std::string mapTypeName(std::uint32_t type) {
  return orUnknown(::libbpf_bpf_map_type_str(static_cast<bpf_map_type>(type)), type);
}

std::string progTypeName(std::uint32_t type) {
  return orUnknown(::libbpf_bpf_prog_type_str(static_cast<bpf_prog_type>(type)), type);
}

std::string attachTypeName(std::uint32_t type) {
  return orUnknown(::libbpf_bpf_attach_type_str(static_cast<bpf_attach_type>(type)), type);
}

namespace {

// The kernel's view of the program behind `fd`, which this closes. Needs nothing beyond the fd.
Result<ProgramInfo> programInfoOfFd(int fd, const std::string& what) {
  bpf_prog_info info{};
  std::uint32_t len = sizeof(info);
  const int err = ::bpf_obj_get_info_by_fd(fd, &info, &len);
  ::close(fd);
  if (err != 0) {
    return Error(err, "info of " + what);
  }
  ProgramInfo out;
  out.id = info.id;
  out.type = info.type;
  out.name = std::string(info.name, ::strnlen(info.name, sizeof(info.name)));
  char hex[3];
  for (unsigned char byte : info.tag) {
    std::snprintf(hex, sizeof(hex), "%02x", byte);
    out.tag += hex;
  }
  return out;
}

// What kind of BPF object an fd is ("anon_inode:bpf-map", "anon_inode:bpf-prog"...).
std::string objectKind(int fd) {
  char kind[64] = {};
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  return ::readlink(link.c_str(), kind, sizeof(kind) - 1) > 0 ? std::string(kind) : "";
}

}  // namespace

Result<ProgramInfo> programInfo(std::uint32_t id) {
  const int fd = ::bpf_prog_get_fd_by_id(id);
  if (fd < 0) {
    return Error(fd, "open program " + std::to_string(id));
  }
  return programInfoOfFd(fd, "program " + std::to_string(id));
}

Result<ProgramInfo> pinnedProgramInfo(const std::string& path) {
  // Programs open read-write only (BPF_F_RDONLY is EINVAL for them); the fd is only looked at.
  const int fd = ::bpf_obj_get(path.c_str());
  if (fd < 0) {
    return Error(fd, "open " + path);
  }
  if (const std::string kind = objectKind(fd); !kind.empty() && kind != "anon_inode:bpf-prog") {
    ::close(fd);
    return Error(EINVAL, "open " + path + ": pinned object is not a program (" + kind + ")");
  }
  return programInfoOfFd(fd, path);
}

PinnedMap::PinnedMap(int fd, std::string path, MapInfo info, std::size_t value_buffer_size)
    : fd_(fd),
      path_(std::move(path)),
      info_(std::move(info)),
      value_buffer_size_(value_buffer_size) {}

PinnedMap::PinnedMap(PinnedMap&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      info_(std::move(other.info_)),
      value_buffer_size_(other.value_buffer_size_) {}

PinnedMap& PinnedMap::operator=(PinnedMap&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    info_ = std::move(other.info_);
    value_buffer_size_ = other.value_buffer_size_;
  }
  return *this;
}

PinnedMap::~PinnedMap() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

Result<PinnedMap> PinnedMap::openReadOnly(const std::string& path) {
  struct bpf_obj_get_opts opts {};
  opts.sz = sizeof(opts);
  opts.file_flags = BPF_F_RDONLY;
  const int fd = ::bpf_obj_get_opts(path.c_str(), &opts);
  if (fd < 0) {
    return Error(fd, "open " + path);
  }
  // A pinned program or link opens just as well, and its info would fill bpf_map_info with
  // something else; the anon inode names what the fd is.
  if (const std::string kind = objectKind(fd); !kind.empty() && kind != "anon_inode:bpf-map") {
    ::close(fd);
    return Error(EINVAL, "open " + path + ": pinned object is not a map (" + kind + ")");
  }
  bpf_map_info raw{};
  std::uint32_t len = sizeof(raw);
  if (int err = ::bpf_obj_get_info_by_fd(fd, &raw, &len); err != 0) {
    ::close(fd);
    return Error(err, "info of " + path);
  }
  MapInfo info;
  info.id = raw.id;
  info.type = raw.type;
  info.key_size = raw.key_size;
  info.value_size = raw.value_size;
  info.max_entries = raw.max_entries;
  info.map_flags = raw.map_flags;
  info.name = std::string(raw.name, ::strnlen(raw.name, sizeof(raw.name)));

  std::size_t value_size = info.value_size;
  if (perCpu(info.type)) {
    const int cpus = ::libbpf_num_possible_cpus();
    if (cpus <= 0) {
      ::close(fd);
      return Error(cpus, "count possible CPUs");
    }
    value_size = ((value_size + 7) / 8) * 8 * static_cast<std::size_t>(cpus);
  }
  return PinnedMap(fd, path, std::move(info), value_size);
}

Result<void> PinnedMap::checkLayout(std::uint32_t type, std::uint32_t key_size,
                                    std::uint32_t value_size) const {
  if (info_.type == type && info_.key_size == key_size && info_.value_size == value_size) {
    return success();
  }
  return Error(EPROTO, path_ + " is " + layoutText(info_.type, info_.key_size, info_.value_size) +
                           ", expected " + layoutText(type, key_size, value_size));
}

Result<std::vector<std::string>> PinnedMap::rawKeys() const {
  std::vector<std::string> keys;
  std::unordered_set<std::string> seen;
  std::string prev(info_.key_size, '\0');
  std::string next(info_.key_size, '\0');
  bool first = true;
  // A concurrent delete of `prev` makes the kernel restart from the first key, so the walk can
  // revisit keys: dedup, and give up on a map that keeps changing under us.
  const std::size_t bound = 4 * static_cast<std::size_t>(info_.max_entries) + 16;
  for (std::size_t step = 0; step < bound; ++step) {
    const int err = ::bpf_map_get_next_key(fd_, first ? nullptr : prev.data(), next.data());
    if (err == -ENOENT) {
      return keys;
    }
    if (err != 0) {
      return Error(err, "iterate " + path_);
    }
    if (seen.insert(next).second) {
      keys.push_back(next);
    }
    prev = next;
    first = false;
  }
  return Error(EAGAIN, "iterate " + path_ + ": map kept changing");
}

Result<std::size_t> PinnedMap::countEntries() const {
  auto keys = rawKeys();
  if (!keys) {
    return keys.error();
  }
  return keys->size();
}

Result<void> PinnedMap::lookup(const void* key, void* value) const {
  if (int err = ::bpf_map_lookup_elem(fd_, key, value); err != 0) {
    return Error(err, "lookup in " + path_);
  }
  return success();
}

Result<std::vector<std::uint32_t>> PinnedMap::attachedPrograms(std::uint32_t attach_type) const {
  // Sockmaps hold at most one program per attach type; the array leaves room for other maps.
  std::vector<std::uint32_t> ids(64);
  std::uint32_t count = static_cast<std::uint32_t>(ids.size());
  if (int err = ::bpf_prog_query(fd_, static_cast<bpf_attach_type>(attach_type), 0, nullptr,
                                 ids.data(), &count);
      err != 0) {
    return Error(err, "query " + attachTypeName(attach_type) + " programs of " + path_);
  }
  ids.resize(count);
  return ids;
}

}  // namespace sluice::bpf
