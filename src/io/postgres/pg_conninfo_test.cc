#include "io/postgres/pg_conninfo.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <cstring>
#include <random>
#include <string>

#include "core/redact.h"
#include "harness/secret_strings.h"

namespace sluice {
namespace {

using sluice::testing::LeakedPiece;
using sluice::testing::PercentEncode;
using sluice::testing::QuoteKeyValue;

/// The password libpq reads from `conninfo` ("<unparsable>" if none).
std::string LibpqPassword(const std::string& conninfo) {
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), nullptr);
  if (options == nullptr) return "<unparsable>";
  std::string password;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (std::strcmp(o->keyword, "password") == 0 && o->val != nullptr) password = o->val;
  }
  PQconninfoFree(options);
  return password;
}

TEST(CheckPgConnInfo, RawAtInAUrlPasswordIsRefusedWithoutEchoingIt) {
  const std::string url = "postgresql://loader:p@ss:w/rd#S3cr3t?&%x@127.0.0.1:5432/shop";
  Status s = CheckPgConnInfo(url);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("the password contains a raw '@'; write it as %40"), std::string::npos)
      << s.message();
  EXPECT_EQ(LeakedPiece(s.message(), "p@ss:w/rd#S3cr3t?&%x"), "") << s.message();
  EXPECT_EQ(s.message().find("ss:w"), std::string::npos) << s.message();
}

TEST(CheckPgConnInfo, RawSlashAndStrayPercentAreRefused) {
  Status slash = CheckPgConnInfo("postgresql://u:pa/zzqqx@h/db");
  EXPECT_NE(slash.message().find("raw '/'; write it as %2F"), std::string::npos) << slash.message();
  EXPECT_EQ(slash.message().find("zzqqx"), std::string::npos) << slash.message();
  Status percent = CheckPgConnInfo("postgresql://u:p%zzssword@h/db");
  EXPECT_NE(percent.message().find("%25"), std::string::npos) << percent.message();
  EXPECT_EQ(percent.message().find("zzssword"), std::string::npos) << percent.message();
  EXPECT_FALSE(CheckPgConnInfo("postgresql://u:p%00ssword@h/db").ok());
  Status user = CheckPgConnInfo("postgresql://a@b@h/db");
  EXPECT_NE(user.message().find("user name contains a raw '@'"), std::string::npos) << user.message();
}

TEST(CheckPgConnInfo, ParseErrorsDoNotQuoteTheString) {
  // libpq: missing "=" after "cdefgh" in connection info string.
  Status missing = CheckPgConnInfo("host=h password=ab cdefgh");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.message().find("cdefgh"), std::string::npos) << missing.message();
  EXPECT_NE(missing.message().find("\\'"), std::string::npos) << "says how to quote\n" << missing.message();
  // libpq: invalid connection option "S3cr3tx".
  Status option = CheckPgConnInfo("host=h password=it's S3cr3tx=1");
  ASSERT_FALSE(option.ok());
  EXPECT_EQ(option.message().find("S3cr3tx"), std::string::npos) << option.message();
  // libpq: unterminated quoted string.
  EXPECT_FALSE(CheckPgConnInfo("host=h password='abc").ok());
  // libpq: invalid URI query parameter: "secretparam".
  Status query = CheckPgConnInfo("postgresql://u:pw@h/db?secretparam=1");
  ASSERT_FALSE(query.ok());
  EXPECT_EQ(query.message().find("secretparam"), std::string::npos) << query.message();
}

TEST(CheckPgConnInfo, AcceptsWhatLibpqReadsAsWritten) {
  EXPECT_TRUE(CheckPgConnInfo("postgresql://u:pa?ss#x y@h:5432/db").ok());
  EXPECT_TRUE(CheckPgConnInfo("postgresql://u:p%40ss%2Fw%25@h/db").ok());
  EXPECT_TRUE(CheckPgConnInfo("postgresql://h/db?application_name=me@host").ok());
  EXPECT_TRUE(CheckPgConnInfo("postgresql://u:pw@h/db?application_name=me@host").ok());
  EXPECT_TRUE(CheckPgConnInfo("postgresql://u@[::1]:5432,h2/db").ok());
  EXPECT_TRUE(CheckPgConnInfo("postgresql:///db?host=/var/run/postgresql").ok());
  EXPECT_TRUE(CheckPgConnInfo(R"(host=h password='it\'s S3cr3t' dbname=x)").ok());
  EXPECT_TRUE(CheckPgConnInfo("").ok());
}

TEST(PgConnInfoSecrets, ListsThePasswordAsWrittenAndAsLibpqReadsIt) {
  auto secrets = PgConnInfoSecrets("postgresql://u:p%40ss%2Fword@h/db");
  EXPECT_NE(std::find(secrets.begin(), secrets.end(), "p%40ss%2Fword"), secrets.end());
  EXPECT_NE(std::find(secrets.begin(), secrets.end(), "p@ss/word"), secrets.end());
  EXPECT_EQ(ScrubPgMessage("x p@ss/word y", secrets), "x *** y");
  secrets = PgConnInfoSecrets(R"(host=h password='it\'s S3cr3t' sslpassword=keypass)");
  EXPECT_NE(std::find(secrets.begin(), secrets.end(), "it's S3cr3t"), secrets.end());
  EXPECT_NE(std::find(secrets.begin(), secrets.end(), "keypass"), secrets.end());
  EXPECT_TRUE(PgConnInfoSecrets("postgresql://u:abc@h/db").empty()) << "too short to hide";
}

// Seeded random passwords of every printable ASCII character: written
// percent-encoded (URL) or quoted (key=value) libpq reads them as they are;
// written raw into a URL they either are read as they are or are refused,
// and no refusal holds a 6-character piece of them.
TEST(CheckPgConnInfo, RandomPasswordsAreReadAsWrittenOrRefusedWithoutAPiece) {
  std::mt19937 rng(611);
  std::uniform_int_distribution<int> length(8, 64);
  std::uniform_int_distribution<int> printable(0x20, 0x7e);
  int refused = 0;
  for (int i = 0; i < 500; ++i) {
    std::string password(static_cast<size_t>(length(rng)), ' ');
    for (char& c : password) c = static_cast<char>(printable(rng));
    SCOPED_TRACE("password: " + password);
    const std::string encoded = "postgresql://loader:" + PercentEncode(password) + "@127.0.0.1:5432/shop";
    ASSERT_TRUE(CheckPgConnInfo(encoded).ok()) << CheckPgConnInfo(encoded).ToString();
    EXPECT_EQ(LibpqPassword(encoded), password);
    const std::string quoted = "host=127.0.0.1 password=" + QuoteKeyValue(password) + " dbname=shop";
    ASSERT_TRUE(CheckPgConnInfo(quoted).ok()) << CheckPgConnInfo(quoted).ToString();
    EXPECT_EQ(LibpqPassword(quoted), password);
    for (const std::string& raw : {"postgresql://loader:" + password + "@127.0.0.1:5432/shop",
                                   "host=127.0.0.1 dbname=shop password=" + password}) {
      Status s = CheckPgConnInfo(raw);
      if (s.ok()) {
        if (raw.starts_with("postgresql:")) {
          EXPECT_EQ(LibpqPassword(raw), PercentDecode(password)) << raw;
        }
      } else {
        ++refused;
        EXPECT_EQ(LeakedPiece(s.message(), password), "") << s.message();
      }
    }
  }
  EXPECT_GT(refused, 100);
}

}  // namespace
}  // namespace sluice
