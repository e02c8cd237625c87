#include <sluice/limit/clock.hpp>

namespace sluice::limit {

Micros SystemClock::now() const noexcept {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

Micros MonotonicClock::now() const noexcept {
  using namespace std::chrono;
  return duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace sluice::limit
