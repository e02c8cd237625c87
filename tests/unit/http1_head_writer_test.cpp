#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include <sluice/http1/head_writer.hpp>

using sluice::http1::Field;
using sluice::http1::ForwardedRequest;
using sluice::http1::Framing;
using sluice::http1::RequestHead;
using sluice::http1::ResponseHead;

namespace {

// Heads are built by hand, as the parser would fill them, so these tests do not depend on it.
RequestHead request(std::string_view method, std::initializer_list<Field> fields,
                    Framing framing = Framing::none, std::uint64_t content_length = 0) {
  RequestHead head;
  head.method = method;
  head.target = "/raw";
  head.fields = fields;
  head.framing = framing;
  head.content_length = content_length;
  for (const Field& field : head.fields) {
    if (field.name == "Host" || field.name == "host") head.host = field.value;
  }
  return head;
}

ResponseHead response(unsigned status, std::string_view reason,
                      std::initializer_list<Field> fields) {
  ResponseHead head;
  head.status = status;
  head.reason = reason;
  head.fields = fields;
  return head;
}

std::string upstream_head(const RequestHead& head, std::string_view target = "/a",
                          std::string_view client = "192.0.2.7") {
  std::string out = "stale bytes from the previous request";
  sluice::http1::write_upstream_request_head(head, ForwardedRequest{target, client}, out);
  return out;
}

std::string client_head(const ResponseHead& head, std::vector<Field> extra, Framing framing,
                        std::uint64_t content_length, bool keep_alive = true) {
  std::string out = "stale";
  sluice::http1::write_client_response_head(head, extra, framing, content_length, keep_alive, out);
  return out;
}

}  // namespace

TEST_CASE("hop-by-hop field names, in any case", "[http1][writer]") {
  for (std::string_view name :
       {"Connection", "connection", "Keep-Alive", "KEEP-ALIVE", "Proxy-Connection", "TE", "te",
        "Trailer", "Upgrade", "upgrade", "Proxy-Authorization", "Proxy-Authenticate"}) {
    INFO(name);
    CHECK(sluice::http1::is_hop_by_hop(name));
  }
  for (std::string_view name : {"Host", "Content-Length", "Transfer-Encoding", "Trailers", "TE2",
                                "Connections", "Keep-Alive ", "Authorization", "X-Upgrade", ""}) {
    INFO(name);
    CHECK(!sluice::http1::is_hop_by_hop(name));
  }
}

TEST_CASE("upstream request: a typical GET", "[http1][writer]") {
  const auto head = request(
      "GET", {{"Host", "api.test"}, {"User-Agent", "curl/8.0"}, {"Accept", "*/*"}, {"x-id", "7"}});
  CHECK(upstream_head(head, "/api/login?x=1") ==
        "GET /api/login?x=1 HTTP/1.1\r\n"
        "Host: api.test\r\n"
        "User-Agent: curl/8.0\r\n"
        "Accept: */*\r\n"
        "x-id: 7\r\n"
        "X-Forwarded-For: 192.0.2.7\r\n"
        "X-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: api.test\r\n"
        "\r\n");
}

TEST_CASE("upstream request: the framing field follows head.framing", "[http1][writer]") {
  SECTION("Content-Length") {
    const auto head =
        request("POST", {{"content-length", "5"}, {"Host", "h"}, {"Content-Type", "text/plain"}},
                Framing::content_length, 5);
    CHECK(upstream_head(head) ==
          "POST /a HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n"
          "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n"
          "Content-Length: 5\r\n\r\n");
  }
  SECTION("chunked") {
    const auto head =
        request("PUT", {{"Transfer-Encoding", "chunked"}, {"Host", "h"}}, Framing::chunked);
    CHECK(upstream_head(head) ==
          "PUT /a HTTP/1.1\r\nHost: h\r\n"
          "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n"
          "Transfer-Encoding: chunked\r\n\r\n");
  }
  SECTION("no body") {
    const auto head = request("DELETE", {{"Host", "h"}});
    CHECK(upstream_head(head) ==
          "DELETE /a HTTP/1.1\r\nHost: h\r\n"
          "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n\r\n");
  }
  SECTION("an HTTP/1.0 request without Host gets no X-Forwarded-Host") {
    auto head = request("GET", {{"Accept", "*/*"}});
    head.version_minor = 0;
    CHECK(upstream_head(head) ==
          "GET /a HTTP/1.1\r\nAccept: */*\r\n"
          "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n\r\n");
  }
}

TEST_CASE("upstream request: hop-by-hop fields are not forwarded", "[http1][writer]") {
  const auto head = request("GET", {{"Host", "h"},
                                    {"connection", "keep-alive, Upgrade"},
                                    {"Keep-Alive", "timeout=5"},
                                    {"Proxy-Connection", "keep-alive"},
                                    {"TE", "trailers"},
                                    {"Trailer", "X-Sum"},
                                    {"Upgrade", "websocket"},
                                    {"Proxy-Authorization", "Basic eA=="},
                                    {"Proxy-Authenticate", "Basic"},
                                    {"X-Kept", "1"}});
  CHECK(upstream_head(head) ==
        "GET /a HTTP/1.1\r\nHost: h\r\nX-Kept: 1\r\n"
        "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n\r\n");
}

TEST_CASE("upstream request: every field Connection names is dropped, however many",
          "[http1][writer]") {
  // 24 names over two Connection fields, in other cases and with blanks; the framing fields and
  // Host are named too, and must survive.
  std::vector<std::string> names;
  std::string list = "close";
  for (int i = 0; i < 24; ++i) {
    names.push_back("X-Secret-" + std::to_string(i));
    list +=
        (i % 2 ? " ,\t" : ",") + std::string(i % 3 ? "x-SECRET-" : "X-Secret-") + std::to_string(i);
  }
  RequestHead head = request("POST", {}, Framing::content_length, 2);
  head.fields.push_back({"Host", "h"});
  head.host = "h";
  head.fields.push_back({"Connection", list});
  for (const std::string& name : names)
    head.fields.push_back({name, "hidden"});
  head.fields.push_back({"Content-Length", "2"});
  head.fields.push_back({"X-Visible", "yes"});
  head.fields.push_back({"connection", "content-length, Host, Transfer-Encoding, x-secret-99"});
  head.fields.push_back({"X-Secret-99", "hidden"});
  head.fields.push_back({"X-Secret-990", "shown"});  // a prefix of a name is not the name

  CHECK(upstream_head(head) ==
        "POST /a HTTP/1.1\r\nHost: h\r\nX-Visible: yes\r\nX-Secret-990: shown\r\n"
        "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n"
        "Content-Length: 2\r\n\r\n");
}

TEST_CASE("upstream request: X-Forwarded-* and Expect are sluice's", "[http1][writer]") {
  const auto head = request("POST",
                            {{"Host", "shop.test"},
                             {"X-Forwarded-For", "203.0.113.1"},
                             {"X-Forwarded-Proto", "https"},
                             {"expect", "100-continue"},
                             {"x-forwarded-for", "10.0.0.2, 10.0.0.3"},
                             {"X-Forwarded-Host", "evil.test"},
                             {"X-Forwarded-For", ""}},
                            Framing::content_length, 0);
  CHECK(upstream_head(head, "/cart", "10.0.0.9") ==
        "POST /cart HTTP/1.1\r\nHost: shop.test\r\n"
        "X-Forwarded-For: 203.0.113.1, 10.0.0.2, 10.0.0.3, 10.0.0.9\r\n"
        "X-Forwarded-Proto: http\r\nX-Forwarded-Host: shop.test\r\n"
        "Content-Length: 0\r\n\r\n");
}

TEST_CASE(
    "upstream request: what a trusted proxy reports about the client passes; a client's does "
    "not",
    "[http1][writer]") {
  const auto head = request("GET",
                            {{"Host", "shop.test"},
                             {"X-Forwarded-Proto", "https"},
                             {"X-Forwarded-Host", "www.shop.test"},
                             {"Forwarded", "for=203.0.113.1;proto=https"},
                             {"X-Real-IP", "203.0.113.1"},
                             {"X-Client-IP", "203.0.113.1"},
                             {"True-Client-IP", "203.0.113.1"},
                             {"CF-Connecting-IP", "203.0.113.1"},
                             {"X-Cluster-Client-IP", "203.0.113.1"},
                             {"X-Forwarded-Port", "443"},
                             {"X-Forwarded-Prefix", "/store"},
                             {"X-Forwarded-Ssl", "on"},
                             {"X-Forwarded-Scheme", "https"},
                             {"X-Url-Scheme", "https"},
                             {"X-Other", "kept"}},
                            Framing::none, 0);
  std::string out;
  SECTION("from a trusted proxy: passed, but scheme and host are sluice's own") {
    // A proxy may leave a client's X-Forwarded-Host in (ALB does): never trusted.
    sluice::http1::write_upstream_request_head(head, {"/a", "10.0.0.9", /*peer_trusted=*/true},
                                               out);
    CHECK(out ==
          "GET /a HTTP/1.1\r\nHost: shop.test\r\nForwarded: for=203.0.113.1;proto=https\r\n"
          "X-Real-IP: 203.0.113.1\r\nX-Client-IP: 203.0.113.1\r\nTrue-Client-IP: 203.0.113.1\r\n"
          "CF-Connecting-IP: 203.0.113.1\r\nX-Cluster-Client-IP: 203.0.113.1\r\n"
          "X-Forwarded-Port: 443\r\nX-Forwarded-Prefix: /store\r\nX-Forwarded-Ssl: on\r\n"
          "X-Forwarded-Scheme: https\r\nX-Url-Scheme: https\r\nX-Other: kept\r\n"
          "X-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\n"
          "X-Forwarded-Host: shop.test\r\n\r\n");
  }
  SECTION("from anyone else: all dropped") {
    sluice::http1::write_upstream_request_head(head, {"/a", "198.51.100.3", false}, out);
    CHECK(out ==
          "GET /a HTTP/1.1\r\nHost: shop.test\r\nX-Other: kept\r\n"
          "X-Forwarded-For: 198.51.100.3\r\nX-Forwarded-Proto: http\r\n"
          "X-Forwarded-Host: shop.test\r\n\r\n");
  }
}

TEST_CASE("upstream request: X-Forwarded-For without a known peer", "[http1][writer]") {
  CHECK(upstream_head(request("GET", {{"Host", "h"}}), "/a", "") ==
        "GET /a HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n\r\n");
  CHECK(upstream_head(request("GET", {{"Host", "h"}, {"X-Forwarded-For", "1.2.3.4"}}), "/a", "") ==
        "GET /a HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\n"
        "X-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n\r\n");
}

TEST_CASE("upstream request: Connection cannot hide the chain sluice restates", "[http1][writer]") {
  // sluice consumes the client's X-Forwarded-For and writes its own, with the peer appended.
  const auto head = request("GET", {{"Host", "h"},
                                    {"Connection", "X-Forwarded-For, X-Forwarded-Host"},
                                    {"X-Forwarded-For", "198.51.100.4"}});
  CHECK(upstream_head(head) ==
        "GET /a HTTP/1.1\r\nHost: h\r\n"
        "X-Forwarded-For: 198.51.100.4, 192.0.2.7\r\nX-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: h\r\n\r\n");
}

TEST_CASE("upstream request: the output string's capacity is reused", "[http1][writer]") {
  std::string out;
  const auto big = request("GET", {{"Host", "h"},
                                   {"X-Big", std::string_view("0123456789012345678901234567"
                                                              "8901234567890123456789")}});
  sluice::http1::write_upstream_request_head(big, {"/a", "192.0.2.7"}, out);
  const char* const storage = out.data();
  const auto small = request("GET", {{"Host", "h"}});
  sluice::http1::write_upstream_request_head(small, {"/b", "192.0.2.7"}, out);
  CHECK(out.data() == storage);
  CHECK(out.starts_with("GET /b HTTP/1.1\r\nHost: h\r\nX-Forwarded-For"));
}

TEST_CASE("client response: a typical answer with quota headers", "[http1][writer]") {
  const auto head = response(200, "OK",
                             {{"Content-Type", "application/json"},
                              {"Content-Length", "17"},
                              {"x-ratelimit-limit", "1000"},
                              {"ETag", "\"v1\""}});
  const std::vector<Field> quota = {
      {"X-RateLimit-Limit", "5"}, {"X-RateLimit-Remaining", "4"}, {"X-RateLimit-Reset", "60"}};
  CHECK(client_head(head, quota, Framing::content_length, 17) ==
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/json\r\n"
        "ETag: \"v1\"\r\n"
        "X-RateLimit-Limit: 5\r\n"
        "X-RateLimit-Remaining: 4\r\n"
        "X-RateLimit-Reset: 60\r\n"
        "Content-Length: 17\r\n"
        "\r\n");
}

TEST_CASE("client response: framing and connection fields", "[http1][writer]") {
  const auto head = response(201, "Created",
                             {{"Connection", "keep-alive, X-Hop"},
                              {"Keep-Alive", "timeout=5"},
                              {"Transfer-Encoding", "chunked"},
                              {"X-Hop", "1"},
                              {"Trailer", "X-Sum"},
                              {"Location", "/items/7"}});
  SECTION("chunked, kept alive") {
    CHECK(client_head(head, {}, Framing::chunked, 0) ==
          "HTTP/1.1 201 Created\r\nLocation: /items/7\r\nTransfer-Encoding: chunked\r\n\r\n");
  }
  SECTION("re-framed with a length, then closed") {
    CHECK(client_head(head, {}, Framing::content_length, 12, false) ==
          "HTTP/1.1 201 Created\r\nLocation: /items/7\r\nContent-Length: 12\r\n"
          "Connection: close\r\n\r\n");
  }
  SECTION("a body until close can only be delimited by closing") {
    CHECK(client_head(head, {}, Framing::until_close, 0, true) ==
          "HTTP/1.1 201 Created\r\nLocation: /items/7\r\nConnection: close\r\n\r\n");
  }
}

TEST_CASE("client response: without a body the upstream's Content-Length is kept",
          "[http1][writer]") {
  // The answer to HEAD, or a 304: Content-Length describes the representation, not this message.
  const auto head =
      response(304, "Not Modified",
               {{"ETag", "\"v1\""}, {"Content-Length", "1234"}, {"Transfer-Encoding", "chunked"}});
  CHECK(client_head(head, {{"RateLimit", "\"api\";r=9;t=3"}}, Framing::none, 0) ==
        "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 1234\r\n"
        "RateLimit: \"api\";r=9;t=3\r\n\r\n");
}

TEST_CASE("client response: an empty reason keeps the space of the status line",
          "[http1][writer]") {
  const auto head = response(204, "", {{"Content-Length", "0"}});
  CHECK(client_head(head, {}, Framing::none, 0) == "HTTP/1.1 204 \r\nContent-Length: 0\r\n\r\n");
  CHECK(client_head(response(599, "Odd", {}), {}, Framing::content_length, 0) ==
        "HTTP/1.1 599 Odd\r\nContent-Length: 0\r\n\r\n");
}
