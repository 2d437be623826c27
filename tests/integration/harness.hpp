// Integration-test harness: starts the real ingress-agent binary and real echo backends (Python,
// an independent HTTP implementation) on loopback, writes manifests, and speaks raw HTTP/1.1 so
// tests control every byte on the wire.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "support/byte_stream.hpp"
#include "support/process.hpp"
#include "support/sockets.hpp"

namespace sluice::test {

using namespace std::chrono_literals;

class EchoBackend {
public:
  // port 0: any free port.
  explicit EchoBackend(const std::string& service, const std::string& address = "127.0.0.1",
                       std::uint16_t port = 0);
  std::uint16_t port() const { return port_; }
  const std::string& address() const { return address_; }
  // Requests this backend received so far (one per line in its log).
  std::size_t requestsSeen() const;
  void kill();

private:
  std::string address_;
  TempDir dir_;
  std::filesystem::path log_;
  std::optional<Process> proc_;
  std::uint16_t port_ = 0;
};

struct AgentOptions {
  std::vector<std::string> extra_args;
  unsigned workers = 2;
};

class Agent {
public:
  Agent(const std::filesystem::path& manifests, AgentOptions options = {});
  ~Agent();
  std::uint16_t port() const { return port_; }
  std::uint16_t adminPort() const { return admin_port_; }
  std::uint16_t httpsPort() const { return https_port_; }
  Process& process() { return *proc_; }
  // Waits until /debug/state reports a generation > `after` (a new config applied).
  std::uint64_t waitGeneration(std::uint64_t after, std::chrono::milliseconds timeout = 5s);
  std::uint64_t generation();
  std::string output() const { return proc_->output(); }

private:
  TempDir dir_;
  std::optional<Process> proc_;
  std::uint16_t port_ = 0;
  std::uint16_t admin_port_ = 0;
  std::uint16_t https_port_ = 0;
};

struct Response {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool closed = false;  // the server closed the connection after this response
  std::optional<std::string> header(const std::string& name) const;
  boost::json::value json() const;
};

// A blocking HTTP/1.1 client over one TCP connection with a per-operation timeout.
class Connection {
public:
  // `source`: the local address to connect from ("" = the kernel's choice), e.g. 127.0.0.2 to
  // be a peer outside --trusted-proxies 127.0.0.1/32.
  explicit Connection(std::uint16_t port, const std::string& address = "127.0.0.1",
                      const std::string& source = "");
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  bool send(std::string_view bytes);
  // Reads one response; nullopt when the connection closed or timed out before a whole one.
  // `head_request`: the response to HEAD has no body.
  std::optional<Response> read(bool head_request = false, std::chrono::milliseconds timeout = 10s);
  // Reads until EOF or timeout; returns whatever arrived.
  std::string readAll(std::chrono::milliseconds timeout = 5s);
  // True when the peer closed (EOF or reset) within `timeout`.
  bool waitClosed(std::chrono::milliseconds timeout = 5s);
  int fd() const { return fd_; }
  void shutdownWrite();

private:
  bool fill(std::chrono::milliseconds timeout);
  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
};

// One request on a new connection: method, host, path, optional extra header lines and body.
std::optional<Response> request(std::uint16_t port, const std::string& method,
                                const std::string& host, const std::string& path,
                                const std::string& extra_headers = "",
                                const std::string& body = "");

std::string httpGet(std::uint16_t port, const std::string& path);
// The value of the agent's /metrics sample named exactly `sample` (labels included), or -1.
double metricValue(std::uint16_t admin_port, const std::string& sample);
// VmRSS of process `pid` in KiB (/proc/PID/status), or -1 if unreadable.
long rssKiB(pid_t pid);

// The echo backend's "service" field of a reply, or "<status>" for a reply that is not the
// backend's (an agent 404/503), or "<no response>".
std::string served(const std::optional<Response>& r);  // admin helper: body or ""

// Manifest builders (YAML as `kubectl get -o yaml` writes it, minus noise).
struct Path {
  std::string path;
  std::string type;  // Exact, Prefix, ImplementationSpecific
  std::string service;
  std::string port;  // number or name
};
struct Rule {
  std::string host;  // "" = no host
  std::vector<Path> paths;
};
std::string ingressYaml(const std::string& name, const std::vector<Rule>& rules,
                        const std::string& default_service = "",
                        const std::string& default_port = "",
                        const std::string& class_name = "sluice", const std::string& ns = "default",
                        const std::string& created = "2024-01-01T00:00:00Z",
                        const std::string& annotations = "");
std::string ingressClassYaml(const std::string& name = "sluice",
                             const std::string& controller = "sluice.dev/ingress",
                             bool is_default = false);
// A Service with one port `port` (named `port_name`) and an EndpointSlice listing `endpoints`
// (address, port, ready) for it.
struct Ep {
  std::string address;
  std::uint16_t port;
  bool ready = true;
  bool serving = true;
  bool terminating = false;
};
std::string serviceYaml(const std::string& name, int port, const std::string& port_name,
                        const std::vector<Ep>& endpoints, const std::string& ns = "default",
                        const std::string& annotations = "");

}  // namespace sluice::test
