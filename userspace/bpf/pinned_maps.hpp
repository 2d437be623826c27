// Read-only access to pinned BPF maps by path, for ingressctl and diagnostics. Nothing here
// creates, updates, deletes, attaches or detaches: every map is opened with BPF_F_RDONLY, so
// looking at a live agent's datapath cannot disturb it.
//
// Reading pinned maps needs CAP_BPF (or root): bpf(BPF_OBJ_GET) fails with EPERM without it, and
// bpffs itself is usually mode 0700, which fails earlier with EACCES. pinnedProgramInfo needs the
// same and nothing more. Listing the programs attached to a map (attachedPrograms) also needs
// CAP_NET_ADMIN and Linux 5.19, and programInfo by id needs CAP_SYS_ADMIN
// (BPF_PROG_GET_FD_BY_ID), which the DaemonSet does not grant. Iterating a hash map that is
// being written concurrently is best effort: a key deleted under the walk restarts it, so keys()
// dedups and bounds the walk.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace sluice::bpf {

// The kernel's view of a map (BPF_OBJ_GET_INFO_BY_FD).
struct MapInfo {
  std::uint32_t id = 0;
  std::uint32_t type = 0;  // enum bpf_map_type
  std::uint32_t key_size = 0;
  std::uint32_t value_size = 0;
  std::uint32_t max_entries = 0;
  std::uint32_t map_flags = 0;
  std::string name;  // kernel name, at most 15 characters (BPF_OBJ_NAME_LEN)
};

// The kernel's view of a loaded program.
struct ProgramInfo {
  std::uint32_t id = 0;
  std::uint32_t type = 0;  // enum bpf_prog_type
  std::string name;        // at most 15 characters
  std::string tag;         // 16 hex digits, as bpftool prints it
};

// Checks that `dir` is a directory on bpffs. Errors: ENOENT (missing), ENOTSUP (not on bpffs),
// ENOTDIR, EACCES (cannot look; bpffs is usually 0700).
Result<void> checkPinDir(const std::string& dir);

// "hash", "sockhash", "percpu_array"... (libbpf's names); "unknown(N)" for newer types.
std::string mapTypeName(std::uint32_t type);
// "sk_skb", "xdp"... (libbpf's names); "unknown(N)" for newer types.
std::string progTypeName(std::uint32_t type);
// "sk_skb_stream_verdict"... (libbpf's names); "unknown(N)" for newer types.
std::string attachTypeName(std::uint32_t type);

// Info of the program with this id. Needs CAP_SYS_ADMIN.
Result<ProgramInfo> programInfo(std::uint32_t id);

// Info of the program pinned at `path`. Needs only what reading the pin directory needs (CAP_BPF
// and file access). ENOENT: nothing pinned there; EINVAL: the pin is not a program.
Result<ProgramInfo> pinnedProgramInfo(const std::string& path);

class PinnedMap {
public:
  // Opens the map pinned at `path` read-only. ENOENT: nothing pinned there; EPERM/EACCES: no
  // CAP_BPF; EINVAL: the pin is not a map.
  static Result<PinnedMap> openReadOnly(const std::string& path);

  PinnedMap(PinnedMap&& other) noexcept;
  PinnedMap& operator=(PinnedMap&& other) noexcept;
  PinnedMap(const PinnedMap&) = delete;
  PinnedMap& operator=(const PinnedMap&) = delete;
  ~PinnedMap();

  int fd() const noexcept { return fd_; }
  const std::string& path() const noexcept { return path_; }
  const MapInfo& info() const noexcept { return info_; }

  // EPROTO with a description of both layouts unless the map has this type and sizes: the guard
  // against reading a pinned map from another ABI version (see sluice_abi.h).
  Result<void> checkLayout(std::uint32_t type, std::uint32_t key_size,
                           std::uint32_t value_size) const;

  // Every key in the map, each as key_size raw bytes, without duplicates.
  Result<std::vector<std::string>> rawKeys() const;

  // Number of keys (for arrays: max_entries). Walks the map.
  Result<std::size_t> countEntries() const;

  // Keys as K; EPROTO unless sizeof(K) == key_size.
  template <typename K>
  Result<std::vector<K>> keys() const {
    if (sizeof(K) != info_.key_size) {
      return Error(EPROTO, "keys of " + path_ + ": key size " + std::to_string(info_.key_size) +
                               ", expected " + std::to_string(sizeof(K)));
    }
    auto raw = rawKeys();
    if (!raw) {
      return raw.error();
    }
    std::vector<K> out(raw->size());
    for (std::size_t i = 0; i < raw->size(); ++i) {
      std::memcpy(&out[i], (*raw)[i].data(), sizeof(K));
    }
    return out;
  }

  // Bytes a lookup writes: value_size, or value_size rounded up to 8 times the possible CPUs for
  // per-CPU maps.
  std::size_t valueBufferSize() const noexcept { return value_buffer_size_; }

  // Copies the value of `key` into `value` (valueBufferSize() bytes). ENOENT when absent.
  Result<void> lookup(const void* key, void* value) const;

  // Ids of the programs attached to this map with `attach_type` (sockmap/sockhash attach points;
  // kernel 5.19+, EINVAL before). Needs CAP_NET_ADMIN.
  Result<std::vector<std::uint32_t>> attachedPrograms(std::uint32_t attach_type) const;

private:
  PinnedMap(int fd, std::string path, MapInfo info, std::size_t value_buffer_size);

  int fd_ = -1;
  std::string path_;
  MapInfo info_;
  std::size_t value_buffer_size_ = 0;
};

}  // namespace sluice::bpf
