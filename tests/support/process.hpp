// Processes and files for tests: a temporary directory, a child process with its output in a
// file (the agent, backends), and a run-to-completion helper that captures stdout and stderr
// (ingressctl, bpftool, ss).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace sluice::test {

using namespace std::chrono_literals;

class TempDir {
public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  // Writes atomically (temp file + rename), as an editor or a ConfigMap update would.
  void write(const std::string& name, const std::string& content) const;
  void remove(const std::string& name) const;

private:
  std::filesystem::path path_;
};

// A child process; killed (SIGKILL) on destruction if still running.
class Process {
public:
  Process(const std::vector<std::string>& argv, const std::filesystem::path& output_file);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  pid_t pid() const { return pid_; }
  void signal(int signo) const;
  // Waits for exit up to `timeout`; returns the exit status (or -signal), nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  bool running();
  std::string output() const;

private:
  pid_t pid_ = -1;
  std::filesystem::path output_;
  std::optional<int> status_;
};

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::ostream& operator<<(std::ostream& os, const RunResult& r);

// Runs argv[0] with stdout and stderr captured; kills it after `timeout`.
RunResult run(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 30s);

// Polls `pred` every 20 ms until it holds or `timeout` passed; its last answer.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 20s);

}  // namespace sluice::test
