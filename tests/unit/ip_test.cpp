#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <sluice/classify/ip.hpp>

using sluice::classify::Cidr;
using sluice::classify::client_ip;
using sluice::classify::IpAddress;

namespace {

IpAddress ip(std::string_view text) {
  auto parsed = IpAddress::parse(text);
  INFO("address: " << text);
  REQUIRE(parsed.has_value());
  return *parsed;
}

std::vector<Cidr> cidrs(std::initializer_list<std::string_view> texts) {
  std::vector<Cidr> out;
  for (auto text : texts) {
    auto parsed = Cidr::parse(text);
    INFO("cidr: " << text);
    REQUIRE(parsed.has_value());
    out.push_back(*parsed);
  }
  return out;
}

}  // namespace

TEST_CASE("IpAddress::parse accepts valid text and formats it canonically", "[ip]") {
  struct Case {
    std::string_view text;
    std::string_view canonical;
  };
  const Case cases[] = {
      {"1.2.3.4", "1.2.3.4"},
      {"0.0.0.0", "0.0.0.0"},
      {"255.255.255.255", "255.255.255.255"},
      {"10.0.0.1", "10.0.0.1"},
      {"::ffff:1.2.3.4", "1.2.3.4"},
      {"::FFFF:102:304", "1.2.3.4"},
      {"0:0:0:0:0:ffff:0102:0304", "1.2.3.4"},
      {"::", "::"},
      {"::1", "::1"},
      {"1::", "1::"},
      {"2001:DB8::1", "2001:db8::1"},
      {"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
      {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},     // first of two equal runs
      {"2001:0:0:1:0:0:0:1", "2001:0:0:1::1"},           // longest run wins
      {"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"},  // a single zero group is not compressed
      {"1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"},
      {"::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8"},
      {"fe80::1:2", "fe80::1:2"},
      {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
      {"::1.2.3.4", "::102:304"},  // IPv4-compatible (deprecated) is IPv6, not the IPv4 client
      {"64:ff9b::1.2.3.4", "64:ff9b::102:304"},
      {"1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"},
  };
  for (const Case& c : cases) {
    INFO("input: " << c.text);
    auto parsed = IpAddress::parse(c.text);
    REQUIRE(parsed.has_value());
    CHECK(parsed->to_string() == c.canonical);
    std::array<char, 46> buffer{};
    const std::size_t length = parsed->format(buffer);
    CHECK(std::string_view(buffer.data(), length) == c.canonical);
    // Canonical text parses back to the same address.
    CHECK(IpAddress::parse(c.canonical) == parsed);
  }
}

TEST_CASE("IpAddress::parse rejects malformed text", "[ip]") {
  const std::string_view bad[] = {
      "",
      " ",
      "1.2.3",
      "1.2.3.4.5",
      "1.2.3.256",
      "01.2.3.4",
      "1.2.3.04",
      "1.2.3.4 ",
      " 1.2.3.4",
      "1..3.4",
      "1.2.3.",
      ".1.2.3",
      "1.2.3.-4",
      "1.2.3.4:80",
      "a.b.c.d",
      "1234.1.1.1",
      "::1%eth0",
      "[::1]",
      ":",
      ":::",
      "1:::2",
      "1::2::3",
      ":1::2",
      "1::2:",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7:8::",
      "::1:2:3:4:5:6:7:8",
      "12345::",
      "g::1",
      "::ffff:1.2.3",
      "::ffff:1.2.3.4.5",
      "::ffff:01.2.3.4",
      "1.2.3.4::",
      "::1.2.3.4:5",
      "1:2:3:4:5:6:7:1.2.3.4",
      "unknown",
  };
  for (std::string_view text : bad) {
    INFO("input: '" << text << "'");
    CHECK_FALSE(IpAddress::parse(text).has_value());
  }
}

TEST_CASE("IPv4 and IPv4-mapped IPv6 are the same client", "[ip]") {
  CHECK(ip("1.2.3.4") == ip("::ffff:1.2.3.4"));
  CHECK(ip("1.2.3.4") == ip("::ffff:0102:0304"));
  CHECK(ip("1.2.3.4") == IpAddress::from_v4(0x01020304));
  CHECK(ip("1.2.3.4").is_v4());
  CHECK(ip("::ffff:1.2.3.4").is_v4());
  CHECK_FALSE(ip("::1.2.3.4").is_v4());
  CHECK_FALSE(ip("2001:db8::1").is_v4());
  CHECK(ip("1.2.3.4") != ip("::1.2.3.4"));
  CHECK(ip("1.2.3.4") != ip("1.2.3.5"));
}

TEST_CASE("IpAddress::masked keeps the network and zeroes the rest", "[ip]") {
  CHECK(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd").masked(64) == ip("2001:db8:1:2::"));
  CHECK(ip("2001:db8:1:2ff:1::1").masked(56) == ip("2001:db8:1:200::"));
  CHECK(ip("2001:db8:1:2ff:1::1").masked(60) == ip("2001:db8:1:2f0::"));
  CHECK(ip("2001:db8::1").masked(128) == ip("2001:db8::1"));
  CHECK(ip("2001:db8::1").masked(127) == ip("2001:db8::"));
  CHECK(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").masked(33) == ip("ffff:ffff:8000::"));
  CHECK(ip("2001:db8::1").masked(0) == ip("::"));
}

TEST_CASE("Cidr::parse and contains", "[ip]") {
  SECTION("IPv4 blocks") {
    auto block = Cidr::parse("10.0.0.0/8");
    REQUIRE(block);
    CHECK(block->prefix == 8 + 96);
    CHECK(block->contains(ip("10.0.0.0")));
    CHECK(block->contains(ip("10.255.255.255")));
    CHECK(block->contains(ip("::ffff:10.1.2.3")));
    CHECK_FALSE(block->contains(ip("11.0.0.0")));
    CHECK_FALSE(block->contains(ip("9.255.255.255")));

    auto odd = Cidr::parse("192.168.1.128/25");
    REQUIRE(odd);
    CHECK(odd->contains(ip("192.168.1.200")));
    CHECK_FALSE(odd->contains(ip("192.168.1.127")));
  }
  SECTION("a bare address or /32 is one host") {
    for (auto text : {"192.168.1.7", "192.168.1.7/32"}) {
      auto host = Cidr::parse(text);
      REQUIRE(host);
      CHECK(host->prefix == 128);
      CHECK(host->contains(ip("192.168.1.7")));
      CHECK_FALSE(host->contains(ip("192.168.1.6")));
      CHECK_FALSE(host->contains(ip("192.168.1.8")));
    }
  }
  SECTION("IPv4 /0 holds every IPv4 address but no IPv6 one") {
    auto all_v4 = Cidr::parse("0.0.0.0/0");
    REQUIRE(all_v4);
    CHECK(all_v4->contains(ip("1.2.3.4")));
    CHECK(all_v4->contains(ip("255.255.255.255")));
    CHECK_FALSE(all_v4->contains(ip("2001:db8::1")));
    CHECK_FALSE(all_v4->contains(ip("::1")));
  }
  SECTION("IPv6 blocks") {
    auto block = Cidr::parse("2001:db8::/32");
    REQUIRE(block);
    CHECK(block->prefix == 32);
    CHECK(block->contains(ip("2001:db8::1")));
    CHECK(block->contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
    CHECK_FALSE(block->contains(ip("2001:db9::1")));
    CHECK_FALSE(block->contains(ip("1.2.3.4")));

    auto all = Cidr::parse("::/0");
    REQUIRE(all);
    CHECK(all->contains(ip("2001:db8::1")));
    CHECK(all->contains(ip("1.2.3.4")));

    auto host = Cidr::parse("2001:db8::7/128");
    REQUIRE(host);
    CHECK(host->contains(ip("2001:db8::7")));
    CHECK_FALSE(host->contains(ip("2001:db8::6")));
    CHECK_FALSE(host->contains(ip("2001:db8::8")));

    auto bare = Cidr::parse("::1");
    REQUIRE(bare);
    CHECK(bare->prefix == 128);
    CHECK(bare->contains(ip("::1")));
    CHECK_FALSE(bare->contains(ip("::2")));

    auto odd = Cidr::parse("2001:db8::/63");
    REQUIRE(odd);
    CHECK(odd->contains(ip("2001:db8:0:1::1")));
    CHECK_FALSE(odd->contains(ip("2001:db8:0:2::1")));
  }
  SECTION("host bits below the prefix are cleared") {
    auto block = Cidr::parse("10.1.2.3/8");
    REQUIRE(block);
    CHECK(block->base == ip("10.0.0.0"));
    CHECK(block->contains(ip("10.200.0.1")));

    auto v6 = Cidr::parse("2001:db8::1/64");
    REQUIRE(v6);
    CHECK(v6->base == ip("2001:db8::"));
  }
  SECTION("malformed blocks are rejected") {
    for (auto text : {"", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/08",
                      "10.0.0.0/8/8", "10.0.0.0/ 8", "10.0.0/8", "2001:db8::/129",
                      "2001:db8::/1000", "garbage", "10.0.0.0/a"}) {
      INFO("input: '" << text << "'");
      CHECK_FALSE(Cidr::parse(text).has_value());
    }
  }
}

constexpr auto kXff = sluice::classify::ForwardingHeader::x_forwarded_for;
constexpr auto kForwarded = sluice::classify::ForwardingHeader::forwarded;

TEST_CASE("client_ip follows trusted proxies only", "[ip][client_ip]") {
  const auto trusted = cidrs({"10.0.0.0/8", "2001:db8:ffff::/48"});
  const IpAddress proxy = ip("10.0.0.1");

  SECTION("an untrusted peer is the client, whatever it claims") {
    CHECK(client_ip(ip("203.0.113.9"), trusted, "1.1.1.1", kXff) == ip("203.0.113.9"));
    CHECK(client_ip(ip("203.0.113.9"), trusted, "for=1.1.1.1", kForwarded) == ip("203.0.113.9"));
    CHECK(client_ip(ip("203.0.113.9"), {}, "1.1.1.1", kXff) == ip("203.0.113.9"));
  }
  SECTION("a trusted peer without forwarding headers is the client") {
    CHECK(client_ip(proxy, trusted, "", kXff) == proxy);
    CHECK(client_ip(proxy, trusted, "  ", kXff) == proxy);
  }
  SECTION("the rightmost untrusted X-Forwarded-For entry is the client") {
    CHECK(client_ip(proxy, trusted, "198.51.100.7", kXff) == ip("198.51.100.7"));
    // The left entry was written by the client and may be forged.
    CHECK(client_ip(proxy, trusted, "6.6.6.6, 198.51.100.7", kXff) == ip("198.51.100.7"));
    CHECK(client_ip(proxy, trusted, "6.6.6.6,198.51.100.7", kXff) == ip("198.51.100.7"));
  }
  SECTION("a chain of trusted proxies is skipped") {
    CHECK(client_ip(proxy, trusted, "6.6.6.6, 198.51.100.7, 10.1.1.1, 10.2.2.2", kXff) ==
          ip("198.51.100.7"));
    CHECK(client_ip(proxy, trusted, "198.51.100.7, 2001:db8:ffff::5", kXff) == ip("198.51.100.7"));
  }
  SECTION("several header lines joined with a comma") {
    CHECK(client_ip(proxy, trusted, "6.6.6.6, 198.51.100.7, 10.1.1.1", kXff) == ip("198.51.100.7"));
  }
  SECTION("when every entry is trusted, the leftmost one is the client") {
    CHECK(client_ip(proxy, trusted, "10.9.9.9, 10.1.1.1", kXff) == ip("10.9.9.9"));
  }
  SECTION("an unparsable entry stops the walk at the hop that reported it") {
    CHECK(client_ip(proxy, trusted, "198.51.100.7, garbage, 10.1.1.1", kXff) == ip("10.1.1.1"));
    CHECK(client_ip(proxy, trusted, "198.51.100.7, unknown", kXff) == proxy);
    CHECK(client_ip(proxy, trusted, "198.51.100.7, , 10.1.1.1", kXff) == ip("10.1.1.1"));
    CHECK(client_ip(proxy, trusted, "198.51.100.7,", kXff) == proxy);
    CHECK(client_ip(proxy, trusted, "garbage", kXff) == proxy);
    // Garbage further left than the first untrusted address does not matter.
    CHECK(client_ip(proxy, trusted, "garbage, 198.51.100.7, 10.1.1.1", kXff) == ip("198.51.100.7"));
  }
  SECTION("ports and brackets are stripped, whitespace ignored") {
    CHECK(client_ip(proxy, trusted, "198.51.100.7:8080", kXff) == ip("198.51.100.7"));
    CHECK(client_ip(proxy, trusted, " [2001:db8::1]:443 ", kXff) == ip("2001:db8::1"));
    CHECK(client_ip(proxy, trusted, "[2001:db8::1]", kXff) == ip("2001:db8::1"));
    CHECK(client_ip(proxy, trusted, "\t2001:db8::1\t, 10.1.1.1:80", kXff) == ip("2001:db8::1"));
    CHECK(client_ip(proxy, trusted, "::ffff:198.51.100.7", kXff) == ip("198.51.100.7"));
    // A malformed port is not an address.
    CHECK(client_ip(proxy, trusted, "198.51.100.7:http", kXff) == proxy);
    CHECK(client_ip(proxy, trusted, "[2001:db8::1]443", kXff) == proxy);
  }
  SECTION("Forwarded: for= values, quoted IPv6 with port, other parameters ignored") {
    CHECK(client_ip(proxy, trusted, "for=198.51.100.7", kForwarded) == ip("198.51.100.7"));
    CHECK(client_ip(proxy, trusted, R"(for="[2001:db8::1]:4711")", kForwarded) ==
          ip("2001:db8::1"));
    CHECK(client_ip(proxy, trusted, R"(For="198.51.100.7:80";proto=https;by=10.0.0.1)",
                    kForwarded) == ip("198.51.100.7"));
    CHECK(client_ip(proxy, trusted, R"(for=6.6.6.6, for=198.51.100.7;proto=http, for="10.1.1.1")",
                    kForwarded) == ip("198.51.100.7"));
    CHECK(client_ip(proxy, trusted, "for=10.9.9.9, for=10.1.1.1", kForwarded) == ip("10.9.9.9"));
  }
  SECTION("Forwarded: unknown or obfuscated nodes stop the walk") {
    CHECK(client_ip(proxy, trusted, "for=unknown, for=10.1.1.1", kForwarded) == ip("10.1.1.1"));
    CHECK(client_ip(proxy, trusted, "for=_hidden", kForwarded) == proxy);
    CHECK(client_ip(proxy, trusted, "proto=https", kForwarded) == proxy);
    CHECK(client_ip(proxy, trusted, "for=198.51.100.7, by=10.1.1.1", kForwarded) == proxy);
    // A comma inside a quoted value does not split the element.
    CHECK(client_ip(proxy, trusted, R"(for=198.51.100.7, for="6.6.6.6, 10.1.1.1")", kForwarded) ==
          proxy);
  }
  SECTION("the header read is the one named, never the other") {
    // A proxy that appends to X-Forwarded-For passes a client's own Forwarded through: with
    // X-Forwarded-For configured, that Forwarded is never seen (the caller passes only the one).
    CHECK(client_ip(proxy, trusted, "198.51.100.7", kXff) == ip("198.51.100.7"));
    CHECK(client_ip(proxy, trusted, "for=6.6.6.6", kXff) == proxy);         // not an address list
    CHECK(client_ip(proxy, trusted, "198.51.100.7", kForwarded) == proxy);  // no for= node
  }
}
