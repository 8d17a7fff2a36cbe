#include "core/redact.h"
#include "harness/secret_strings.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace sluice {
namespace {

using sluice::testing::LeakedPiece;
using sluice::testing::RandomPassword;
using sluice::testing::PercentEncode;
using sluice::testing::QuoteKeyValue;

/// A key=value value without quotes: \ before spaces, quotes and \.
std::string EscapeKeyValue(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\'' || c == '\\' || c == ' ') out += '\\';
    out += c;
  }
  return out;
}

/// Whether a space in `text` is followed by "key=": libpq reads that as a
/// setting of its own, so no one can tell where such a raw password ends.
bool HasSettingInside(const std::string& text) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != ' ') continue;
    size_t j = i + 1;
    while (j < text.size() && (std::isalnum(static_cast<unsigned char>(text[j])) || text[j] == '_')) ++j;
    while (j < text.size() && text[j] == ' ') ++j;
    if (j > i + 1 && j < text.size() && text[j] == '=') return true;
  }
  return false;
}

TEST(RedactUrl, HidesThePasswordOfAUrl) {
  EXPECT_EQ(RedactUrl("postgresql://app:s3cr3t@db:5432/x"), "postgresql://app:***@db:5432/x");
  EXPECT_EQ(RedactUrl("postgresql://app@db/x"), "postgresql://app@db/x");
  EXPECT_EQ(RedactUrl("postgresql://app:s3cr3t@[::1]:5432,db2:5433/x?sslmode=require"),
            "postgresql://app:***@[::1]:5432,db2:5433/x?sslmode=require");
  EXPECT_EQ(RedactUrl("postgresql://app:s3cr3t@/x"), "postgresql://app:***@/x");
  EXPECT_EQ(RedactUrl("host=db password=s3cr3t user=x"), "host=db password=*** user=x");
}

TEST(RedactUrl, HidesPasswordsWithHashQuestionMarkAndSlash) {
  EXPECT_EQ(RedactUrl("postgresql://app:pa#ss@db/x"), "postgresql://app:***@db/x");
  EXPECT_EQ(RedactUrl("postgresql://app:pa?ss@db/x"), "postgresql://app:***@db/x");
  EXPECT_EQ(RedactUrl("postgresql://app:pa/ss@db/x"), "postgresql://app:***@db/x");
  EXPECT_EQ(UrlPassword("postgresql://app:pa/ss@db/x"), "pa/ss");
  EXPECT_EQ(UrlPassword("postgresql://app@db/x"), "");
}

TEST(RedactUrl, HidesEverythingUpToTheLastAtBeforeTheHost) {
  const std::string url = "postgresql://loader:p@ss:w/rd#S3cr3t?&%x@127.0.0.1:5432/shop";
  EXPECT_EQ(RedactUrl(url), "postgresql://loader:***@127.0.0.1:5432/shop");
  EXPECT_EQ(UrlPassword(url), "p@ss:w/rd#S3cr3t?&%x");
  EXPECT_EQ(RedactUrl("postgresql://u:a@b@c d@host"), "postgresql://u:***@host");
  EXPECT_EQ(RedactUrl("postgresql://u:x@evil/db@127.0.0.1/shop"), "postgresql://u:***@127.0.0.1/shop");
  // Without a user name before the ':' (or with an odd one) all of it goes.
  EXPECT_EQ(RedactUrl("postgresql://p@ss@db/x"), "postgresql://***@db/x");
  EXPECT_EQ(RedactUrl("postgresql://a b:c@db/x"), "postgresql://***@db/x");
  // In a message, the URL ends at a quote, a bracket or whitespace.
  EXPECT_EQ(RedactUrl("cannot connect (postgresql://u:p@ss w@db): refused"),
            "cannot connect (postgresql://u:***@db): refused");
  EXPECT_EQ(RedactUrl("'postgresql://u:p@ss@db' is wrong"), "'postgresql://u:***@db' is wrong");
}

TEST(RedactUrl, HidesPercentEncodedPasswords) {
  const std::string url = "postgresql://u:p%40ss%2Fw%25rd@db/x";
  EXPECT_EQ(RedactUrl(url), "postgresql://u:***@db/x");
  EXPECT_EQ(UrlPassword(url), "p%40ss%2Fw%25rd");
  EXPECT_EQ(PercentDecode(UrlPassword(url)), "p@ss/w%rd");
  EXPECT_EQ(PercentDecode("%zz%4"), "%zz%4");
}

TEST(RedactUrl, HidesKeyValuePasswordsByLibpqQuotingRules) {
  EXPECT_EQ(RedactUrl(R"(host=h password='it\'s S3cr3t' user=x)"), "host=h password=*** user=x");
  EXPECT_EQ(RedactUrl(R"(host=h password = 'a\\b c\'' user=x)"), "host=h password = *** user=x");
  EXPECT_EQ(RedactUrl(R"(host=h password=ab\ cd user=x)"), "host=h password=*** user=x");
  EXPECT_EQ(RedactUrl(R"(password='unterminated quote runs to the end)"), "password=***");
  EXPECT_EQ(RedactUrl("host=h PASSWORD=x1 sslpassword='k y' user=x"),
            "host=h PASSWORD=*** sslpassword=*** user=x");
  EXPECT_EQ(RedactUrl("password authentication failed for user \"x\""),
            "password authentication failed for user \"x\"");
  EXPECT_EQ(KeyValuePassword(R"(host=h password='it\'s S3cr3t' user=x)"), "it's S3cr3t");
  EXPECT_EQ(KeyValuePassword(R"(password=ab\ c\\d)"), R"(ab c\d)");
  EXPECT_EQ(KeyValuePassword("host=h sslpassword=abc"), "");
}

TEST(RedactUrl, HidesPasswordsInUrlQueryStrings) {
  EXPECT_EQ(RedactUrl("postgresql://h/db?sslmode=disable&password=a&b c&application_name=x"),
            "postgresql://h/db?sslmode=disable&password=***&application_name=x");
  EXPECT_EQ(RedactUrl("postgresql://h/db?password=a b'c"), "postgresql://h/db?password=***");
}

TEST(RedactUrl, UserInfoEndsAtTheLastAtBeforeAHost) {
  EXPECT_EQ(UrlUserInfo("postgresql://u:a@b/c@h:5432/db"), "u:a@b/c");
  EXPECT_EQ(UrlUserInfo("postgresql://u:a@b@h"), "u:a@b");
  EXPECT_EQ(UrlUserInfo("postgresql://h/db"), std::nullopt);
  EXPECT_EQ(UrlUserInfo("not a url u:p@h"), std::nullopt);
  // No '@' is followed by a host: the last one, to be safe.
  EXPECT_EQ(UrlUserInfo("postgresql://u:a@b!c@!!"), "u:a@b!c");
  EXPECT_EQ(UrlSchemeLength("postgres://x"), 11u);
  EXPECT_EQ(UrlSchemeLength("1x://x"), 0u);
}

// Seeded random passwords of every printable ASCII character, written raw
// and percent-encoded in URLs and raw, escaped and quoted in key=value
// strings: no 6-character piece survives RedactUrl.
TEST(RedactUrl, RandomPasswordsLeaveNoPieceBehind) {
  std::mt19937 rng(20240611);
  for (int i = 0; i < 2000; ++i) {
    const std::string password = RandomPassword(rng);
    const std::string raw_url = "postgresql://loader:" + password + "@127.0.0.1:5432/shop?sslmode=disable";
    const std::string encoded_url = "postgresql://loader:" + PercentEncode(password) + "@127.0.0.1:5432/shop";
    const std::string quoted = "host=127.0.0.1 password=" + QuoteKeyValue(password) + " dbname=shop";
    const std::string escaped = "host=127.0.0.1 password=" + EscapeKeyValue(password) + " dbname=shop";
    const std::string raw_last = "host=127.0.0.1 dbname=shop password=" + password;
    const std::string query = "postgresql://127.0.0.1/shop?password=" + PercentEncode(password);
    SCOPED_TRACE("password: " + password);
    EXPECT_EQ(UrlPassword(raw_url), password);
    EXPECT_EQ(PercentDecode(UrlPassword(encoded_url)), password);
    EXPECT_EQ(KeyValuePassword(quoted), password);
    EXPECT_EQ(KeyValuePassword(escaped), password);
    std::vector<std::string> texts = {raw_url, encoded_url, quoted, escaped, query};
    if (!HasSettingInside(password)) texts.push_back(raw_last);
    for (const std::string& text : texts) {
      const std::string redacted = RedactUrl(text);
      EXPECT_EQ(LeakedPiece(redacted, password), "") << redacted;
      EXPECT_EQ(LeakedPiece(redacted, PercentEncode(password)), "") << redacted;
      EXPECT_EQ(LeakedPiece(redacted, QuoteKeyValue(password)), "") << redacted;
    }
    EXPECT_EQ(RedactUrl(raw_url), "postgresql://loader:***@127.0.0.1:5432/shop?sslmode=disable");
    EXPECT_EQ(RedactUrl(quoted), "host=127.0.0.1 password=*** dbname=shop");
    EXPECT_EQ(RedactUrl(escaped), "host=127.0.0.1 password=*** dbname=shop");
    if (::testing::Test::HasFailure()) break;
  }
}

TEST(RedactSecret, ReplacesEveryOccurrence) {
  EXPECT_EQ(RedactSecret("a pw b pw", "pw"), "a *** b ***");
  EXPECT_EQ(RedactSecret("nothing", ""), "nothing");
}

}  // namespace
}  // namespace sluice
