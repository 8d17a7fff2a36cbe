// AWS Signature Version 4 for the Authorization header: canonical request,
// string to sign, signing key and the header value, as AWS documents them
// ("Signature Calculations for the Authorization Header" for S3 and the
// generic SigV4 test suite). Pure functions: the clock is passed in, nothing
// is global, so everything here is safe from any thread.
//
// S3 differs from other services in two ways that matter here: the path is
// URI-encoded once (no double encoding, no dot-segment normalisation), and
// every request carries x-amz-content-sha256. Both are the caller's job:
// the caller passes the already encoded canonical URI (see S3CanonicalUri)
// and adds the payload hash header before signing.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::io {

/// SHA-256 of the empty string: the payload hash of a request without a body.
inline constexpr std::string_view kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// x-amz-content-sha256 value that tells S3 the payload is not signed.
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

using HeaderList = std::vector<std::pair<std::string, std::string>>;
using QueryList = std::vector<std::pair<std::string, std::string>>;

struct SigV4Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // "" when the credentials are not temporary
};

struct SigV4Request {
  std::string method;         // "GET", "PUT", ...
  std::string canonical_uri;  // the path as sent, already percent-encoded: "/bucket/a%20b"
  QueryList query;            // names and values not encoded; order does not matter
  HeaderList headers;         // as sent, names in any case; must include Host
  std::string payload_hash;   // hex SHA-256 of the body, or kUnsignedPayload
};

/// The intermediate values, for tests and for debugging a SignatureDoesNotMatch.
struct SigV4Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "host;range;x-amz-content-sha256;x-amz-date"
  std::string signature;       // 64 lowercase hex digits
  std::string authorization;   // the Authorization header value
};

/// Lowercase hex of the bytes.
std::string HexEncode(std::string_view bytes);
/// Lowercase hex SHA-256 of data.
std::string Sha256Hex(std::string_view data);
/// Raw (32-byte) HMAC-SHA256 of data under key.
std::string HmacSha256(std::string_view key, std::string_view data);

/// Percent-encodes every byte except the unreserved A-Z a-z 0-9 - _ . ~ (and
/// '/' when keep_slash), with uppercase hex: SigV4's UriEncode().
std::string UriEncode(std::string_view s, bool keep_slash);

/// The path of an S3 object as sent and signed: prefix (e.g. "/bucket", or
/// "" for virtual-host addressing) + "/" + the key with each segment
/// encoded and '/' kept. Not normalised: "a//b" and "../x" stay as they are.
std::string S3CanonicalUri(std::string_view prefix, std::string_view key);

/// Sorted "name=value&..." with names and values encoded; also the query
/// string the client sends, so the two cannot disagree.
std::string CanonicalQueryString(const QueryList& query);

/// "20130524T000000Z" (UTC) for a point in time.
std::string FormatAmzDate(std::chrono::system_clock::time_point t);

/// kSigning = HMAC chain over "AWS4" + secret, date (YYYYMMDD), region,
/// service and "aws4_request". Raw bytes.
std::string SigV4SigningKey(std::string_view secret_access_key, std::string_view date,
                            std::string_view region, std::string_view service);

/// Signs request as it stands (every header in request.headers is signed)
/// for the time amz_date ("YYYYMMDDTHHMMSSZ"). Does not modify the request.
SigV4Signature ComputeSigV4(const SigV4Request& request, const SigV4Credentials& credentials,
                            std::string_view region, std::string_view service, std::string_view amz_date);

/// Adds X-Amz-Date and, with a session token, X-Amz-Security-Token to
/// request->headers, signs, and appends the Authorization header.
SigV4Signature SignSigV4(SigV4Request* request, const SigV4Credentials& credentials, std::string_view region,
                         std::string_view service, std::chrono::system_clock::time_point now);

}  // namespace sluice::io
