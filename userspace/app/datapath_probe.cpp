#include "app/datapath_probe.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "bpf/splice_datapath.hpp"

extern char** environ;

namespace sluice::app {

namespace {

// The answer on the wire: "ok\n", or "error <code>\n<context>" (context to the end).
std::string encode(const Result<void>& r) {
  return r ? std::string("ok\n")
           : "error " + std::to_string(r.error().code()) + "\n" + r.error().context();
}

std::optional<Result<void>> decode(const std::string& text) {
  if (text == "ok\n") {
    return Result<void>{success()};
  }
  const auto nl = text.find('\n');
  if (text.rfind("error ", 0) != 0 || nl == std::string::npos) {
    return std::nullopt;
  }
  int code = 0;
  try {
    code = std::stoi(text.substr(6, nl - 6));
  } catch (...) {
    return std::nullopt;
  }
  std::string context = text.substr(nl + 1);
  return Result<void>{code == 0 ? Error(std::move(context)) : Error(code, std::move(context))};
}

// A child's exit: its answer on stdout; 0 when it was written (whatever it says).
int writeAnswer(const Result<void>& r) {
  const std::string answer = encode(r);
  return std::fwrite(answer.data(), 1, answer.size(), stdout) == answer.size() ? 0 : 1;
}

// Runs /proc/self/exe with `args` and decodes its answer; nullopt if it could not be run or
// said nothing readable.
std::optional<Result<void>> askChild(std::initializer_list<const char*> args) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return std::nullopt;
  }
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  std::vector<std::string> storage = {"/proc/self/exe"};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : storage) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  std::string text;
  if (rc == 0) {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
      text.append(buf, static_cast<std::size_t>(n > 0 ? n : 0));
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  ::close(fds[0]);
  return decode(text);
}

}  // namespace

int runVerifyDatapath() {
  return writeAnswer(bpf::SpliceDatapath::verify());
}

Result<void> verifyDatapathInChild() {
  if (auto answer = askChild({kVerifyDatapathFlag})) {
    return std::move(*answer);
  }
  return bpf::SpliceDatapath::verify();
}

int runLoadDatapath(const char* pin_root) {
  auto opened = bpf::SpliceDatapath::open({pin_root});
  if (opened) {
    (*opened)->handOver();
  }
  return writeAnswer(opened ? Result<void>{success()} : opened.error());
}

Result<std::unique_ptr<bpf::SpliceDatapath>> openDatapathInChild(const bpf::Options& options) {
  auto answer = askChild({kLoadDatapathFlag, options.pin_root.c_str()});
  if (answer && !*answer) {
    return answer->error();
  }
  if (answer) {
    if (auto adopted = bpf::SpliceDatapath::adopt(options)) {
      return adopted;
    }
  }
  return bpf::SpliceDatapath::open(options);
}

}  // namespace sluice::app
