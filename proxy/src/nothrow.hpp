#pragma once
// The completion token of the proxy's coroutines: an operation's error comes back as a value
// (`auto [ec, n] = co_await ...(nothrow)`), not as an exception, because every failure on the
// request path (a client gone, a back-end closed) is an outcome to handle, not an exceptional case.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace exsim::proxy {

inline constexpr auto nothrow = boost::asio::as_tuple(boost::asio::use_awaitable);

}  // namespace exsim::proxy
