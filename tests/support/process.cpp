#include "support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace sluice::test {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// Closes a descriptor on scope exit.
class Fd {
public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { ::close(fd_); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int fd() const { return fd_; }

private:
  int fd_;
};

}  // namespace

TempDir::TempDir() {
  std::random_device rd;
  path_ = fs::temp_directory_path() /
          ("sluice-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void TempDir::write(const std::string& name, const std::string& content) const {
  const fs::path tmp = path_ / ("." + name + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
  }
  fs::rename(tmp, path_ / name);
}

void TempDir::remove(const std::string& name) const {
  fs::remove(path_ / name);
}

Process::Process(const std::vector<std::string>& argv, const fs::path& output_file)
    : output_(output_file) {
  std::vector<char*> args;
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ == 0) {
    int fd = ::open(output_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    ::setpgid(0, 0);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  if (pid_ < 0) {
    throw std::runtime_error("fork failed");
  }
}

Process::~Process() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
}

void Process::signal(int signo) const {
  ::kill(pid_, signo);
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!status_) {
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
      break;
    }
    if (Clock::now() >= deadline) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(10ms);
  }
  return status_;
}

bool Process::running() {
  return !wait(0ms).has_value();
}

std::string Process::output() const {
  std::ifstream in(output_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::ostream& operator<<(std::ostream& os, const RunResult& r) {
  return os << "exit " << r.exit_code << "\n--- stdout\n" << r.out << "--- stderr\n" << r.err;
}

RunResult run(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  RunResult result;
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    return result;
  }
  std::vector<char*> argv;
  for (const auto& a : args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  Fd out(out_pipe[0]);
  Fd err(err_pipe[0]);
  const auto deadline = Clock::now() + timeout;
  bool open[2] = {true, true};
  while ((open[0] || open[1]) && Clock::now() < deadline) {
    pollfd fds[2] = {{open[0] ? out.fd() : -1, POLLIN, 0}, {open[1] ? err.fd() : -1, POLLIN, 0}};
    if (::poll(fds, 2, 500) <= 0) {
      continue;
    }
    char buf[8192];
    for (int i = 0; i < 2; ++i) {
      if (!open[i] || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
        continue;
      }
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        open[i] = false;
      } else {
        (i == 0 ? result.out : result.err).append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  if (pid > 0) {
    if (open[0] || open[1]) {
      ::kill(pid, SIGKILL);
    }
    int st = 0;
    ::waitpid(pid, &st, 0);
    result.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
  return result;
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (pred()) {
      return true;
    }
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

}  // namespace sluice::test
