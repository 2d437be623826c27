#include "common/ready_wait.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/execution/context.hpp>
#include <boost/asio/query.hpp>

namespace sluice::net {

#ifndef TCP_INQ
#define TCP_INQ 36  // Linux 4.18; glibc 2.36's headers have it, older ones may not
#define TCP_CM_INQ TCP_INQ
#endif

bool enableInqHint(int fd) {
  const int one = 1;
  return ::setsockopt(fd, IPPROTO_TCP, TCP_INQ, &one, sizeof one) == 0;
}

ssize_t readWithHint(int fd, void* data, std::size_t len, bool& drained, int flags) {
  drained = false;
  iovec iov{data, len};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ssize_t n;
  do {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    n = ::recvmsg(fd, &msg, flags);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    drained = errno == EAGAIN || errno == EWOULDBLOCK;
    return n;
  }
  if (n == 0) {
    return 0;
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == IPPROTO_TCP && c->cmsg_type == TCP_CM_INQ &&
        c->cmsg_len == CMSG_LEN(sizeof(int))) {
      int inq = 0;
      std::memcpy(&inq, CMSG_DATA(c), sizeof inq);
      drained = inq == 0;  // with a FIN pending and no bytes the kernel says 1
    }
  }
  return n;
}

bool readableNow(int fd) {
  pollfd p{fd, POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, 0);
  } while (r < 0 && errno == EINTR);
  return r != 0;  // ready, or poll failed: let the read say what happened
}

#if SLUICE_READY_WAIT

namespace detail {

thread_local const void* t_starting = nullptr;

namespace {

// The reactor's registration of a descriptor keeps its state private. Explicit instantiation is
// exempt from access checks ([temp.spec.general]/6), which lets these name three of its members.
template <typename Tag, typename Tag::type Member>
struct Expose {
  friend typename Tag::type member(Tag) { return Member; }
};

using State = Reactor::descriptor_state;

struct TrySpeculative {
  using type = bool (State::*)[Reactor::max_ops];
  friend type member(TrySpeculative);
};
struct StateMutex {
  using type = boost::asio::detail::conditionally_enabled_mutex State::*;
  friend type member(StateMutex);
};
struct RegisteredEvents {
  using type = std::uint32_t State::*;
  friend type member(RegisteredEvents);
};

template struct Expose<TrySpeculative, &State::try_speculative_>;
template struct Expose<StateMutex, &State::mutex_>;
template struct Expose<RegisteredEvents, &State::registered_events_>;

// The socket's implementation is a protected member of basic_socket; a derived class may name it
// to form a pointer to it.
struct SocketAccess : boost::asio::ip::tcp::socket {
  static auto implMember() { return &SocketAccess::impl_; }
};

}  // namespace

Reactor& reactorOf(boost::asio::ip::tcp::socket& socket) {
  // One reactor per io_context; a worker's thread uses only its own, so the lookup (a lock and
  // a search of the context's services) runs once per thread.
  thread_local boost::asio::execution_context* context = nullptr;
  thread_local Reactor* reactor = nullptr;
  boost::asio::execution_context& c =
      boost::asio::query(socket.get_executor(), boost::asio::execution::context);
  if (context != &c) {
    reactor = &boost::asio::use_service<Reactor>(c);
    context = &c;
  }
  return *reactor;
}

Reactor::per_descriptor_data& descriptorOf(boost::asio::ip::tcp::socket& socket) {
  return (socket.*SocketAccess::implMember()).get_implementation().reactor_data_;
}

}  // namespace detail

void markDrained(boost::asio::ip::tcp::socket& socket) {
  detail::State* state = detail::descriptorOf(socket);
  if (state == nullptr) {
    return;
  }
  boost::asio::detail::conditionally_enabled_mutex::scoped_lock lock(
      state->*member(detail::StateMutex{}));
  // As the reactor itself decides after a read that found nothing: only for a registered
  // descriptor, whose next edge is sure to be reported.
  if (state->*member(detail::RegisteredEvents{}) != 0) {
    (state->*member(detail::TrySpeculative{}))[detail::Reactor::read_op] = false;
  }
}

#else

void markDrained(boost::asio::ip::tcp::socket&) {}

#endif

}  // namespace sluice::net
