#pragma once
// The front-end's admin port: a tiny HTTP/1.1 server on its own thread that answers
//   GET /metrics  -> 200, Prometheus text format (text/plain; version=0.0.4)
//   GET /healthz  -> 200 "ok"
// anything else 404 (405 for another method on those paths). Plain HTTP, meant for 127.0.0.1.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace exsim::proxy {

class admin_server {
public:
    // Binds at once (port 0: a free port). Throws std::runtime_error naming the address when
    // it cannot. `render` is called on the admin thread for every GET /metrics.
    admin_server(const std::string& address, std::uint16_t port, std::function<std::string()> render);
    ~admin_server();  // stops
    admin_server(const admin_server&) = delete;
    admin_server& operator=(const admin_server&) = delete;

    void start();
    void stop();  // closes the listener and every connection, joins the thread
    std::uint16_t port() const;

    struct impl;

private:
    std::unique_ptr<impl> impl_;
};

}  // namespace exsim::proxy
