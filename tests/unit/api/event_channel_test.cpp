#include "api/event_channel.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <thread>

namespace llmq {
namespace {

namespace asio = boost::asio;

TokenEvent token(std::int64_t i) {
  return TokenEvent{i, "a token text longer than SSO " + std::to_string(i)};
}

std::size_t token_bytes() { return EventChannel::held_bytes(JobEvent{token(0)}); }

class EventChannelTest : public testing::Test {
 protected:
  // A channel whose bound holds exactly `events` token events.
  std::shared_ptr<EventChannel> channel_for(std::size_t events) {
    return std::make_shared<EventChannel>(strand_, events * token_bytes());
  }
  // Delivers what on_event() posted.
  void deliver() {
    io_.restart();
    io_.poll();
  }
  // Takes one event (or nullopt when none is waiting), as the connection would.
  std::optional<JobEvent> take(EventChannel& channel) {
    std::optional<JobEvent> got;
    bool done = false;
    asio::co_spawn(
        strand_,
        [&]() -> asio::awaitable<void> {
          got = co_await channel.next(Clock::now());
          done = true;
        },
        asio::detached);
    io_.restart();
    while (!done) io_.run_one();
    return got;
  }

  asio::io_context io_;
  asio::any_io_executor strand_ = asio::make_strand(io_);
};

TEST_F(EventChannelTest, HeldBytesCountTheEventAndItsText) {
  const JobEvent short_token = TokenEvent{0, "a"};
  const JobEvent long_token = TokenEvent{0, std::string(1000, 'x')};
  EXPECT_EQ(EventChannel::held_bytes(long_token) - EventChannel::held_bytes(short_token), 999u);
  EXPECT_GE(EventChannel::held_bytes(short_token), sizeof(JobEvent));
}

TEST_F(EventChannelTest, EventsWithinTheBoundArriveInOrder) {
  auto channel = channel_for(3);
  for (int i = 0; i < 3; ++i) channel->on_event(token(i));
  deliver();
  EXPECT_FALSE(channel->overflowed());
  for (int i = 0; i < 3; ++i) {
    std::optional<JobEvent> e = take(*channel);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(std::get<TokenEvent>(*e).index, i);
  }
  EXPECT_FALSE(take(*channel).has_value());
}

TEST_F(EventChannelTest, PassingTheBoundOverflowsAndDropsEverything) {
  auto channel = channel_for(3);
  for (int i = 0; i < 4; ++i) channel->on_event(token(i));
  deliver();
  EXPECT_TRUE(channel->overflowed());
  EXPECT_EQ(channel->overflow_bytes(), 4 * token_bytes());
  EXPECT_FALSE(take(*channel).has_value()) << "an overflowed channel keeps nothing";
  channel->on_event(DoneEvent{"stop", {}, {}});
  deliver();
  EXPECT_FALSE(take(*channel).has_value()) << "nor anything that comes later";
}

TEST_F(EventChannelTest, TakenEventsNoLongerCount) {
  auto channel = channel_for(3);
  for (int i = 0; i < 3; ++i) channel->on_event(token(i));
  deliver();
  take(*channel);
  take(*channel);
  for (int i = 3; i < 5; ++i) channel->on_event(token(i));
  deliver();
  EXPECT_FALSE(channel->overflowed());
}

TEST_F(EventChannelTest, BytesUnreadByTheClientCountToo) {
  auto channel = channel_for(3);
  channel->on_event(token(0));
  deliver();
  EXPECT_FALSE(channel->note_unsent(2 * token_bytes()));
  EXPECT_TRUE(channel->note_unsent(2 * token_bytes() + 1));
  EXPECT_TRUE(channel->overflowed());
}

TEST_F(EventChannelTest, ABoundOfZeroMeansNone) {
  auto channel = std::make_shared<EventChannel>(strand_, 0);
  for (int i = 0; i < 1000; ++i) channel->on_event(token(i));
  deliver();
  EXPECT_FALSE(channel->note_unsent(std::size_t{1} << 40));
  EXPECT_FALSE(channel->overflowed());
}

TEST_F(EventChannelTest, WaitOverflowCompletesWhenEventsFromAWorkerPassTheBound) {
  auto channel = channel_for(10);
  bool woke = false;
  asio::co_spawn(
      strand_,
      [&]() -> asio::awaitable<void> {
        co_await channel->wait_overflow();
        woke = true;
      },
      asio::detached);
  std::thread worker([&] {
    for (int i = 0; i < 50; ++i) channel->on_event(token(i));
  });
  worker.join();
  io_.run_for(std::chrono::seconds(5));  // ends when the waiter is done: no other work
  EXPECT_TRUE(woke);
  EXPECT_TRUE(channel->overflowed());
}

}  // namespace
}  // namespace llmq
