// How to reach the API server: from a kubeconfig file (current context) or from the pod's
// service-account mount (in-cluster). Loading never throws; every bad input becomes one error
// message naming the file and the field.
//
// A bearer token that comes from a file (in-cluster, or a kubeconfig `tokenFile`) is re-read when
// the file changes: kubelet rotates projected service-account tokens (about hourly) by swapping a
// symlink, so the file's inode, size or mtime changes. TokenSource checks one stat() per request.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace sluice::k8s::api {

// A bearer token: either fixed, or read from a file and re-read when the file changes.
class TokenSource {
public:
  TokenSource() = default;
  static TokenSource fixed(std::string token);
  static TokenSource file(std::filesystem::path path);

  // For a file: stat()s it, and re-reads it when its identity (inode, device, size, mtime)
  // changed or `force` is set. A read that fails (or finds the file empty) keeps the last good
  // token and says why.
  Result<void> refresh(bool force = false);
  // refresh(), then the current token ("" if none is configured or was ever read).
  const std::string& current(bool force = false);
  bool fromFile() const { return !path_.empty(); }
  const std::filesystem::path& path() const { return path_; }
  std::uint64_t reloads() const { return reloads_; }  // successful reads that changed the token

private:
  struct Stamp {
    std::uint64_t inode = 0;
    std::uint64_t device = 0;
    std::int64_t size = -1;
    std::int64_t mtime_ns = 0;
    bool operator==(const Stamp&) const = default;
  };
  std::filesystem::path path_;
  std::string token_;
  std::optional<Stamp> stamp_;
  std::uint64_t reloads_ = 0;
};

struct ConnectionConfig {
  std::string server;           // as configured, e.g. "https://10.0.0.1:6443"
  std::string host;             // parsed from server; an IPv6 literal without brackets
  std::string port;             // "443" if the URL has none
  std::string tls_server_name;  // verify the certificate against this name instead of host
  std::string ca_pem;           // "" = the system's default trust store
  bool insecure_skip_tls_verify = false;
  std::string client_cert_pem;  // both set, or neither
  std::string client_key_pem;
  TokenSource token;
  std::string ns;      // the context's namespace or the service account's; "" if unknown
  std::string source;  // for logs: "kubeconfig /path (context x)" or "in-cluster"
};

// Reads a kubeconfig. `context` "" = current-context. Relative file paths inside the kubeconfig
// are relative to its directory, as kubectl has them. exec and auth-provider users are refused.
Result<ConnectionConfig> loadKubeconfig(const std::filesystem::path& path,
                                        std::string_view context = "");
// The same from text; `dir` resolves relative paths.
Result<ConnectionConfig> parseKubeconfig(std::string_view text, const std::filesystem::path& dir,
                                         std::string_view context = "",
                                         std::string_view origin = "kubeconfig");

struct InClusterPaths {
  std::filesystem::path dir = "/var/run/secrets/kubernetes.io/serviceaccount";  // token, ca.crt,
                                                                                // namespace
};

// From KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT and the service-account mount.
Result<ConnectionConfig> inCluster(const InClusterPaths& paths = {});

struct ServerUrl {
  std::string host;  // an IPv6 literal without brackets
  std::string port;  // "443" if the URL has none
};
// Splits "https://host[:port][/]" into host and port.
Result<ServerUrl> parseServerUrl(std::string_view url);

// Strict base64 (standard alphabet, padding optional, whitespace ignored).
std::optional<std::string> decodeBase64(std::string_view text);

}  // namespace sluice::k8s::api
