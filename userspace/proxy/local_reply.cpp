#include "proxy/local_reply.hpp"

#include <array>
#include <string>

namespace sluice::proxy {
namespace {

struct Text {
  int status;
  const char* reason;
  const char* body;
};

constexpr std::array<Text, static_cast<std::size_t>(LocalReply::kCount)> kTexts = {{
    {400, "Bad Request", "bad request\n"},
    {404, "Not Found", "no route\n"},
    {408, "Request Timeout", "request timeout\n"},
    {413, "Content Too Large", "request body too large\n"},
    {414, "URI Too Long", "request line too long\n"},
    {431, "Request Header Fields Too Large", "request header too large\n"},
    {502, "Bad Gateway", "upstream failure\n"},
    {503, "Service Unavailable", "no endpoints\n"},
    {504, "Gateway Timeout", "upstream timeout\n"},
    {403, "Forbidden", "source address not allowed\n"},
}};

struct Table {
  std::array<std::string, kTexts.size()> keep_alive;
  std::array<std::string, kTexts.size()> close;
  Table() {
    for (std::size_t i = 0; i < kTexts.size(); ++i) {
      const Text& t = kTexts[i];
      std::string body = t.body;
      std::string head = "HTTP/1.1 " + std::to_string(t.status) + " " + t.reason +
                         "\r\nServer: sluice\r\nContent-Type: text/plain; charset=utf-8\r\n"
                         "Cache-Control: no-store\r\nContent-Length: " +
                         std::to_string(body.size()) + "\r\n";
      keep_alive[i] = head + "\r\n" + body;
      close[i] = head + "Connection: close\r\n\r\n" + body;
    }
  }
};

const Table& table() {
  static const Table t;
  return t;
}

}  // namespace

std::string_view localReply(LocalReply reply, bool close) {
  const auto i = static_cast<std::size_t>(reply);
  return close ? table().close[i] : table().keep_alive[i];
}

}  // namespace sluice::proxy
