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

// Reads a whole file; returns an error message ("" on success).
std::string readFile(const fs::path& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec(errno, std::generic_category());
    return "cannot read " + path.string() + ": " + ec.message();
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    return "cannot read " + path.string();
  }
  out = ss.str();
  return "";
}

std::string trim(std::string s) {
  const auto ws = " \t\r\n";
  s.erase(0, s.find_first_not_of(ws) == std::string::npos ? s.size() : s.find_first_not_of(ws));
  if (const auto last = s.find_last_not_of(ws); last != std::string::npos) {
    s.erase(last + 1);
  }
  return s;
}

// A scalar field of a map node, "" if absent. Sets error if it is present but not a scalar.
std::string scalar(const YAML::Node& map, const char* key, const std::string& where,
                   std::string& error) {
  const YAML::Node n = map[key];
  if (!n || n.IsNull()) {
    return "";
  }
  if (!n.IsScalar()) {
    if (error.empty()) {
      error = where + "." + key + ": must be a string";
    }
    return "";
  }
  return n.Scalar();
}

// Finds `name` in a kubeconfig list ("clusters", "users", "contexts") and returns its inner map.
YAML::Node findNamed(const YAML::Node& root, const char* list, const char* inner,
                     const std::string& name, std::string& error) {
  const YAML::Node items = root[list];
  if (!items || !items.IsSequence()) {
    error = std::string(list) + ": missing or not a list";
    return {};
  }
  for (const YAML::Node& item : items) {
    if (item.IsMap() && item["name"] && item["name"].IsScalar() && item["name"].Scalar() == name) {
      const YAML::Node body = item[inner];
      if (!body || !body.IsMap()) {
        error = std::string(list) + "[" + name + "]." + inner + ": missing or not a mapping";
        return {};
      }
      return body;
    }
  }
  error = std::string(inner) + " \"" + name + "\" not found in " + list;
  return {};
}

bool parseBool(const std::string& text, bool& out) {
  if (text == "true" || text == "True" || text == "TRUE") {
    out = true;
    return true;
  }
  if (text == "false" || text == "False" || text == "FALSE" || text.empty()) {
    out = false;
    return true;
  }
  return false;
}

// Data field (base64) or file field: returns "" on success with `out` filled (or left empty).
std::string dataOrFile(const YAML::Node& map, const char* data_key, const char* file_key,
                       const std::string& where, const fs::path& dir, std::string& out) {
  std::string error;
  const std::string data = scalar(map, data_key, where, error);
  const std::string file = scalar(map, file_key, where, error);
  if (!error.empty()) {
    return error;
  }
  if (!data.empty()) {
    auto decoded = decodeBase64(data);
    if (!decoded) {
      return where + "." + data_key + ": invalid base64";
    }
    if (decoded->empty()) {
      return where + "." + data_key + ": empty";
    }
    out = std::move(*decoded);
    return "";
  }
  if (!file.empty()) {
    fs::path p(file);
    if (p.is_relative()) {
      p = dir / p;
    }
    if (std::string e = readFile(p, out); !e.empty()) {
      return where + "." + file_key + ": " + e;
    }
    if (out.empty()) {
      return where + "." + file_key + ": " + p.string() + " is empty";
    }
  }
  return "";
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

const std::string& TokenSource::current(bool force) {
  if (path_.empty()) {
    return token_;
  }
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    error_ = "cannot stat token file " + path_.string() + ": " +
             std::error_code(errno, std::generic_category()).message();
    return token_;
  }
  const Stamp stamp{static_cast<std::uint64_t>(st.st_ino), static_cast<std::uint64_t>(st.st_dev),
                    static_cast<std::int64_t>(st.st_size),
                    static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
                        st.st_mtim.tv_nsec};
  if (!force && stamp_ && *stamp_ == stamp) {
    return token_;
  }
  std::string content;
  if (std::string e = readFile(path_, content); !e.empty()) {
    error_ = e;
    return token_;
  }
  content = trim(std::move(content));
  if (content.empty()) {
    // A writer may have truncated the file and not written yet: keep the old token, look again.
    error_ = "token file " + path_.string() + " is empty";
    stamp_.reset();
    return token_;
  }
  error_.clear();
  stamp_ = stamp;
  if (content != token_) {
    token_ = std::move(content);
    ++reloads_;
  }
  return token_;
}

// ---- helpers ----

std::optional<std::string> decodeBase64(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
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

std::string parseServerUrl(std::string_view url, std::string& host, std::string& port) {
  std::string_view rest = url;
  if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  } else if (rest.find("://") != std::string_view::npos) {
    return "server " + std::string(url) + ": only https:// is supported";
  } else if (rest.empty()) {
    return "server: empty";
  }
  // Cut the path ("https://host:6443/" or a proxy prefix; a prefix is not supported).
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    if (rest.substr(slash) != "/") {
      return "server " + std::string(url) + ": a path prefix is not supported";
    }
    rest = rest.substr(0, slash);
  }
  if (rest.starts_with('[')) {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) {
      return "server " + std::string(url) + ": unterminated IPv6 address";
    }
    host = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 1);
    if (rest.starts_with(':')) {
      port = std::string(rest.substr(1));
    } else if (rest.empty()) {
      port = "443";
    } else {
      return "server " + std::string(url) + ": bad port";
    }
  } else {
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
      host = std::string(rest);
      port = "443";
    } else {
      host = std::string(rest.substr(0, colon));
      port = std::string(rest.substr(colon + 1));
    }
  }
  if (host.empty()) {
    return "server " + std::string(url) + ": no host";
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) == 0 || std::stoi(port) > 65535) {
    return "server " + std::string(url) + ": bad port";
  }
  return "";
}

// ---- kubeconfig ----

ConfigResult parseKubeconfig(std::string_view text, const fs::path& dir, std::string_view context,
                             std::string_view origin) {
  ConfigResult result;
  const std::string pre = std::string(origin) + ": ";
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const std::exception& e) {
    result.error = pre + "not valid YAML: " + e.what();
    return result;
  }
  try {
    if (!root.IsMap()) {
      result.error = pre + "not a mapping";
      return result;
    }
    std::string error;
    std::string ctx_name(context);
    if (ctx_name.empty()) {
      ctx_name = scalar(root, "current-context", "kubeconfig", error);
      if (ctx_name.empty() && error.empty()) {
        result.error = pre + "current-context is not set (pass a context)";
        return result;
      }
    }
    if (!error.empty()) {
      result.error = pre + error;
      return result;
    }
    const YAML::Node ctx = findNamed(root, "contexts", "context", ctx_name, error);
    if (!error.empty()) {
      result.error = pre + error;
      return result;
    }
    const std::string where_ctx = "contexts[" + ctx_name + "].context";
    const std::string cluster_name = scalar(ctx, "cluster", where_ctx, error);
    const std::string user_name = scalar(ctx, "user", where_ctx, error);
    ConnectionConfig cfg;
    cfg.ns = scalar(ctx, "namespace", where_ctx, error);
    if (error.empty() && cluster_name.empty()) {
      error = where_ctx + ".cluster: required";
    }
    if (!error.empty()) {
      result.error = pre + error;
      return result;
    }

    const YAML::Node cluster = findNamed(root, "clusters", "cluster", cluster_name, error);
    if (!error.empty()) {
      result.error = pre + error;
      return result;
    }
    const std::string where_cl = "clusters[" + cluster_name + "].cluster";
    cfg.server = scalar(cluster, "server", where_cl, error);
    cfg.tls_server_name = scalar(cluster, "tls-server-name", where_cl, error);
    const std::string insecure = scalar(cluster, "insecure-skip-tls-verify", where_cl, error);
    if (!error.empty()) {
      result.error = pre + error;
      return result;
    }
    if (cfg.server.empty()) {
      result.error = pre + where_cl + ".server: required";
      return result;
    }
    if (std::string e = parseServerUrl(cfg.server, cfg.host, cfg.port); !e.empty()) {
      result.error = pre + where_cl + ": " + e;
      return result;
    }
    if (!parseBool(insecure, cfg.insecure_skip_tls_verify)) {
      result.error = pre + where_cl + ".insecure-skip-tls-verify: not a boolean: " + insecure;
      return result;
    }
    if (std::string e = dataOrFile(cluster, "certificate-authority-data", "certificate-authority",
                                   where_cl, dir, cfg.ca_pem);
        !e.empty()) {
      result.error = pre + e;
      return result;
    }

    if (!user_name.empty()) {
      const YAML::Node user = findNamed(root, "users", "user", user_name, error);
      if (!error.empty()) {
        result.error = pre + error;
        return result;
      }
      const std::string where_u = "users[" + user_name + "].user";
      if (user["exec"] || user["auth-provider"]) {
        result.error = pre + where_u + ": exec and auth-provider credentials are not supported " +
                       "(use a token, tokenFile or client certificate)";
        return result;
      }
      if (user["username"] || user["password"]) {
        result.error = pre + where_u + ": basic authentication is not supported";
        return result;
      }
      const std::string token = scalar(user, "token", where_u, error);
      const std::string token_file = scalar(user, "tokenFile", where_u, error);
      if (!error.empty()) {
        result.error = pre + error;
        return result;
      }
      if (!token.empty()) {
        cfg.token = TokenSource::fixed(trim(token));
      } else if (!token_file.empty()) {
        fs::path p(token_file);
        if (p.is_relative()) {
          p = dir / p;
        }
        cfg.token = TokenSource::file(p);
        cfg.token.current();
        if (!cfg.token.error().empty()) {
          result.error = pre + where_u + ".tokenFile: " + cfg.token.error();
          return result;
        }
      }
      if (std::string e = dataOrFile(user, "client-certificate-data", "client-certificate",
                                     where_u, dir, cfg.client_cert_pem);
          !e.empty()) {
        result.error = pre + e;
        return result;
      }
      if (std::string e =
              dataOrFile(user, "client-key-data", "client-key", where_u, dir, cfg.client_key_pem);
          !e.empty()) {
        result.error = pre + e;
        return result;
      }
      if (cfg.client_cert_pem.empty() != cfg.client_key_pem.empty()) {
        result.error = pre + where_u + ": a client certificate needs both certificate and key";
        return result;
      }
    }
    cfg.source = std::string(origin) + " (context " + ctx_name + ")";
    result.config = std::move(cfg);
  } catch (const std::exception& e) {
    result.config.reset();
    result.error = pre + "unexpected structure: " + e.what();
  }
  return result;
}

ConfigResult loadKubeconfig(const fs::path& path, std::string_view context) {
  ConfigResult result;
  std::string text;
  if (std::string e = readFile(path, text); !e.empty()) {
    result.error = "kubeconfig: " + e;
    return result;
  }
  fs::path dir = path.parent_path();
  if (dir.empty()) {
    dir = ".";
  }
  return parseKubeconfig(text, dir, context, "kubeconfig " + path.string());
}

ConfigResult inCluster(const InClusterPaths& paths) {
  ConfigResult result;
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || *host == '\0' || port == nullptr || *port == '\0') {
    result.error =
        "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set "
        "(not running in a pod? pass --kubeconfig)";
    return result;
  }
  ConnectionConfig cfg;
  const std::string h(host);
  cfg.server = "https://" + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + port;
  if (std::string e = parseServerUrl(cfg.server, cfg.host, cfg.port); !e.empty()) {
    result.error = "in-cluster: " + e;
    return result;
  }
  if (std::string e = readFile(paths.dir / "ca.crt", cfg.ca_pem); !e.empty()) {
    result.error = "in-cluster: " + e;
    return result;
  }
  cfg.token = TokenSource::file(paths.dir / "token");
  if (cfg.token.current().empty()) {
    result.error = "in-cluster: " + cfg.token.error();
    return result;
  }
  std::string ns;
  if (readFile(paths.dir / "namespace", ns).empty()) {
    cfg.ns = trim(ns);
  }
  cfg.source = "in-cluster";
  result.config = std::move(cfg);
  return result;
}

}  // namespace sluice::k8s::api
