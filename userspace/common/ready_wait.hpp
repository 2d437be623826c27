// Waiting for a socket to become readable without a system call per wait.
//
// Asio's epoll reactor registers a socket once, edge-triggered, and runs a queued read operation
// on the next event. socket::async_wait() cannot trust that: a wait does not read, so it cannot
// know whether bytes came in before it was queued, and it re-arms the descriptor with
// epoll_ctl(2) every time, so that the kernel reports what is already there. On a keep-alive
// connection that is two system calls per request: the client's wait for its next request and
// the pooled upstream connection's watch.
//
// waitReadable() is that wait without the re-arm. Queued like a read, it is tried first where
// Asio would try a read: unless the reactor knows the socket is drained (below), one poll(2) with
// no timeout answers, and only a socket with nothing to read is queued. An event completes it, as
// it completes async_wait().
//
// The reactor knows a socket is drained after a read of Asio's that found nothing, or after
// markDrained(). Reads outside Asio call it when the kernel said the receive queue is empty and
// no FIN is pending: TCP_INQ (enableInqHint()) reports both with each recvmsg(2), as 0 (bytes or a
// FIN left: 1 or more). Anything that arrives afterwards raises a new edge, which the reactor
// reports and which completes a queued wait, so a drained socket's wait is queued with no system
// call at all. readWithHint() is the read that reports it.
//
// This reaches into Boost 1.81's reactor (reactor_op, start_op, the descriptor's speculative
// flag): Debian 12's Boost, which this project builds against. Any other Boost, or a reactor
// other than epoll, gets socket::async_wait() and no marking; behaviour is the same, with the
// system calls.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <type_traits>
#include <utility>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/version.hpp>

#if BOOST_VERSION == 108100 && defined(BOOST_ASIO_HAS_EPOLL) && !defined(BOOST_ASIO_HAS_IO_URING)
#define SLUICE_READY_WAIT 1
#include <boost/asio/detail/bind_handler.hpp>
#include <boost/asio/detail/epoll_reactor.hpp>
#include <boost/asio/detail/fenced_block.hpp>
#include <boost/asio/detail/handler_alloc_helpers.hpp>
#include <boost/asio/detail/handler_cont_helpers.hpp>
#include <boost/asio/detail/handler_work.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#else
#define SLUICE_READY_WAIT 0
#endif

namespace sluice::net {

// Sets TCP_INQ on a socket (or a listener: accepted sockets inherit it), so that readWithHint()
// learns whether a read drained it. False if the kernel refused (older than 4.18): reads then
// report nothing and waits make their system call.
bool enableInqHint(int fd);

// One recv(2) of up to `len` bytes (recvmsg(2) with TCP_INQ's control message; `flags` as
// recv(2)'s, by default never waiting): like recv(2), the bytes read, 0 at EOF, -1 with errno.
// `drained` is true when the kernel's queue is now empty with no FIN behind it: the read took
// everything (TCP_INQ said 0), or there was nothing to take (EAGAIN). False when unknown.
ssize_t readWithHint(int fd, void* data, std::size_t len, bool& drained, int flags = MSG_DONTWAIT);

// Whether `fd` has something to read (bytes, EOF or an error), asked without waiting: one
// poll(2).
bool readableNow(int fd);

// Tells the reactor that `socket` has nothing to read, as a read of its own that found nothing
// would: its next read operation or waitReadable() is queued without a system call. Only when
// that is true (readWithHint() said drained), and on the socket's own thread.
void markDrained(boost::asio::ip::tcp::socket& socket);

#if SLUICE_READY_WAIT
namespace detail {

using Reactor = boost::asio::detail::epoll_reactor;

// The operation being started on this thread: its attempt inside start_op() is the speculative
// one, which looks at the socket; a call from an event needs no look.
extern thread_local const void* t_starting;

// Asio's per-operation cancellation for a queued reactor operation.
class ReadyCancel {
public:
  ReadyCancel(Reactor* reactor, Reactor::per_descriptor_data* data, int fd)
      : reactor_(reactor), data_(data), fd_(fd) {}
  void operator()(boost::asio::cancellation_type_t type) {
    using boost::asio::cancellation_type;
    if (!!(type &
           (cancellation_type::terminal | cancellation_type::partial | cancellation_type::total))) {
      reactor_->cancel_ops_by_key(fd_, *data_, Reactor::read_op, this);
    }
  }

private:
  Reactor* reactor_;
  Reactor::per_descriptor_data* data_;
  int fd_;
};

template <typename Handler, typename IoExecutor>
class ReadyWaitOp : public boost::asio::detail::reactor_op {
public:
  BOOST_ASIO_DEFINE_HANDLER_PTR(ReadyWaitOp);

  ReadyWaitOp(int fd, Handler& handler, const IoExecutor& io_ex)
      : reactor_op(boost::system::error_code(), &ReadyWaitOp::doPerform, &ReadyWaitOp::doComplete),
        fd_(fd),
        handler_(std::move(handler)),
        work_(handler_, io_ex) {}

  static status doPerform(reactor_op* base) {
    if (t_starting != base) {
      return done;  // an event: readable, hung up or failed
    }
    return readableNow(static_cast<ReadyWaitOp*>(base)->fd_) ? done : not_done;
  }

  static void doComplete(void* owner, boost::asio::detail::operation* base,
                         const boost::system::error_code& /*ec*/,
                         std::size_t /*bytes_transferred*/) {
    // As Asio's reactive_wait_op: take the handler out, free the operation, then call it.
    auto* o = static_cast<ReadyWaitOp*>(base);
    ptr p = {std::addressof(o->handler_), o, o};
    boost::asio::detail::handler_work<Handler, IoExecutor> w(std::move(o->work_));
    boost::asio::detail::binder1<Handler, boost::system::error_code> handler(o->handler_, o->ec_);
    p.h = std::addressof(handler.handler_);
    p.reset();
    if (owner) {
      boost::asio::detail::fenced_block b(boost::asio::detail::fenced_block::half);
      w.complete(handler, handler.handler_);
    }
  }

private:
  int fd_;
  Handler handler_;
  boost::asio::detail::handler_work<Handler, IoExecutor> work_;
};

// The socket's reactor and its registration (Asio keeps both out of the public interface).
Reactor& reactorOf(boost::asio::ip::tcp::socket& socket);
Reactor::per_descriptor_data& descriptorOf(boost::asio::ip::tcp::socket& socket);

// The executor that tracks the operation's outstanding work: the socket's (any_io_executor),
// unless the handler is bound to an io_context's executor, which runs the socket's reactor too
// (HttpSession::park()). That one needs no type-erased copy: the operation an idle connection
// keeps is 120 bytes instead of 176.
template <typename Handler>
auto workExecutor(boost::asio::ip::tcp::socket& socket, const Handler& handler) {
  using Bound = boost::asio::associated_executor_t<Handler, boost::asio::any_io_executor>;
  if constexpr (std::is_same_v<Bound, boost::asio::io_context::executor_type>) {
    return boost::asio::get_associated_executor(handler, socket.get_executor());
  } else {
    return socket.get_executor();
  }
}

template <typename Handler>
void startReadyWait(boost::asio::ip::tcp::socket& socket, Handler& handler) {
  auto io_ex = workExecutor(socket, handler);
  using Op = ReadyWaitOp<Handler, decltype(io_ex)>;
  const bool is_continuation = boost_asio_handler_cont_helpers::is_continuation(handler);
  auto slot = boost::asio::get_associated_cancellation_slot(handler);
  typename Op::ptr p = {std::addressof(handler), Op::ptr::allocate(handler), nullptr};
  p.p = new (p.v) Op(socket.native_handle(), handler, io_ex);
  Reactor& reactor = reactorOf(socket);
  Reactor::per_descriptor_data& data = descriptorOf(socket);
  if (slot.is_connected()) {
    p.p->cancellation_key_ =
        &slot.template emplace<ReadyCancel>(&reactor, &data, socket.native_handle());
  }
  t_starting = p.p;
  reactor.start_op(Reactor::read_op, socket.native_handle(), data, p.p, is_continuation, true);
  t_starting = nullptr;
  p.v = p.p = nullptr;
}

}  // namespace detail
#endif

// Completes with no error once `socket` is readable (bytes, EOF or an error to read), or with
// operation_aborted when cancelled or closed: socket::async_wait(wait_read), without its
// epoll_ctl(2). Like async_wait(), it may complete with nothing to read: an edge the reactor
// reports after a read already took its bytes (one that looked, here or in async_read_some(),
// found them before the reactor's epoll_wait(2) did). A read then finds nothing (EAGAIN, which
// marks the socket drained) and the caller waits again; a caller that acts on readability
// without reading (the pool's watch) checks with readableNow().
template <typename Token>
auto waitReadable(boost::asio::ip::tcp::socket& socket, Token&& token) {
#if SLUICE_READY_WAIT
  return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
      [&socket](auto handler) { detail::startReadyWait(socket, handler); }, token);
#else
  return socket.async_wait(boost::asio::ip::tcp::socket::wait_read, std::forward<Token>(token));
#endif
}

}  // namespace sluice::net
