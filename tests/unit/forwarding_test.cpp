// header_bytes (proxy/src/forwarding.hpp) writes what Beast's serializer writes for the same header.

#include <sstream>
#include <string>

#include <boost/beast/http.hpp>
#include <gtest/gtest.h>

#include "forwarding.hpp"

namespace {

namespace http = boost::beast::http;
using exsim::proxy::header_bytes;

template <bool isRequest>
std::string beast_bytes(const http::header<isRequest>& h) {
    std::ostringstream out;
    out << h;
    return out.str();
}

TEST(Forwarding, RequestHeaderBytesAreBeasts) {
    http::request_header<> req;
    req.method(http::verb::get);
    req.target("/exchweb/blob?size=128");
    req.version(11);
    req.set(http::field::host, "be1.exsim.test:8081");
    req.set("X-Exsim-On-Behalf-Of", "alice");
    req.insert("Accept", "*/*");
    req.insert("accept", "text/plain");
    EXPECT_EQ(header_bytes(req), beast_bytes(req));
    req.method_string("PROPFIND2");  // an extension method, by its text
    req.version(10);
    EXPECT_EQ(header_bytes(req), beast_bytes(req));
}

TEST(Forwarding, ResponseHeaderBytesAreBeasts) {
    http::response_header<> res;
    res.result(200);
    res.version(11);
    res.set(http::field::content_type, "application/octet-stream");
    res.set(http::field::content_length, "128");
    EXPECT_EQ(header_bytes(res), beast_bytes(res));
    res.result(299);  // no name in Beast: its reason is Beast's placeholder, as the serializer writes
    res.version(10);
    EXPECT_EQ(header_bytes(res), beast_bytes(res));
    res.reason("Fine Indeed");
    EXPECT_EQ(header_bytes(res), beast_bytes(res));
    EXPECT_EQ(header_bytes(res).substr(0, 26), "HTTP/1.0 299 Fine Indeed\r\n");
}

TEST(Forwarding, EmptyHeaderEndsWithItsBlankLine) {
    http::response_header<> res;
    res.result(204);
    res.version(11);
    EXPECT_EQ(header_bytes(res), "HTTP/1.1 204 No Content\r\n\r\n");
}

}  // namespace
