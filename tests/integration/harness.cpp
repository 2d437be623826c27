#include "harness.hpp"

#include <arpa/inet.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace sluice::test {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

EchoBackend::EchoBackend(const std::string& service, const std::string& address, std::uint16_t port)
    : address_(address), log_(dir_.path() / "requests.log") {
  const fs::path out = dir_.path() / "stdout";
  proc_.emplace(std::vector<std::string>{"/usr/bin/python3", SLUICE_ECHO_BACKEND, "--name", service,
                                         "--listen", address + ":" + std::to_string(port), "--log",
                                         log_.string()},
                out);
  const auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline) {
    std::string text = proc_->output();
    if (auto pos = text.find("PORT ");
        pos != std::string::npos && text.find('\n', pos) != std::string::npos) {
      port_ = static_cast<std::uint16_t>(std::stoi(text.substr(pos + 5)));
      return;
    }
    std::this_thread::sleep_for(20ms);
  }
  throw std::runtime_error("echo backend did not start: " + proc_->output());
}

std::size_t EchoBackend::requestsSeen() const {
  std::ifstream in(log_);
  std::size_t n = 0;
  std::string line;
  while (std::getline(in, line)) {
    ++n;
  }
  return n;
}

void EchoBackend::kill() {
  proc_.reset();
}

Agent::Agent(const fs::path& manifests, AgentOptions options) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = freePort();
    admin_port_ = freePort();
    https_port_ = freePort();
    std::vector<std::string> argv{SLUICE_AGENT_BIN};
    if (!manifests.empty()) {  // empty: the source comes from extra_args (--kubeconfig)
      argv.insert(argv.end(), {"--manifests", manifests.string()});
    }
    argv.insert(argv.end(), {"--listen-http", "127.0.0.1:" + std::to_string(port_), "--admin",
                             "127.0.0.1:" + std::to_string(admin_port_), "--workers",
                             std::to_string(options.workers), "--log-level", "info"});
    if (std::find(options.extra_args.begin(), options.extra_args.end(), "--listen-https") ==
        options.extra_args.end()) {
      argv.insert(argv.end(), {"--listen-https", "127.0.0.1:" + std::to_string(https_port_)});
    }
    argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
    proc_.emplace(argv, dir_.path() / "agent.log");
    const auto deadline = Clock::now() + 10s;
    while (Clock::now() < deadline && proc_->running()) {
      if (httpGet(admin_port_, "/readyz") == "ready\n") {
        return;
      }
      std::this_thread::sleep_for(20ms);
    }
    if (proc_->running()) {
      break;
    }
    // Port race with another test: try new ports.
  }
  throw std::runtime_error("agent did not become ready: " + proc_->output());
}

Agent::~Agent() {
  if (proc_ && proc_->running()) {
    proc_->signal(SIGKILL);
    proc_->wait(5s);
  }
}

std::uint64_t Agent::generation() {
  std::string body = httpGet(admin_port_, "/debug/state");
  if (body.empty()) {
    return 0;
  }
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) {
    return 0;
  }
  return v.as_object().at("generation").to_number<std::uint64_t>();
}

std::uint64_t Agent::waitGeneration(std::uint64_t after, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    std::uint64_t g = generation();
    if (g > after || Clock::now() >= deadline) {
      return g;
    }
    std::this_thread::sleep_for(20ms);
  }
}

std::optional<std::string> Response::header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
          return std::tolower(a) == std::tolower(b);
        })) {
      return v;
    }
  }
  return std::nullopt;
}

boost::json::value Response::json() const {
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  return ec ? boost::json::value() : v;
}

Connection::Connection(std::uint16_t port, const std::string& address, const std::string& source) {
  const bool v6 = address.find(':') != std::string::npos;
  fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int rc;
  if (v6) {
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_port = htons(port);
    ::inet_pton(AF_INET6, address.c_str(), &addr.sin6_addr);
    rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } else {
    if (!source.empty()) {
      sockaddr_in local{};
      local.sin_family = AF_INET;
      ::inet_pton(AF_INET, source.c_str(), &local.sin_addr);
      if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
        ::close(fd_);
        fd_ = -1;
        return;
      }
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    ::inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
    rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  if (rc != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

Connection::~Connection() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

bool Connection::send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

void Connection::shutdownWrite() {
  ::shutdown(fd_, SHUT_WR);
}

bool Connection::fill(std::chrono::milliseconds timeout) {
  if (eof_ || fd_ < 0) {
    return false;
  }
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
    return false;
  }
  char tmp[65536];
  ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
  if (n <= 0) {
    eof_ = true;
    return false;
  }
  buf_.append(tmp, static_cast<std::size_t>(n));
  return true;
}

std::optional<Response> Connection::read(bool head_request, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto left = [&]() {
    return std::max(0ms,
                    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
  };
  for (;;) {
    std::size_t end = buf_.find("\r\n\r\n");
    while (end == std::string::npos) {
      if (!fill(left())) {
        return std::nullopt;
      }
      end = buf_.find("\r\n\r\n");
    }
    Response r;
    std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    std::istringstream lines(head);
    std::string line;
    std::getline(lines, line);
    if (line.size() < 12 || line.compare(0, 5, "HTTP/") != 0) {
      return std::nullopt;
    }
    r.status = std::stoi(line.substr(9, 3));
    r.reason = line.size() > 13 ? line.substr(13) : "";
    if (!r.reason.empty() && r.reason.back() == '\r') {
      r.reason.pop_back();
    }
    while (std::getline(lines, line)) {
      if (!line.empty() && line.back() == '\r') {
        line.pop_back();
      }
      auto colon = line.find(':');
      if (colon == std::string::npos) {
        continue;
      }
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      r.headers.emplace_back(line.substr(0, colon), value);
    }
    if (r.status >= 100 && r.status < 200 && r.status != 101) {
      continue;  // interim response: the final one follows
    }
    auto te = r.header("Transfer-Encoding");
    auto cl = r.header("Content-Length");
    if (head_request || r.status == 204 || r.status == 304 || r.status == 101) {
      // no body
    } else if (te && te->find("chunked") != std::string::npos) {
      for (;;) {
        std::size_t eol;
        while ((eol = buf_.find("\r\n")) == std::string::npos) {
          if (!fill(left())) {
            return std::nullopt;
          }
        }
        std::size_t size = std::stoul(buf_.substr(0, eol), nullptr, 16);
        buf_.erase(0, eol + 2);
        if (size == 0) {
          while ((eol = buf_.find("\r\n")) == std::string::npos) {
            if (!fill(left())) {
              return std::nullopt;
            }
          }
          // trailers until an empty line
          while (eol != 0) {
            buf_.erase(0, eol + 2);
            while ((eol = buf_.find("\r\n")) == std::string::npos) {
              if (!fill(left())) {
                return std::nullopt;
              }
            }
          }
          buf_.erase(0, 2);
          break;
        }
        while (buf_.size() < size + 2) {
          if (!fill(left())) {
            return std::nullopt;
          }
        }
        r.body.append(buf_, 0, size);
        buf_.erase(0, size + 2);
      }
    } else if (cl) {
      std::size_t n = std::stoul(*cl);
      while (buf_.size() < n) {
        if (!fill(left())) {
          return std::nullopt;
        }
      }
      r.body = buf_.substr(0, n);
      buf_.erase(0, n);
    } else {
      while (fill(left())) {
      }
      r.body = std::move(buf_);
      buf_.clear();
      r.closed = true;
    }
    auto conn = r.header("Connection");
    if (conn && (conn->find("close") != std::string::npos)) {
      r.closed = true;
    }
    return r;
  }
}

std::string Connection::readAll(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline &&
         fill(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()))) {
  }
  std::string out = std::move(buf_);
  buf_.clear();
  return out;
}

bool Connection::waitClosed(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!eof_ && Clock::now() < deadline) {
    fill(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
  }
  return eof_;
}

std::optional<Response> request(std::uint16_t port, const std::string& method,
                                const std::string& host, const std::string& path,
                                const std::string& extra_headers, const std::string& body) {
  Connection c(port);
  std::string req = method + " " + path + " HTTP/1.1\r\n";
  if (!host.empty()) {
    req += "Host: " + host + "\r\n";
  }
  req += extra_headers;
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n" + body;
  // A server may answer (413, 400) and close before taking the whole body: read regardless.
  c.send(req);
  return c.read(method == "HEAD");
}

std::string httpGet(std::uint16_t port, const std::string& path) {
  Connection c(port);
  if (c.fd() < 0 ||
      !c.send("GET " + path + " HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")) {
    return "";
  }
  auto r = c.read(false, 5s);
  return r ? r->body : "";
}

std::string served(const std::optional<Response>& r) {
  if (!r) {
    return "<no response>";
  }
  auto v = r->json();
  if (!v.is_object() || !v.as_object().contains("service")) {
    return "<" + std::to_string(r->status) + ">";
  }
  return std::string(v.as_object().at("service").as_string());
}

std::string ingressYaml(const std::string& name, const std::vector<Rule>& rules,
                        const std::string& default_service, const std::string& default_port,
                        const std::string& class_name, const std::string& ns,
                        const std::string& created, const std::string& annotations) {
  auto backend = [](const std::string& indent, const std::string& svc, const std::string& port) {
    const bool numeric = !port.empty() && std::all_of(port.begin(), port.end(), ::isdigit);
    return indent + "service:\n" + indent + "  name: " + svc + "\n" + indent + "  port:\n" +
           indent + "    " + (numeric ? "number: " : "name: ") + port + "\n";
  };
  std::string y = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: " + name +
                  "\n  namespace: " + ns + "\n  creationTimestamp: \"" + created + "\"\n";
  if (!annotations.empty()) {
    y += "  annotations:\n" + annotations;
  }
  y += "spec:\n";
  if (!class_name.empty()) {
    y += "  ingressClassName: " + class_name + "\n";
  }
  if (!default_service.empty()) {
    y += "  defaultBackend:\n" + backend("    ", default_service, default_port);
  }
  if (!rules.empty()) {
    y += "  rules:\n";
    for (const auto& r : rules) {
      y += "  - ";
      if (!r.host.empty()) {
        y += "host: \"" + r.host + "\"\n    ";
      }
      y += "http:\n      paths:\n";
      for (const auto& p : r.paths) {
        y += "      - path: " + p.path + "\n        pathType: " + p.type + "\n        backend:\n" +
             backend("          ", p.service, p.port);
      }
    }
  }
  return y;
}

std::string ingressClassYaml(const std::string& name, const std::string& controller,
                             bool is_default) {
  std::string y =
      "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: " + name + "\n";
  if (is_default) {
    y += "  annotations:\n    ingressclass.kubernetes.io/is-default-class: \"true\"\n";
  }
  y += "spec:\n  controller: " + controller + "\n";
  return y;
}

std::string serviceYaml(const std::string& name, int port, const std::string& port_name,
                        const std::vector<Ep>& endpoints, const std::string& ns,
                        const std::string& annotations) {
  std::string y =
      "apiVersion: v1\nkind: Service\nmetadata:\n  name: " + name + "\n  namespace: " + ns + "\n";
  if (!annotations.empty()) {
    y += "  annotations:\n" + annotations;
  }
  y += "spec:\n  type: ClusterIP\n  ports:\n  - port: " + std::to_string(port) +
       "\n    protocol: TCP\n";
  if (!port_name.empty()) {
    y += "    name: " + port_name + "\n";
  }
  y += "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: " + name +
       "-abc12\n  namespace: " + ns + "\n  labels:\n    kubernetes.io/service-name: " + name +
       "\naddressType: IPv4\n";
  // Endpoints in one slice share a port; group by port into several slices if they differ.
  std::map<std::uint16_t, std::vector<Ep>> by_port;
  for (const auto& e : endpoints) {
    by_port[e.port].push_back(e);
  }
  if (by_port.empty()) {
    y += "endpoints: []\nports:\n- port: 1\n  protocol: TCP\n";
    if (!port_name.empty()) {
      y += "  name: " + port_name + "\n";
    }
    return y;
  }
  bool first = true;
  int idx = 0;
  for (const auto& [p, eps] : by_port) {
    if (!first) {
      y += "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: " + name +
           "-x" + std::to_string(idx) + "\n  namespace: " + ns +
           "\n  labels:\n    kubernetes.io/service-name: " + name + "\naddressType: IPv4\n";
    }
    first = false;
    ++idx;
    y += "endpoints:\n";
    for (const auto& e : eps) {
      y += "- addresses:\n  - " + e.address +
           "\n  conditions:\n    ready: " + (e.ready ? "true" : "false") +
           "\n    serving: " + (e.serving ? "true" : "false") +
           "\n    terminating: " + (e.terminating ? "true" : "false") + "\n";
    }
    y += "ports:\n- port: " + std::to_string(p) + "\n  protocol: TCP\n";
    if (!port_name.empty()) {
      y += "  name: " + port_name + "\n";
    }
  }
  return y;
}

long rssKiB(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::stol(line.substr(6));
    }
  }
  return -1;
}

double metricValue(std::uint16_t admin_port, const std::string& sample) {
  std::istringstream in(httpGet(admin_port, "/metrics"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(sample + " ", 0) == 0) {
      return std::stod(line.substr(sample.size() + 1));
    }
  }
  return -1;
}

}  // namespace sluice::test
