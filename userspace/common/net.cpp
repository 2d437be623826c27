#include "common/net.hpp"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <boost/asio/ip/v6_only.hpp>

#include "common/ready_wait.hpp"

namespace sluice::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

boost::system::error_code errnoCode() {
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    return asio::error::would_block;
  }
  return {errno, boost::system::system_category()};
}

}  // namespace

std::size_t receiveNow(tcp::socket& socket, asio::mutable_buffer buffer,
                       boost::system::error_code& ec) {
  ec.clear();
  bool drained = false;
  const ssize_t n = readWithHint(socket.native_handle(), buffer.data(), buffer.size(), drained);
  if (drained) {
    markDrained(socket);
  }
  if (n > 0) {
    return static_cast<std::size_t>(n);
  }
  ec = n == 0 ? boost::system::error_code(asio::error::eof) : errnoCode();
  return 0;
}

std::size_t sendNow(tcp::socket& socket, std::span<const asio::const_buffer> buffers,
                    boost::system::error_code& ec) {
  constexpr std::size_t kMaxIov = 16;
  std::array<iovec, kMaxIov> iov{};
  std::size_t count = 0;
  for (const asio::const_buffer& b : buffers) {
    if (b.size() > 0 && count < kMaxIov) {
      iov[count++] = {const_cast<void*>(b.data()), b.size()};
    }
  }
  ec.clear();
  if (count == 0) {
    return 0;
  }
  msghdr msg{};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = count;
  ssize_t n;
  do {
    n = ::sendmsg(socket.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n >= 0) {
    return static_cast<std::size_t>(n);
  }
  ec = errnoCode();
  return 0;
}

Result<void> listen(tcp::acceptor& acceptor, const tcp::endpoint& endpoint,
                    const ListenOptions& options) {
  boost::system::error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) {
    acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  }
  if (!ec && options.reuse_port) {
    int one = 1;
    if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      ec = boost::system::error_code(errno, boost::system::system_category());
    }
  }
  if (!ec && endpoint.protocol() == tcp::v6()) {
    acceptor.set_option(asio::ip::v6_only(false), ec);
  }
  if (!ec) {
    // Accepted sockets inherit it: receiveNow() then learns whether a read drained the socket.
    // A kernel without it (before 4.18) only loses that hint.
    enableInqHint(acceptor.native_handle());
  }
  if (!ec) {
    acceptor.bind(endpoint, ec);
  }
  if (!ec) {
    acceptor.listen(options.backlog, ec);
  }
  if (ec) {
    boost::system::error_code ignored;
    acceptor.close(ignored);
    return Error(ec.value(), "listen on " + endpointText(endpoint));
  }
  return success();
}

std::string addressText(asio::ip::address address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  }
  return address.to_string();
}

std::string endpointText(const tcp::endpoint& endpoint) {
  const std::string host = addressText(endpoint.address());
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(endpoint.port());
}

std::string peerAddress(const tcp::socket& socket) {
  boost::system::error_code ec;
  const auto remote = socket.remote_endpoint(ec);
  return ec ? std::string() : addressText(remote.address());
}

std::vector<std::string> localAddresses() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) {
    return out;
  }
  for (const ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) {
      continue;
    }
    if (i->ifa_addr->sa_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      boost::asio::ip::address_v4::bytes_type b;
      std::memcpy(b.data(), &a->sin_addr, 4);
      out.push_back(boost::asio::ip::address_v4(b).to_string());
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      boost::asio::ip::address_v6::bytes_type b;
      std::memcpy(b.data(), &a->sin6_addr, 16);
      out.push_back(addressText(boost::asio::ip::address_v6(b)));
    }
  }
  ::freeifaddrs(list);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace sluice::net
