#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include "support/process.hpp"

namespace {

// Lets a ProxyStack know its test failed, so it prints sluice's log tail on the way out.
struct FailedAssertionListener : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;

  bool assertionEnded(const Catch::AssertionStats& stats) override {
    if (!stats.assertionResult.isOk()) sluice::test::note_failed_assertion();
    return true;
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(FailedAssertionListener)
