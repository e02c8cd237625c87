// The Redis client's integration tests: their own executable, since they need redis-server.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
