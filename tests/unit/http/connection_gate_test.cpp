#include "http/connection_gate.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace llmq::http {
namespace {

TEST(ConnectionGate, GivesAtMostMaxPlacesAndTakesThemBack) {
  auto gate = ConnectionGate::make(2);
  std::optional<ConnectionGate::Ticket> a = gate->try_open();
  std::optional<ConnectionGate::Ticket> b = gate->try_open();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(gate->open(), 2u);
  EXPECT_FALSE(gate->try_open());
  a.reset();
  EXPECT_EQ(gate->open(), 1u);
  EXPECT_TRUE(gate->try_open());
}

TEST(ConnectionGate, AMovedTicketIsReleasedOnce) {
  auto gate = ConnectionGate::make(1);
  {
    std::optional<ConnectionGate::Ticket> a = gate->try_open();
    ConnectionGate::Ticket moved = std::move(*a);
    a.reset();
    EXPECT_EQ(gate->open(), 1u);
  }
  EXPECT_EQ(gate->open(), 0u);
}

TEST(ConnectionGate, RefusalsHaveTheirOwnBudget) {
  auto gate = ConnectionGate::make(1);
  auto served = gate->try_open();
  std::vector<ConnectionGate::Ticket> refusing;
  while (auto t = gate->try_refuse()) refusing.push_back(std::move(*t));
  EXPECT_EQ(refusing.size(), ConnectionGate::kMaxRefusing);
  EXPECT_EQ(gate->open(), 1u);
}

TEST(ConnectionGate, TicketsOutliveTheirOwnersReference) {
  std::optional<ConnectionGate::Ticket> ticket;
  {
    auto gate = ConnectionGate::make(1);
    ticket = gate->try_open();
  }
  ticket.reset();  // the gate lives in the ticket until here: no use after free (ASan)
}

TEST(ConnectionGate, ConcurrentEntriesNeverPassTheLimit) {
  auto gate = ConnectionGate::make(50);
  std::vector<std::thread> threads;
  std::atomic<int> admitted{0};
  std::vector<std::vector<ConnectionGate::Ticket>> held(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        if (auto ticket = gate->try_open()) {
          held[t].push_back(std::move(*ticket));
          ++admitted;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(admitted.load(), 50);
  EXPECT_EQ(gate->open(), 50u);
}

TEST(ConnectionGate, ConnectionsWithinKeepDescriptorsForTheRest) {
  EXPECT_EQ(connections_within(256), 127u);
  EXPECT_EQ(connections_within(20000), 20000u - 129u);
  EXPECT_EQ(connections_within(100), 1u);  // never 0: the server must take one connection
}

}  // namespace
}  // namespace llmq::http
