#include "fake.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

namespace sluice::test {

namespace fs = std::filesystem;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;

void writeFileAtomic(const fs::path& path, const std::string& content) {
  const fs::path tmp = path.parent_path() / ("." + path.filename().string() + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
  }
  fs::rename(tmp, path);
}

std::string readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

k8s::api::ConnectionConfig fakeConnection(const FakeApiServer& fake, const fs::path& token_file) {
  k8s::api::ConnectionConfig cfg;
  cfg.server = fake.server();
  auto url = k8s::api::parseServerUrl(cfg.server);
  cfg.host = url->host;
  cfg.port = url->port;
  cfg.ca_pem = readFile(fake.ca());
  cfg.token = k8s::api::TokenSource::file(token_file);
  cfg.source = "test";
  return cfg;
}

IoThread::IoThread() : guard_(ioc_.get_executor()), thread_([this] { ioc_.run(); }) {}

IoThread::~IoThread() {
  windDown(std::chrono::seconds(10));
}

bool IoThread::windDown(std::chrono::milliseconds timeout) {
  if (!thread_.joinable()) {
    return true;
  }
  guard_.reset();
  const bool drained = eventually([&] { return ioc_.stopped(); }, timeout);
  ioc_.stop();
  thread_.join();
  return drained;
}

FakeApiServer::FakeApiServer(const std::string& slice_versions) {
  std::random_device rd;
  dir_ = fs::temp_directory_path() /
         ("sluice-fakeapi-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
  fs::create_directories(dir_);
  writeFileAtomic(serverTokenFile(), "token-1\n");
  const std::string script = SLUICE_FAKE_APISERVER;
  const std::string dir = dir_.string();
  const std::string token = serverTokenFile().string();
  const std::string log = (dir_ / "fake.log").string();
  pid_ = ::fork();
  if (pid_ == 0) {
    FILE* f = std::freopen(log.c_str(), "w", stderr);
    (void)f;
    ::execlp("python3", "python3", script.c_str(), "--dir", dir.c_str(), "--token-file",
             token.c_str(), "--slice-versions", slice_versions.c_str(), nullptr);
    ::_exit(127);
  }
  if (pid_ < 0) {
    throw std::runtime_error("fork failed");
  }
  const fs::path ready = dir_ / "ready.json";
  if (!eventually([&] { return fs::exists(ready); }, std::chrono::seconds(30))) {
    throw std::runtime_error("fake API server did not start: " + readFile(dir_ / "fake.log"));
  }
  json::value v = json::parse(readFile(ready));
  port_ = static_cast<int>(v.at("port").as_int64());
  control_port_ = static_cast<int>(v.at("control_port").as_int64());
}

FakeApiServer::~FakeApiServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

json::value FakeApiServer::control(const std::string& method, const std::string& path,
                                   const std::string& body) {
  boost::asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.expires_after(std::chrono::seconds(10));
  stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"),
                                                static_cast<unsigned short>(control_port_)));
  http::request<http::string_body> req{http::string_to_verb(method), path, 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(stream, buf, res);
  if (res.result_int() / 100 != 2) {
    throw std::runtime_error("control " + method + " " + path + ": " +
                             std::to_string(res.result_int()) + " " + res.body());
  }
  return json::parse(res.body());
}

std::string FakeApiServer::apply(const std::string& object_json) {
  json::value v = control("POST", "/apply", object_json);
  return std::string(v.at("metadata").at("resourceVersion").as_string());
}

void FakeApiServer::remove(const std::string& kind, const std::string& ns,
                           const std::string& name) {
  json::object o{{"kind", kind}, {"namespace", ns}, {"name", name}};
  control("POST", "/delete", json::serialize(o));
}

int FakeApiServer::watchers(const std::string& plural) {
  json::value v = control("GET", "/watchers");
  const json::value* n = v.as_object().if_contains(plural);
  return n != nullptr ? static_cast<int>(n->as_int64()) : 0;
}

}  // namespace sluice::test
