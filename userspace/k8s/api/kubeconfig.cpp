#include "k8s/api/kubeconfig.hpp"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include <yaml-cpp/yaml.h>

namespace sluice::k8s::api {
namespace fs = std::filesystem;

namespace {

// Reads a whole file.
Result<std::string> readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Error(errno, "cannot read " + path.string());
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    return Error(EIO, "cannot read " + path.string());
  }
  return ss.str();
}

std::string trim(std::string s) {
  const auto ws = " \t\r\n";
  s.erase(0, s.find_first_not_of(ws) == std::string::npos ? s.size() : s.find_first_not_of(ws));
  if (const auto last = s.find_last_not_of(ws); last != std::string::npos) {
    s.erase(last + 1);
  }
  return s;
}

// A scalar field of a map node, "" if absent; an error if present but not a scalar.
Result<std::string> scalar(const YAML::Node& map, const char* key, const std::string& where) {
  const YAML::Node n = map[key];
  if (!n || n.IsNull()) {
    return std::string();
  }
  if (!n.IsScalar()) {
    return Error(where + "." + key + ": must be a string");
  }
  return n.Scalar();
}

// Finds `name` in a kubeconfig list ("clusters", "users", "contexts") and returns its inner map.
Result<YAML::Node> findNamed(const YAML::Node& root, const char* list, const char* inner,
                             const std::string& name) {
  const YAML::Node items = root[list];
  if (!items || !items.IsSequence()) {
    return Error(std::string(list) + ": missing or not a list");
  }
  for (const YAML::Node& item : items) {
    if (item.IsMap() && item["name"] && item["name"].IsScalar() && item["name"].Scalar() == name) {
      const YAML::Node body = item[inner];
      if (!body || !body.IsMap()) {
        return Error(std::string(list) + "[" + name + "]." + inner + ": missing or not a mapping");
      }
      return body;
    }
  }
  return Error(std::string(inner) + " \"" + name + "\" not found in " + list);
}

Result<bool> parseBool(const std::string& text) {
  if (text == "true" || text == "True" || text == "TRUE") {
    return true;
  }
  if (text == "false" || text == "False" || text == "FALSE" || text.empty()) {
    return false;
  }
  return Error("not a boolean: " + text);
}

// A data field (base64) or a file field; "" when neither is set.
Result<std::string> dataOrFile(const YAML::Node& map, const char* data_key, const char* file_key,
                               const std::string& where, const fs::path& dir) {
  SLUICE_TRY(const std::string data, scalar(map, data_key, where));
  SLUICE_TRY(const std::string file, scalar(map, file_key, where));
  if (!data.empty()) {
    auto decoded = decodeBase64(data);
    if (!decoded) {
      return Error(where + "." + data_key + ": invalid base64");
    }
    if (decoded->empty()) {
      return Error(where + "." + data_key + ": empty");
    }
    return std::move(*decoded);
  }
  if (file.empty()) {
    return std::string();
  }
  fs::path p(file);
  if (p.is_relative()) {
    p = dir / p;
  }
  auto read = readFile(p);
  if (!read) {
    return read.error().wrap(where + "." + file_key);
  }
  if (read->empty()) {
    return Error(where + "." + file_key + ": " + p.string() + " is empty");
  }
  return read;
}

// The cluster entry of a context: server, TLS settings and CA.
Result<void> parseCluster(const YAML::Node& root, const std::string& name, const fs::path& dir,
                          ConnectionConfig& cfg) {
  SLUICE_TRY(const YAML::Node cluster, findNamed(root, "clusters", "cluster", name));
  const std::string where = "clusters[" + name + "].cluster";
  SLUICE_TRY(cfg.server, scalar(cluster, "server", where));
  SLUICE_TRY(cfg.tls_server_name, scalar(cluster, "tls-server-name", where));
  SLUICE_TRY(const std::string insecure, scalar(cluster, "insecure-skip-tls-verify", where));
  if (cfg.server.empty()) {
    return Error(where + ".server: required");
  }
  auto url = parseServerUrl(cfg.server);
  if (!url) {
    return url.error().wrap(where);
  }
  cfg.host = url->host;
  cfg.port = url->port;
  auto skip = parseBool(insecure);
  if (!skip) {
    return skip.error().wrap(where + ".insecure-skip-tls-verify");
  }
  cfg.insecure_skip_tls_verify = *skip;
  SLUICE_TRY(cfg.ca_pem, dataOrFile(cluster, "certificate-authority-data", "certificate-authority",
                                    where, dir));
  return success();
}

// The user entry of a context: a token, a token file or a client certificate.
Result<void> parseUser(const YAML::Node& root, const std::string& name, const fs::path& dir,
                       ConnectionConfig& cfg) {
  SLUICE_TRY(const YAML::Node user, findNamed(root, "users", "user", name));
  const std::string where = "users[" + name + "].user";
  if (user["exec"] || user["auth-provider"]) {
    return Error(where +
                 ": exec and auth-provider credentials are not supported (use a token, tokenFile "
                 "or client certificate)");
  }
  if (user["username"] || user["password"]) {
    return Error(where + ": basic authentication is not supported");
  }
  SLUICE_TRY(const std::string token, scalar(user, "token", where));
  SLUICE_TRY(const std::string token_file, scalar(user, "tokenFile", where));
  if (!token.empty()) {
    cfg.token = TokenSource::fixed(trim(token));
  } else if (!token_file.empty()) {
    fs::path p(token_file);
    if (p.is_relative()) {
      p = dir / p;
    }
    cfg.token = TokenSource::file(p);
    if (auto read = cfg.token.refresh(); !read) {
      return read.error().wrap(where + ".tokenFile");
    }
  }
  SLUICE_TRY(cfg.client_cert_pem,
             dataOrFile(user, "client-certificate-data", "client-certificate", where, dir));
  SLUICE_TRY(cfg.client_key_pem, dataOrFile(user, "client-key-data", "client-key", where, dir));
  if (cfg.client_cert_pem.empty() != cfg.client_key_pem.empty()) {
    return Error(where + ": a client certificate needs both certificate and key");
  }
  return success();
}

Result<ConnectionConfig> parseKubeconfigRoot(const YAML::Node& root, const fs::path& dir,
                                             std::string_view context, std::string_view origin) {
  if (!root.IsMap()) {
    return Error("not a mapping");
  }
  std::string ctx_name(context);
  if (ctx_name.empty()) {
    SLUICE_TRY(ctx_name, scalar(root, "current-context", "kubeconfig"));
    if (ctx_name.empty()) {
      return Error("current-context is not set (pass a context)");
    }
  }
  SLUICE_TRY(const YAML::Node ctx, findNamed(root, "contexts", "context", ctx_name));
  const std::string where = "contexts[" + ctx_name + "].context";
  SLUICE_TRY(const std::string cluster_name, scalar(ctx, "cluster", where));
  SLUICE_TRY(const std::string user_name, scalar(ctx, "user", where));
  ConnectionConfig cfg;
  SLUICE_TRY(cfg.ns, scalar(ctx, "namespace", where));
  if (cluster_name.empty()) {
    return Error(where + ".cluster: required");
  }
  SLUICE_CHECK(parseCluster(root, cluster_name, dir, cfg));
  if (!user_name.empty()) {
    SLUICE_CHECK(parseUser(root, user_name, dir, cfg));
  }
  cfg.source = std::string(origin) + " (context " + ctx_name + ")";
  return cfg;
}

}  // namespace

// ---- TokenSource ----

TokenSource TokenSource::fixed(std::string token) {
  TokenSource t;
  t.token_ = std::move(token);
  return t;
}

TokenSource TokenSource::file(fs::path path) {
  TokenSource t;
  t.path_ = std::move(path);
  return t;
}

Result<void> TokenSource::refresh(bool force) {
  if (path_.empty()) {
    return success();
  }
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    return Error(errno, "cannot stat token file " + path_.string());
  }
  const Stamp stamp{
      static_cast<std::uint64_t>(st.st_ino), static_cast<std::uint64_t>(st.st_dev),
      static_cast<std::int64_t>(st.st_size),
      static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
  if (!force && stamp_ && *stamp_ == stamp) {
    return success();
  }
  SLUICE_TRY(std::string content, readFile(path_));
  content = trim(std::move(content));
  if (content.empty()) {
    // A writer may have truncated the file and not written yet: keep the old token, look again.
    stamp_.reset();
    return Error("token file " + path_.string() + " is empty");
  }
  stamp_ = stamp;
  if (content != token_) {
    token_ = std::move(content);
    ++reloads_;
  }
  return success();
}

const std::string& TokenSource::current(bool force) {
  // A failed re-read keeps the last good token; the request it goes with then fails visibly
  // (401) and the next request reads again.
  (void)refresh(force);
  return token_;
}

// ---- helpers ----

std::optional<std::string> decodeBase64(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') {
      return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
      return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
      return c - '0' + 52;
    }
    if (c == '+') {
      return 62;
    }
    if (c == '/') {
      return 63;
    }
    return -1;
  };
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  int pad = 0;
  std::size_t symbols = 0;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
      continue;
    }
    if (c == '=') {
      ++pad;
      ++symbols;
      continue;
    }
    if (pad > 0) {
      return std::nullopt;  // data after padding
    }
    const int v = value(c);
    if (v < 0) {
      return std::nullopt;
    }
    ++symbols;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (pad > 2 || (pad > 0 && symbols % 4 != 0) || (symbols - pad) % 4 == 1) {
    return std::nullopt;
  }
  // Leftover bits must be zero (canonical encoding); otherwise it is likely not base64 at all.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
    return std::nullopt;
  }
  return out;
}

Result<ServerUrl> parseServerUrl(std::string_view url) {
  const std::string what = "server " + std::string(url);
  std::string_view rest = url;
  if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  } else if (rest.find("://") != std::string_view::npos) {
    return Error(what + ": only https:// is supported");
  } else if (rest.empty()) {
    return Error("server: empty");
  }
  // Cut the path ("https://host:6443/" or a proxy prefix; a prefix is not supported).
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    if (rest.substr(slash) != "/") {
      return Error(what + ": a path prefix is not supported");
    }
    rest = rest.substr(0, slash);
  }
  ServerUrl out;
  if (rest.starts_with('[')) {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) {
      return Error(what + ": unterminated IPv6 address");
    }
    out.host = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 1);
    if (rest.starts_with(':')) {
      out.port = std::string(rest.substr(1));
    } else if (rest.empty()) {
      out.port = "443";
    } else {
      return Error(what + ": bad port");
    }
  } else {
    const auto colon = rest.rfind(':');
    out.host = std::string(rest.substr(0, colon));
    out.port = colon == std::string_view::npos ? "443" : std::string(rest.substr(colon + 1));
  }
  if (out.host.empty()) {
    return Error(what + ": no host");
  }
  const std::string& port = out.port;
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) == 0 ||
      std::stoi(port) > 65535) {
    return Error(what + ": bad port");
  }
  return out;
}

// ---- kubeconfig ----

Result<ConnectionConfig> parseKubeconfig(std::string_view text, const fs::path& dir,
                                         std::string_view context, std::string_view origin) {
  const std::string pre(origin);
  try {
    const YAML::Node root = YAML::Load(std::string(text));
    auto cfg = parseKubeconfigRoot(root, dir, context, origin);
    if (!cfg) {
      return cfg.error().wrap(pre);
    }
    return cfg;
  } catch (const YAML::ParserException& e) {
    return Error(pre + ": not valid YAML: " + e.what());
  } catch (const std::exception& e) {
    return Error(pre + ": unexpected structure: " + e.what());
  }
}

Result<ConnectionConfig> loadKubeconfig(const fs::path& path, std::string_view context) {
  auto text = readFile(path);
  if (!text) {
    return text.error().wrap("kubeconfig");
  }
  fs::path dir = path.parent_path();
  if (dir.empty()) {
    dir = ".";
  }
  return parseKubeconfig(*text, dir, context, "kubeconfig " + path.string());
}

Result<ConnectionConfig> inCluster(const InClusterPaths& paths) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || *host == '\0' || port == nullptr || *port == '\0') {
    return Error(
        "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set "
        "(not running in a pod? pass --kubeconfig)");
  }
  ConnectionConfig cfg;
  const std::string h(host);
  cfg.server = "https://" + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + port;
  auto url = parseServerUrl(cfg.server);
  if (!url) {
    return url.error().wrap("in-cluster");
  }
  cfg.host = url->host;
  cfg.port = url->port;
  auto ca = readFile(paths.dir / "ca.crt");
  if (!ca) {
    return ca.error().wrap("in-cluster");
  }
  cfg.ca_pem = std::move(*ca);
  cfg.token = TokenSource::file(paths.dir / "token");
  if (auto read = cfg.token.refresh(); !read) {
    return read.error().wrap("in-cluster");
  }
  if (auto ns = readFile(paths.dir / "namespace")) {
    cfg.ns = trim(std::move(*ns));
  }
  cfg.source = "in-cluster";
  return cfg;
}

}  // namespace sluice::k8s::api
