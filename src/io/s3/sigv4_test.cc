// SigV4 against the signatures AWS publishes: the four S3 examples of
// "Signature Calculations for the Authorization Header: Transferring
// Payload in a Single Chunk" and cases of the generic aws-sig-v4-test-suite.
#include "io/s3/sigv4.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace sluice::io {
namespace {

using std::chrono::system_clock;

// 2013-05-24T00:00:00Z, the date of the S3 examples.
const system_clock::time_point kS3ExampleTime = system_clock::from_time_t(1369353600);
// 2015-08-30T12:36:00Z, the date of the test suite.
const system_clock::time_point kSuiteTime = system_clock::from_time_t(1440938160);

const SigV4Credentials kS3ExampleCredentials{"AKIAIOSFODNN7EXAMPLE",
                                             "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
const SigV4Credentials kSuiteCredentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
const char kS3Host[] = "examplebucket.s3.amazonaws.com";

std::string AuthorizationOf(const SigV4Request& request) {
  for (const auto& [name, value] : request.headers) {
    if (name == "Authorization") return value;
  }
  return "";
}

SigV4Request S3ExampleRequest(std::string method, std::string uri, QueryList query, HeaderList extra,
                              std::string payload_hash) {
  SigV4Request r;
  r.method = std::move(method);
  r.canonical_uri = std::move(uri);
  r.query = std::move(query);
  r.headers = {{"Host", kS3Host}};
  for (auto& h : extra) r.headers.push_back(std::move(h));
  r.headers.emplace_back("x-amz-content-sha256", payload_hash);
  r.payload_hash = std::move(payload_hash);
  return r;
}

SigV4Request SuiteRequest(std::string method, std::string uri, QueryList query = {}, HeaderList extra = {},
                          std::string payload_hash = std::string(kEmptyPayloadSha256)) {
  SigV4Request r;
  r.method = std::move(method);
  r.canonical_uri = std::move(uri);
  r.query = std::move(query);
  r.headers = {{"Host", "example.amazonaws.com"}};
  for (auto& h : extra) r.headers.push_back(std::move(h));
  r.payload_hash = std::move(payload_hash);
  return r;
}

std::string SuiteSignature(SigV4Request request, const SigV4Credentials& credentials = kSuiteCredentials) {
  return SignSigV4(&request, credentials, "us-east-1", "service", kSuiteTime).signature;
}

TEST(SigV4, S3ExampleGetObjectWithRange) {
  SigV4Request r = S3ExampleRequest("GET", S3CanonicalUri("", "test.txt"), {}, {{"Range", "bytes=0-9"}},
                                    std::string(kEmptyPayloadSha256));
  SigV4Signature sig = SignSigV4(&r, kS3ExampleCredentials, "us-east-1", "s3", kS3ExampleTime);
  EXPECT_EQ(sig.canonical_request,
            "GET\n"
            "/test.txt\n"
            "\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "range:bytes=0-9\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n"
            "\n"
            "host;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sig.string_to_sign,
            "AWS4-HMAC-SHA256\n"
            "20130524T000000Z\n"
            "20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(sig.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(AuthorizationOf(r),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4, S3ExamplePutObjectSignsThePayloadAndEncodesTheKey) {
  std::string payload_hash = Sha256Hex("Welcome to Amazon S3.");
  EXPECT_EQ(payload_hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  std::string uri = S3CanonicalUri("", "test$file.text");
  EXPECT_EQ(uri, "/test%24file.text");
  SigV4Request r = S3ExampleRequest(
      "PUT", uri, {},
      {{"Date", "Fri, 24 May 2013 00:00:00 GMT"}, {"x-amz-storage-class", "REDUCED_REDUNDANCY"}},
      payload_hash);
  SigV4Signature sig = SignSigV4(&r, kS3ExampleCredentials, "us-east-1", "s3", kS3ExampleTime);
  EXPECT_EQ(sig.signed_headers, "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class");
  EXPECT_EQ(Sha256Hex(sig.canonical_request),
            "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
  EXPECT_EQ(sig.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(SigV4, S3ExampleGetBucketLifecycleQueryWithoutValue) {
  SigV4Request r = S3ExampleRequest("GET", S3CanonicalUri("", ""), {{"lifecycle", ""}}, {},
                                    std::string(kEmptyPayloadSha256));
  SigV4Signature sig = SignSigV4(&r, kS3ExampleCredentials, "us-east-1", "s3", kS3ExampleTime);
  EXPECT_NE(sig.canonical_request.find("GET\n/\nlifecycle=\n"), std::string::npos) << sig.canonical_request;
  EXPECT_EQ(Sha256Hex(sig.canonical_request),
            "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca");
  EXPECT_EQ(sig.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(SigV4, S3ExampleListObjectsSortsTheQuery) {
  // Given in the opposite order to the canonical one.
  SigV4Request r = S3ExampleRequest("GET", "/", {{"prefix", "J"}, {"max-keys", "2"}}, {},
                                    std::string(kEmptyPayloadSha256));
  SigV4Signature sig = SignSigV4(&r, kS3ExampleCredentials, "us-east-1", "s3", kS3ExampleTime);
  EXPECT_NE(sig.canonical_request.find("GET\n/\nmax-keys=2&prefix=J\n"), std::string::npos);
  EXPECT_EQ(Sha256Hex(sig.canonical_request),
            "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7");
  EXPECT_EQ(sig.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4, SuiteGetVanilla) {
  SigV4Request r = SuiteRequest("GET", "/");
  SigV4Signature sig = SignSigV4(&r, kSuiteCredentials, "us-east-1", "service", kSuiteTime);
  EXPECT_EQ(sig.canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sig.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  EXPECT_EQ(AuthorizationOf(r),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST(SigV4, SuitePostVanilla) {
  EXPECT_EQ(SuiteSignature(SuiteRequest("POST", "/")),
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

TEST(SigV4, SuiteQueryOrderAndEmptyKey) {
  EXPECT_EQ(SuiteSignature(SuiteRequest("GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}})),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
  EXPECT_EQ(SuiteSignature(SuiteRequest("GET", "/", {{"Param1", "value1"}})),
            "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb");
}

TEST(SigV4, SuiteUnreservedAndUtf8) {
  const std::string unreserved = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  EXPECT_EQ(SuiteSignature(SuiteRequest("GET", S3CanonicalUri("", unreserved))),
            "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f");
  EXPECT_EQ(SuiteSignature(SuiteRequest("GET", "/", {{unreserved, unreserved}})),
            "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197");
  EXPECT_EQ(S3CanonicalUri("", "\xe1\x88\xb4"), "/%E1%88%B4");
  EXPECT_EQ(SuiteSignature(SuiteRequest("GET", S3CanonicalUri("", "\xe1\x88\xb4"))),
            "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
  EXPECT_EQ(SuiteSignature(SuiteRequest("GET", "/", {{"\xe1\x88\xb4", "bar"}})),
            "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04");
}

TEST(SigV4, SuiteHeaderValuesAreTrimmedAndSpacesCollapsed) {
  SigV4Request r =
      SuiteRequest("GET", "/", {}, {{"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}});
  SigV4Signature sig = SignSigV4(&r, kSuiteCredentials, "us-east-1", "service", kSuiteTime);
  EXPECT_NE(sig.canonical_request.find("\nmy-header1:value1\nmy-header2:\"a b c\"\n"), std::string::npos)
      << sig.canonical_request;
  EXPECT_EQ(sig.signature, "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736");
}

TEST(SigV4, SuiteFormBodyIsHashedAndContentTypeSigned) {
  SigV4Request r = SuiteRequest("POST", "/", {}, {{"Content-Type", "application/x-www-form-urlencoded"}},
                                Sha256Hex("Param1=value1"));
  EXPECT_EQ(r.payload_hash, "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
  SigV4Signature sig = SignSigV4(&r, kSuiteCredentials, "us-east-1", "service", kSuiteTime);
  EXPECT_EQ(sig.signed_headers, "content-type;host;x-amz-date");
  EXPECT_EQ(sig.signature, "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
}

TEST(SigV4, SuiteSessionTokenIsSentAndSigned) {
  SigV4Credentials credentials = kSuiteCredentials;
  credentials.session_token =
      "AQoDYXdzEPT//////////"
      "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YU"
      "uwthAx7mSEI/qkPpKPi/"
      "kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8"
      "YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+"
      "scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2"
      "ICCR/oLxBA==";
  SigV4Request r = SuiteRequest("POST", "/");
  SigV4Signature sig = SignSigV4(&r, credentials, "us-east-1", "service", kSuiteTime);
  bool token_sent = false;
  for (const auto& [name, value] : r.headers)
    token_sent |= name == "X-Amz-Security-Token" && value == credentials.session_token;
  EXPECT_TRUE(token_sent);
  EXPECT_EQ(sig.signed_headers, "host;x-amz-date;x-amz-security-token");
  EXPECT_EQ(sig.signature, "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead");
}

TEST(SigV4, SigningKeyMatchesTheDocumentedDerivation) {
  EXPECT_EQ(
      HexEncode(SigV4SigningKey("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")),
      "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

TEST(SigV4, AuthorizationNeverContainsTheSecret) {
  SigV4Request r = SuiteRequest("GET", "/");
  SigV4Signature sig = SignSigV4(&r, kSuiteCredentials, "us-east-1", "service", kSuiteTime);
  EXPECT_EQ(sig.authorization.find(kSuiteCredentials.secret_access_key), std::string::npos);
  EXPECT_EQ(sig.canonical_request.find(kSuiteCredentials.secret_access_key), std::string::npos);
}

TEST(SigV4, S3PathsAreEncodedOnceSegmentBySegment) {
  EXPECT_EQ(S3CanonicalUri("/bucket", "a b/c+d%e=f"), "/bucket/a%20b/c%2Bd%25e%3Df");
  // Already-encoded looking keys are names, encoded again exactly once.
  EXPECT_EQ(S3CanonicalUri("/bucket", "a%20b"), "/bucket/a%2520b");
  // No normalisation: empty segments and dot segments are part of the key.
  EXPECT_EQ(S3CanonicalUri("/bucket", "a//b/../c/./d"), "/bucket/a//b/../c/./d");
  EXPECT_EQ(S3CanonicalUri("/bucket", ""), "/bucket");
  EXPECT_EQ(S3CanonicalUri("", ""), "/");
  EXPECT_EQ(S3CanonicalUri("", "\xc3\xa9t\xc3\xa9.csv"), "/%C3%A9t%C3%A9.csv");
}

TEST(SigV4, QueryStringEncodesEverythingButUnreserved) {
  EXPECT_EQ(UriEncode("a/b c~", false), "a%2Fb%20c~");
  EXPECT_EQ(UriEncode("a/b c~", true), "a/b%20c~");
  EXPECT_EQ(
      CanonicalQueryString({{"prefix", "dir/a b"}, {"continuation-token", "1/x+y=="}, {"list-type", "2"}}),
      "continuation-token=1%2Fx%2By%3D%3D&list-type=2&prefix=dir%2Fa%20b");
  EXPECT_EQ(CanonicalQueryString({{"b", "2"}, {"a", "x y"}, {"a", "1"}}), "a=1&a=x%20y&b=2");
  EXPECT_EQ(CanonicalQueryString({}), "");
}

TEST(SigV4, AmzDateIsUtc) {
  EXPECT_EQ(FormatAmzDate(kS3ExampleTime), "20130524T000000Z");
  EXPECT_EQ(FormatAmzDate(kSuiteTime), "20150830T123600Z");
  EXPECT_EQ(FormatAmzDate(system_clock::from_time_t(0)), "19700101T000000Z");
}

}  // namespace
}  // namespace sluice::io
