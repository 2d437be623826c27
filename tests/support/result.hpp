// Test helpers for sluice::Result: the error text (or "" on success) and assertions that print it.
#pragma once

#include <optional>
#include <string>
#include <utility>

#include <gtest/gtest.h>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>

#include "common/result.hpp"

namespace sluice::test {

template <typename T>
std::string errorOf(const Result<T>& r) {
  return r ? std::string() : r.error().message();
}

// Runs `op` on `ex` and waits for what it returns. (asio's use_future needs a default-constructible
// result, which Result<T> deliberately is not.)
template <typename T>
T awaitOn(const boost::asio::any_io_executor& ex, boost::asio::awaitable<T> op) {
  auto wrapped = [](boost::asio::awaitable<T> inner) -> boost::asio::awaitable<std::optional<T>> {
    co_return co_await std::move(inner);
  };
  auto fut = boost::asio::co_spawn(ex, wrapped(std::move(op)), boost::asio::use_future);
  return std::move(*fut.get());
}

}  // namespace sluice::test

#define EXPECT_OK(expr) EXPECT_TRUE((expr)) << ::sluice::test::errorOf((expr))
#define ASSERT_OK(expr) ASSERT_TRUE((expr)) << ::sluice::test::errorOf((expr))
