// Asio's and Beast's compiled parts (the reactor, the scheduler, socket and SSL operations, Beast's
// HTTP parser, error categories), once for the whole program. Every target is built with
// BOOST_ASIO_SEPARATE_COMPILATION and BOOST_BEAST_SEPARATE_COMPILATION (CMakeLists.txt), so their
// headers only declare these instead of compiling them again in every file that includes them.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
