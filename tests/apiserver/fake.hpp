// Runs tests/fakeapi/fake_apiserver.py in a temporary directory and talks to its control port.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <optional>
#include <string>
#include <thread>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/json/value.hpp>

#include "k8s/api/kubeconfig.hpp"
#include "support/process.hpp"
#include "support/result.hpp"

namespace sluice::test {

class FakeApiServer {
public:
  // Starts the fake (generating its CA, server and client certificates) and waits until it
  // listens. `slice_versions`: the discovery.k8s.io versions it serves, e.g. "v1,v1beta1".
  explicit FakeApiServer(const std::string& slice_versions = "v1,v1beta1");
  ~FakeApiServer();
  FakeApiServer(const FakeApiServer&) = delete;
  FakeApiServer& operator=(const FakeApiServer&) = delete;

  const std::filesystem::path& dir() const { return dir_; }
  int port() const { return port_; }
  std::string server() const { return "https://127.0.0.1:" + std::to_string(port_); }
  std::filesystem::path ca() const { return dir_ / "ca.crt"; }
  std::filesystem::path clientCert() const { return dir_ / "client.crt"; }
  std::filesystem::path clientKey() const { return dir_ / "client.key"; }
  // The token file the fake checks requests against (initially "token-1").
  std::filesystem::path serverTokenFile() const { return dir_ / "server-token"; }

  // Control API; throws on a transport failure or non-2xx reply.
  boost::json::value control(const std::string& method, const std::string& path,
                             const std::string& body = "");
  std::string apply(const std::string& object_json);  // returns the new resourceVersion
  void remove(const std::string& kind, const std::string& ns, const std::string& name);
  void fault(const std::string& json) { control("POST", "/fault", json); }
  boost::json::value objects() { return control("GET", "/objects"); }
  boost::json::value requests() { return control("GET", "/requests"); }
  int watchers(const std::string& plural);

private:
  std::filesystem::path dir_;
  pid_t pid_ = -1;
  int port_ = 0;
  int control_port_ = 0;
};

// Client configuration for the fake: its CA, and a bearer token read from `token_file`.
k8s::api::ConnectionConfig fakeConnection(const FakeApiServer& fake,
                                          const std::filesystem::path& token_file);

// An io_context on its own thread, like the agent's control thread.
class IoThread {
public:
  IoThread();
  ~IoThread();  // windDown() if still running
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  boost::asio::io_context& context() { return ioc_; }
  boost::asio::any_io_executor executor() { return ioc_.get_executor(); }

  // Runs `f` on the thread and returns its result.
  template <class F>
  auto run(F&& f) {
    std::packaged_task<decltype(f())()> task(std::forward<F>(f));
    auto fut = task.get_future();
    boost::asio::post(ioc_, [&task] { task(); });
    return fut.get();
  }

  // Drops the work guard and waits up to `timeout` for the loop to run out of work; then stops
  // and joins it. False if the work did not end by itself (a coroutine that never finishes).
  bool windDown(std::chrono::milliseconds timeout);

private:
  boost::asio::io_context ioc_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard_;
  std::thread thread_;
};

// Writes a file atomically (temp + rename), as kubelet and editors do.
void writeFileAtomic(const std::filesystem::path& path, const std::string& content);
std::string readFile(const std::filesystem::path& path);

}  // namespace sluice::test
