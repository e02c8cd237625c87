// The queue over-limit connections wait in: everything else that is ready goes first, and the
// waiting ones go a slice at a time, oldest first, none lost.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <sluice/proxy/yield_queue.hpp>

namespace {

using sluice::proxy::YieldQueue;
namespace net = boost::asio;

// Writes its name into the log when resumed.
class Waiter final : public YieldQueue::Member {
 public:
  Waiter(std::string name, std::vector<std::string>& log) : name_(std::move(name)), log_(log) {}
  void resume() override { log_.push_back(name_); }

 private:
  std::string name_;
  std::vector<std::string>& log_;
};

// Runs a function when resumed.
class Callback final : public YieldQueue::Member {
 public:
  explicit Callback(std::function<void()> run) : run_(std::move(run)) {}
  void resume() override { run_(); }

 private:
  std::function<void()> run_;
};

// "w0", "w1", ... (built by appending: GCC 12 warns, wrongly, on "w" + std::to_string(i)).
std::string member_name(std::size_t i) {
  std::string name = "w";
  name += std::to_string(i);
  return name;
}

// Queues `count` members, w0, w1, ...; w1 also runs `then` when it is resumed. Returns the order
// expected when the "newcomer" that `then` brings about runs right after the first slice, of
// `slice` members.
std::vector<std::string> queue_members(YieldQueue& queue, std::vector<std::string>& log,
                                       std::size_t count, std::function<void()> then,
                                       std::size_t slice = YieldQueue::kSlice) {
  std::vector<std::string> expected;
  for (std::size_t i = 0; i < count; ++i) {
    const std::string name = member_name(i);
    if (i == 1) {
      queue.push(std::make_shared<Callback>([&log, name, then] {
        log.push_back(name);
        then();
      }));
    } else {
      queue.push(std::make_shared<Waiter>(name, log));
    }
    expected.push_back(name);
    if (i == slice - 1) expected.push_back("newcomer");
  }
  return expected;
}

}  // namespace

TEST_CASE("work ready in the same loop turn runs before the queue's members", "[yield_queue]") {
  net::io_context loop;
  YieldQueue queue(loop.get_executor());
  std::vector<std::string> log;
  // Three connections epoll reported ready together; the first and the last are over their
  // limit, the middle one is not.
  net::post(loop, [&] { queue.push(std::make_shared<Waiter>("flooder 1", log)); });
  net::post(loop, [&] { log.push_back("polite"); });
  net::post(loop, [&] { queue.push(std::make_shared<Waiter>("flooder 2", log)); });
  loop.run();
  CHECK(log == std::vector<std::string>{"polite", "flooder 1", "flooder 2"});
  CHECK(queue.size() == 0);
}

TEST_CASE("work that arrives during a slice runs before the next slice", "[yield_queue]") {
  net::io_context loop;
  YieldQueue queue(loop.get_executor());
  std::vector<std::string> log;
  // w1's request is answered, and the write's completion handler is posted, as Asio does.
  const auto expected = queue_members(queue, log, 2 * YieldQueue::kSlice + 1, [&] {
    net::post(loop, [&log] { log.push_back("newcomer"); });
  });
  loop.run();
  CHECK(log == expected);
}

TEST_CASE("a member queued during a slice waits behind work posted before it", "[yield_queue]") {
  net::io_context loop;
  YieldQueue queue(loop.get_executor());
  std::vector<std::string> log;
  queue.push(std::make_shared<Callback>([&] {
    log.push_back("w0");
    queue.push(std::make_shared<Waiter>("again", log));
    net::post(loop, [&log] { log.push_back("newcomer"); });
  }));
  queue.push(std::make_shared<Waiter>("w1", log));
  loop.run();
  CHECK(log == std::vector<std::string>{"w0", "w1", "newcomer", "again"});
}

TEST_CASE("members are resumed once each, oldest first, while the queue grows around its end",
          "[yield_queue]") {
  net::io_context loop;
  YieldQueue queue(loop.get_executor());
  std::vector<std::string> log;
  std::vector<std::string> expected;
  std::size_t next = 0;
  auto push = [&](int n) {
    for (int i = 0; i < n; ++i) {
      expected.push_back(member_name(next));
      queue.push(std::make_shared<Waiter>(member_name(next++), log));
    }
  };
  push(12);
  loop.run_one();  // one slice: the ring's oldest entries are now in its middle
  CHECK(log.size() == YieldQueue::kSlice);
  CHECK(queue.size() == 12 - YieldQueue::kSlice);
  push(40);  // wraps around the ring's end, then grows it
  loop.restart();
  loop.run();
  CHECK(log == expected);
  CHECK(queue.size() == 0);
}

TEST_CASE("a connection epoll finds ready during a slice is served before the next slice",
          "[yield_queue]") {
  // The order of Asio's own scheduler: epoll runs when the loop reaches the reactor's place in
  // the handler queue, and what it finds goes to the end of the queue.
  net::io_context loop;
  YieldQueue queue(loop.get_executor());
  std::vector<std::string> log;
  net::local::stream_protocol::socket sender(loop);
  net::local::stream_protocol::socket receiver(loop);
  net::local::connect_pair(sender, receiver);
  char byte = 0;
  receiver.async_read_some(net::buffer(&byte, 1), [&](boost::system::error_code ec, std::size_t) {
    CHECK_FALSE(ec);
    log.push_back("newcomer");
  });
  // A request arrives on another connection while the first slice runs.
  const auto expected =
      queue_members(queue, log, 3 * YieldQueue::kSlice, [&] { sender.send(net::buffer("x", 1)); });
  loop.run();
  CHECK(log == expected);
}

TEST_CASE("while other clients' requests come in, slices are short, and then grow back",
          "[yield_queue]") {
  net::io_context loop;
  YieldQueue queue(loop.get_executor());
  std::vector<std::string> log;
  CHECK(queue.slice() == YieldQueue::kSlice);  // a flood alone
  queue.note_other_request();
  REQUIRE(queue.slice() == YieldQueue::kSharedSlice);
  // The newcomer w1 brings about now waits for two members, not eight.
  const auto expected = queue_members(
      queue, log, 3 * YieldQueue::kSlice,
      [&] { net::post(loop, [&log] { log.push_back("newcomer"); }); }, YieldQueue::kSharedSlice);
  loop.run();
  CHECK(log == expected);

  // With no other request for kSharedFor resumed members, slices are long again.
  log.clear();
  for (std::size_t i = 0; i < YieldQueue::kSharedFor; ++i)
    queue.push(std::make_shared<Waiter>(member_name(i), log));
  loop.restart();
  loop.run();
  CHECK(log.size() == YieldQueue::kSharedFor);
  CHECK(queue.slice() == YieldQueue::kSlice);
}
