#pragma once
// Writes the heads sluice sends on: the request to the upstream and the response to the client.
// Each is rendered once into a reused string, sent with its first body bytes in one write.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include <sluice/http1/message.hpp>

namespace sluice::http1 {

// Hop-by-hop fields (RFC 9110 7.6.1, plus the proxy credentials and the pre-standard
// Proxy-Connection): they describe one connection, so they are never forwarded. Fields named by
// the Connection field are hop-by-hop too, except the framing fields and Host, which a client
// must not be able to strip.
bool is_hop_by_hop(std::string_view name) noexcept;

// What sluice changes in a request it forwards.
struct ForwardedRequest {
  std::string_view target;          // the normalised target
  std::string_view client_address;  // appended to X-Forwarded-For
  bool peer_trusted = false;        // the peer is one of trusted_proxies
};

// The request line with HTTP/1.1; the client's fields in order, without hop-by-hop ones, without
// Expect (sluice answers 100-continue itself), without X-Forwarded-Proto and X-Forwarded-Host and
// without Content-Length/Transfer-Encoding. From a peer that is not a trusted proxy, also without
// the other fields frameworks read for the client, scheme or path (Forwarded, X-Real-IP,
// X-Client-IP, True-Client-IP, CF-Connecting-IP, X-Cluster-Client-IP, X-Forwarded-Port, -Prefix,
// -Ssl, -Scheme, X-Url-Scheme); a trusted proxy's pass. Then
// `X-Forwarded-For: <prior values joined by ", ">, <client>`, `X-Forwarded-Proto: http`,
// `X-Forwarded-Host: <Host>` (when the request has a Host), the framing field of head.framing
// (`Content-Length: N` or `Transfer-Encoding: chunked`), and the blank line.
// `out` is cleared first; its capacity is reused.
void write_upstream_request_head(const RequestHead& head, const ForwardedRequest& forwarded,
                                 std::string& out);

// The status line with HTTP/1.1, the status and the upstream's reason; the upstream's fields in
// order without hop-by-hop ones, without fields named like one of `extra` (sluice's quota headers
// replace the upstream's), and without Content-Length/Transfer-Encoding unless `framing` is
// none (then the upstream's Content-Length is kept: it describes the representation of a HEAD or
// 304 answer); then `extra`; then `Content-Length: <content_length>` or
// `Transfer-Encoding: chunked` for `framing` (until_close is not a valid output framing);
// `Connection: close` when !keep_alive; and the blank line.
void write_client_response_head(const ResponseHead& head, std::span<const Field> extra,
                                Framing framing, std::uint64_t content_length, bool keep_alive,
                                std::string& out);

}  // namespace sluice::http1
