#include "sock_diag.hpp"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace sluice::cli {
namespace {

class NetlinkSocket {
public:
  NetlinkSocket() : fd_(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)) {}
  NetlinkSocket(const NetlinkSocket&) = delete;
  NetlinkSocket& operator=(const NetlinkSocket&) = delete;
  ~NetlinkSocket() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  int get() const { return fd_; }

private:
  int fd_;
};

std::string formatAddress(std::uint8_t family, const __be32* addr, __be16 port_be) {
  char text[INET6_ADDRSTRLEN] = {};
  const unsigned port = ntohs(port_be);
  if (family == AF_INET6) {
    in6_addr a6{};
    std::memcpy(&a6, addr, sizeof(a6));
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
      in_addr a4{};
      std::memcpy(&a4, &a6.s6_addr[12], sizeof(a4));
      ::inet_ntop(AF_INET, &a4, text, sizeof(text));
      return std::string(text) + ":" + std::to_string(port);
    }
    ::inet_ntop(AF_INET6, &a6, text, sizeof(text));
    return "[" + std::string(text) + "]:" + std::to_string(port);
  }
  in_addr a4{};
  std::memcpy(&a4, addr, sizeof(a4));
  ::inet_ntop(AF_INET, &a4, text, sizeof(text));
  return std::string(text) + ":" + std::to_string(port);
}

// One NLM_F_DUMP of the TCP sockets of `family`, collecting those whose cookie is wanted.
Result<void> dumpFamily(std::uint8_t family, const std::unordered_set<std::uint64_t>& cookies,
                        std::unordered_map<std::uint64_t, SocketAddresses>& out) {
  const char* family_name = family == AF_INET ? "IPv4" : "IPv6";
  NetlinkSocket nl;
  if (nl.get() < 0) {
    return errnoError("open NETLINK_SOCK_DIAG socket");
  }
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } message{};
  message.header.nlmsg_len = sizeof(message);
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  message.header.nlmsg_seq = 1;
  message.request.sdiag_family = family;
  message.request.sdiag_protocol = IPPROTO_TCP;
  message.request.idiag_states = ~0U;  // every TCP state: spliced sockets may be closing
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(nl.get(), &message, sizeof(message), 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof(kernel)) < 0) {
    return errnoError(std::string("request ") + family_name + " TCP socket dump");
  }

  std::vector<char> buffer(1 << 16);
  for (;;) {
    const ssize_t got = ::recv(nl.get(), buffer.data(), buffer.size(), 0);
    if (got < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errnoError(std::string("read ") + family_name + " TCP socket dump");
    }
    if (got == 0) {
      return Error(EPROTO, std::string(family_name) + " TCP socket dump ended early");
    }
    std::size_t offset = 0;
    const std::size_t end = static_cast<std::size_t>(got);
    while (offset + sizeof(nlmsghdr) <= end) {
      nlmsghdr header{};
      std::memcpy(&header, buffer.data() + offset, sizeof(header));
      if (header.nlmsg_len < sizeof(nlmsghdr) || offset + header.nlmsg_len > end) {
        return Error(EPROTO, std::string("malformed ") + family_name + " TCP socket dump");
      }
      const char* payload = buffer.data() + offset + NLMSG_HDRLEN;
      const std::size_t payload_len = header.nlmsg_len - NLMSG_HDRLEN;
      if (header.nlmsg_type == NLMSG_DONE) {
        return success();
      }
      if (header.nlmsg_type == NLMSG_ERROR) {
        nlmsgerr err{};
        std::memcpy(&err, payload, std::min(payload_len, sizeof(err)));
        return Error(err.error, std::string("dump ") + family_name + " TCP sockets");
      }
      if (header.nlmsg_type == SOCK_DIAG_BY_FAMILY && payload_len >= sizeof(inet_diag_msg)) {
        inet_diag_msg diag{};
        std::memcpy(&diag, payload, sizeof(diag));
        const std::uint64_t cookie = static_cast<std::uint64_t>(diag.id.idiag_cookie[0]) |
                                     (static_cast<std::uint64_t>(diag.id.idiag_cookie[1]) << 32);
        if (cookies.contains(cookie)) {
          out[cookie] = SocketAddresses{
              formatAddress(diag.idiag_family, diag.id.idiag_src, diag.id.idiag_sport),
              formatAddress(diag.idiag_family, diag.id.idiag_dst, diag.id.idiag_dport)};
        }
      }
      offset += NLMSG_ALIGN(header.nlmsg_len);
    }
  }
}

}  // namespace

Result<std::unordered_map<std::uint64_t, SocketAddresses>> resolveTcpCookies(
    const std::unordered_set<std::uint64_t>& cookies) {
  std::unordered_map<std::uint64_t, SocketAddresses> out;
  if (cookies.empty()) {
    return out;
  }
  for (std::uint8_t family : {std::uint8_t{AF_INET}, std::uint8_t{AF_INET6}}) {
    if (auto dumped = dumpFamily(family, cookies, out); !dumped) {
      // A kernel without IPv6 has no IPv6 sockets to find.
      const int code = dumped.error().code();
      if (family == AF_INET6 && (code == ENOENT || code == EAFNOSUPPORT)) {
        break;
      }
      return dumped.error();
    }
    if (out.size() == cookies.size()) {
      break;
    }
  }
  return out;
}

}  // namespace sluice::cli
