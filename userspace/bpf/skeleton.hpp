// Skeleton<T>: owns a bpftool-generated skeleton through the C++ statics bpftool emits
// (T::open, T::load, T::destroy). Move-only; destroying it closes the object's programs and map
// fds (pinned maps stay in bpffs).
#pragma once

#include <bpf/libbpf.h>
#include <sys/stat.h>

#include <cerrno>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace sluice::bpf {

template <typename T>
class Skeleton {
public:
  Skeleton() = default;

  // Parses the embedded ELF; `name` only labels errors ("open splice.bpf.o").
  static Result<Skeleton> open(const bpf_object_open_opts* opts, std::string_view name) {
    errno = 0;
    T* raw = T::open(opts);
    if (raw == nullptr) {
      return Error(errno, "open BPF object " + std::string(name));
    }
    return Skeleton(raw);
  }

  // Opens the object with its LIBBPF_PIN_BY_NAME maps pinned under `pin_root` (created if
  // missing). An empty root pins nothing: the maps then live and die with the skeleton.
  static Result<Skeleton> openPinnedUnder(const std::string& pin_root, std::string_view name) {
    if (!pin_root.empty() && ::mkdir(pin_root.c_str(), 0700) != 0 && errno != EEXIST) {
      return Error(errno, "create pin directory " + pin_root);
    }
    bpf_object_open_opts opts{};
    opts.sz = sizeof(opts);
    opts.pin_root_path = pin_root.empty() ? nullptr : pin_root.c_str();
    auto skel = open(&opts, name);
    if (skel && pin_root.empty()) {
      // LIBBPF_PIN_BY_NAME maps get a default pin path at open; clearing it means nothing is
      // pinned or reused.
      bpf_map* map = nullptr;
      bpf_object__for_each_map(map, skel->get()->obj) {
        ::bpf_map__set_pin_path(map, nullptr);
      }
    }
    return skel;
  }

  // Creates or reuses maps (pinned ones by pin path) and loads programs through the verifier.
  Result<void> load(std::string_view name) {
    if (!skel_) {
      return Error(EINVAL, "load BPF object " + std::string(name) + ": not opened");
    }
    if (int err = T::load(skel_.get()); err != 0) {
      return Error(err, "load BPF object " + std::string(name));
    }
    return success();
  }

  T* get() const noexcept { return skel_.get(); }
  T* operator->() const noexcept { return skel_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(skel_); }

private:
  struct Destroy {
    void operator()(T* skel) const noexcept { T::destroy(skel); }
  };

  explicit Skeleton(T* raw) : skel_(raw) {}

  std::unique_ptr<T, Destroy> skel_;
};

}  // namespace sluice::bpf
