// What the HTTPS listener needs from a snapshot: the TLS context for an SNI (exact host, then a
// wildcard one label deep, as Ingress hosts match, then the default certificate), the host's
// redirect and HSTS policy, and the passthrough routes. Immutable; built by the reconciler.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "model/desired_state.hpp"
#include "tls/context.hpp"

namespace sluice::proxy {

class TlsTable {
public:
  struct Host {
    tls::ContextPtr context;  // the host's certificate, or the default one
    bool redirect = true;     // plain HTTP → 308 https
    std::string hsts;         // Strict-Transport-Security value, "" = none
  };
  static constexpr std::uint32_t kNoPassthrough = UINT32_MAX;
  struct Passthrough {
    std::uint32_t cluster = kNoPassthrough;
    bool proxy_v2 = false;          // a PROXY protocol v2 header goes to the backend first
    model::SourceRanges sources{};  // sluice.dev/allow|deny-source-ranges of its Ingress
  };

  // `host` lower-case, without port or trailing dot. Null if the host has no TLS.
  const Host* find(std::string_view host) const { return lookup(hosts_, host); }
  // Where a passthrough SNI goes; null: terminate it.
  const Passthrough* passthrough(std::string_view host) const { return lookup(passthrough_, host); }
  bool hasPassthrough() const { return !passthrough_.empty(); }
  // The context for a handshake with this SNI ("" = none sent).
  SSL_CTX* contextFor(std::string_view sni) const {
    const Host* h = sni.empty() ? nullptr : find(sni);
    return h != nullptr && h->context ? h->context.get() : default_.get();
  }

  void addHost(std::string host, Host h) { hosts_.insert_or_assign(std::move(host), std::move(h)); }
  void addPassthrough(std::string host, Passthrough p) {
    passthrough_.insert_or_assign(std::move(host), p);
  }
  void setDefault(tls::ContextPtr ctx) { default_ = std::move(ctx); }
  const tls::ContextPtr& defaultContext() const { return default_; }

private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  template <typename T>
  using Map = std::unordered_map<std::string, T, Hash, std::equal_to<>>;

  // Exact key, then "*." + the host without its first label.
  template <typename T>
  static const T* lookup(const Map<T>& map, std::string_view host) {
    if (auto it = map.find(host); it != map.end()) {
      return &it->second;
    }
    const std::size_t dot = host.find('.');
    if (dot == std::string_view::npos || dot == 0) {
      return nullptr;
    }
    char key[256];
    const std::string_view rest = host.substr(dot);
    if (rest.size() + 1 > sizeof key) {
      return nullptr;
    }
    key[0] = '*';
    rest.copy(key + 1, rest.size());
    auto it = map.find(std::string_view(key, rest.size() + 1));
    return it != map.end() ? &it->second : nullptr;
  }

  Map<Host> hosts_;
  Map<Passthrough> passthrough_;
  tls::ContextPtr default_;
};

}  // namespace sluice::proxy
