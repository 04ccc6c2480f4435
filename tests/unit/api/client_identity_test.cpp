#include "api/client_identity.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "api/auth_throttle.h"

namespace llmq {
namespace {

TEST(ClientIdentity, Ipv6CountsPerSlash64Ipv4PerAddress) {
  EXPECT_EQ(address_group("203.0.113.7"), "203.0.113.7");
  EXPECT_EQ(address_group("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  EXPECT_EQ(address_group("2001:db8:1:2:ffff::1"), "2001:db8:1:2::/64") << "one host's rotation";
  EXPECT_NE(address_group("2001:db8:1:3::1"), address_group("2001:db8:1:2::1"));
  EXPECT_EQ(address_group("::ffff:198.51.100.9"), "198.51.100.9");
  EXPECT_EQ(address_group("not an address"), "not an address");
}

TEST(ClientIdentity, ForwardedForIsReadOnlyFromATrustedProxy) {
  const ClientIdentity none;
  EXPECT_EQ(none.of("10.0.0.5", "203.0.113.7"), "ip:10.0.0.5") << "anyone can write the header";
  const ClientIdentity proxied("10.0.0.5, 10.0.0.6");
  EXPECT_EQ(proxied.of("10.0.0.5", "203.0.113.7"), "ip:203.0.113.7");
  // Spoofed entries on the left are the client's own words: the first untrusted from the right.
  EXPECT_EQ(proxied.of("10.0.0.5", "1.1.1.1, 203.0.113.7, 10.0.0.6"), "ip:203.0.113.7");
  EXPECT_EQ(proxied.of("10.0.0.5", ""), "ip:10.0.0.5");
  EXPECT_EQ(proxied.of("10.0.0.5", "garbage"), "ip:10.0.0.5");
  EXPECT_EQ(proxied.of("192.0.2.1", "203.0.113.7"), "ip:192.0.2.1") << "not a trusted peer";
  EXPECT_EQ(proxied.of("10.0.0.5", "2001:db8::1"), "ip:2001:db8::/64");
  EXPECT_THROW(ClientIdentity("10.0.0.5,nope"), std::invalid_argument);
}

TEST(AuthThrottle, BlocksAfterTooManyFailuresForTheRestOfTheWindow) {
  AuthThrottle throttle({.max_failures = 3, .window = std::chrono::seconds(60), .max_clients = 100});
  const auto t0 = AuthThrottle::Clock::now();
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(throttle.blocked("ip:a", t0));
    throttle.failed("ip:a", t0);
  }
  const auto wait = throttle.blocked("ip:a", t0 + std::chrono::seconds(10));
  ASSERT_TRUE(wait);
  EXPECT_EQ(*wait, 50);
  EXPECT_FALSE(throttle.blocked("ip:b", t0)) << "another client";
  EXPECT_FALSE(throttle.blocked("ip:a", t0 + std::chrono::seconds(61))) << "the window ended";
}

TEST(AuthThrottle, RotatingClientsCannotGrowItWithoutBound) {
  AuthThrottle throttle({.max_failures = 3, .window = std::chrono::seconds(60), .max_clients = 100});
  for (int i = 0; i < 10000; ++i) throttle.failed("ip:" + std::to_string(i));
  EXPECT_LE(throttle.tracked_clients(), 100u);
}

}  // namespace
}  // namespace llmq
