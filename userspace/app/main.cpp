#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "app/agent.hpp"
#include "app/datapath_probe.hpp"
#include "app/flags.hpp"
#include "tls/block_pool.hpp"

namespace {

// Whether `pid` is still running: a zombie (exited, not yet reaped by its parent) counts as gone.
bool running(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) {
    return false;
  }
  const auto paren = stat.rfind(')');  // the command name may contain anything but this
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z' &&
         stat[paren + 2] != 'X';
}

// The preStop hook: SIGTERM the agent, then wait until it has drained and exited (bounded by the
// shutdown delay plus the drain timeout, and a margin). In the container the agent is PID 1, and
// when it exits the kernel ends this process too; either way the hook returns after the drain.
int waitShutdown(const sluice::app::AgentConfig& config) {
  const pid_t pid = config.wait_shutdown_pid;
  if (::kill(pid, SIGTERM) != 0) {
    const int err = errno;
    if (err == ESRCH) {
      return 0;  // already gone is what we wanted
    }
    std::fprintf(stderr, "ingress-agent --wait-shutdown: cannot signal PID %d: %s\n", pid,
                 std::strerror(err));
    return 1;
  }
  const auto deadline = std::chrono::steady_clock::now() + config.shutdown_delay +
                        config.drain_timeout + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!running(pid)) {
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::fprintf(stderr, "ingress-agent --wait-shutdown: PID %d still running after the drain\n",
               pid);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], sluice::app::kVerifyDatapathFlag) == 0) {
    return sluice::app::runVerifyDatapath();  // the startup probe's child (datapath_probe.hpp)
  }
  if (argc == 3 && std::strcmp(argv[1], sluice::app::kLoadDatapathFlag) == 0) {
    return sluice::app::runLoadDatapath(argv[2]);  // the datapath's loader (datapath_probe.hpp)
  }
  // Before anything can touch OpenSSL (the two children above never do): its per-request and
  // per-handshake buffers come from a region of their own (tls/block_pool.hpp). The agent logs
  // it if this fails.
  sluice::tls::installOpenSslAllocator();
  auto parsed = sluice::app::parseArgs(argc, argv);
  if (!parsed) {
    std::fprintf(stderr, "ingress-agent: %s\n", parsed.error().message().c_str());
    return 2;
  }
  if (!*parsed) {
    return 0;  // --help or --version
  }
  sluice::app::AgentConfig& config = **parsed;
  if (config.wait_shutdown_pid != 0) {
    return waitShutdown(config);
  }
  sluice::app::Agent agent(std::move(config));
  return agent.run();
}
