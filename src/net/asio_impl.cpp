// The one translation unit that compiles Asio (BOOST_ASIO_SEPARATE_COMPILATION): every other file
// includes only its declarations, which keeps a 2-core build fast.
#include <boost/asio/impl/src.hpp>
