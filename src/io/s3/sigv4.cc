#include "io/s3/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <time.h>

#include <algorithm>
#include <cctype>
#include <map>

namespace sluice::io {
namespace {

constexpr char kHexLower[] = "0123456789abcdef";
constexpr char kHexUpper[] = "0123456789ABCDEF";
constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == '~';
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Trim() plus "sequential spaces replaced by a single space", as the
// canonical headers of SigV4 want.
std::string NormalizeHeaderValue(std::string_view v) {
  auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  size_t begin = 0;
  size_t end = v.size();
  while (begin < end && is_space(v[begin])) ++begin;
  while (end > begin && is_space(v[end - 1])) --end;
  std::string out;
  out.reserve(end - begin);
  bool in_space = false;
  for (size_t i = begin; i < end; ++i) {
    if (is_space(v[i])) {
      if (!in_space) out += ' ';
      in_space = true;
    } else {
      out += v[i];
      in_space = false;
    }
  }
  return out;
}

}  // namespace

std::string HexEncode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kHexLower[c >> 4];
    out += kHexLower[c & 15];
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest), len));
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest, &len);
  return std::string(reinterpret_cast<const char*>(digest), len);
}

std::string UriEncode(std::string_view s, bool keep_slash) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHexUpper[c >> 4];
      out += kHexUpper[c & 15];
    }
  }
  return out;
}

std::string S3CanonicalUri(std::string_view prefix, std::string_view key) {
  std::string out(prefix);
  if (!key.empty()) {
    out += '/';
    out += UriEncode(key, /*keep_slash=*/true);
  }
  if (out.empty()) out = "/";
  return out;
}

std::string CanonicalQueryString(const QueryList& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query) {
    encoded.emplace_back(UriEncode(name, false), UriEncode(value, false));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out += '&';
    out += name;
    out += '=';
    out += value;
  }
  return out;
}

std::string FormatAmzDate(std::chrono::system_clock::time_point t) {
  time_t secs = std::chrono::system_clock::to_time_t(t);
  struct tm utc;
  gmtime_r(&secs, &utc);
  char buf[32];
  strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &utc);
  return buf;
}

std::string SigV4SigningKey(std::string_view secret_access_key, std::string_view date,
                            std::string_view region, std::string_view service) {
  std::string k_secret = "AWS4";
  k_secret += secret_access_key;
  std::string k_date = HmacSha256(k_secret, date);
  std::string k_region = HmacSha256(k_date, region);
  std::string k_service = HmacSha256(k_region, service);
  return HmacSha256(k_service, "aws4_request");
}

SigV4Signature ComputeSigV4(const SigV4Request& request, const SigV4Credentials& credentials,
                            std::string_view region, std::string_view service, std::string_view amz_date) {
  // Lowercased names, sorted; repeated headers keep their order and are
  // joined with commas.
  std::map<std::string, std::string> canonical_headers;
  for (const auto& [name, value] : request.headers) {
    std::string lower = Lower(name);
    if (lower == "authorization") continue;
    auto [it, inserted] = canonical_headers.emplace(lower, NormalizeHeaderValue(value));
    if (!inserted) {
      it->second += ',';
      it->second += NormalizeHeaderValue(value);
    }
  }

  SigV4Signature sig;
  std::string headers_block;
  for (const auto& [name, value] : canonical_headers) {
    headers_block += name;
    headers_block += ':';
    headers_block += value;
    headers_block += '\n';
    if (!sig.signed_headers.empty()) sig.signed_headers += ';';
    sig.signed_headers += name;
  }

  sig.canonical_request = request.method + "\n" + request.canonical_uri + "\n" +
                          CanonicalQueryString(request.query) + "\n" + headers_block + "\n" +
                          sig.signed_headers + "\n" + request.payload_hash;

  std::string_view date = amz_date.substr(0, 8);
  std::string scope =
      std::string(date) + "/" + std::string(region) + "/" + std::string(service) + "/aws4_request";
  sig.string_to_sign = std::string(kAlgorithm) + "\n" + std::string(amz_date) + "\n" + scope + "\n" +
                       Sha256Hex(sig.canonical_request);

  std::string key = SigV4SigningKey(credentials.secret_access_key, date, region, service);
  sig.signature = HexEncode(HmacSha256(key, sig.string_to_sign));
  sig.authorization = std::string(kAlgorithm) + " Credential=" + credentials.access_key_id + "/" + scope +
                      ", SignedHeaders=" + sig.signed_headers + ", Signature=" + sig.signature;
  return sig;
}

SigV4Signature SignSigV4(SigV4Request* request, const SigV4Credentials& credentials, std::string_view region,
                         std::string_view service, std::chrono::system_clock::time_point now) {
  std::string amz_date = FormatAmzDate(now);
  request->headers.emplace_back("X-Amz-Date", amz_date);
  if (!credentials.session_token.empty()) {
    request->headers.emplace_back("X-Amz-Security-Token", credentials.session_token);
  }
  SigV4Signature sig = ComputeSigV4(*request, credentials, region, service, amz_date);
  request->headers.emplace_back("Authorization", sig.authorization);
  return sig;
}

}  // namespace sluice::io
