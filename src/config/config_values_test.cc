#include "config/config_values.h"

#include <gtest/gtest.h>

#include <map>

namespace sluice::config {
namespace {

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(Interpolate, ExpandsVariablesDefaultsAndEscapes) {
  auto env = Env({{"HOST", "db1"}, {"EMPTY", ""}});
  EXPECT_EQ(*Interpolate("pg://${HOST}:5432", env, "k"), "pg://db1:5432");
  EXPECT_EQ(*Interpolate("${PORT:-5432}", env, "k"), "5432");
  EXPECT_EQ(*Interpolate("${EMPTY:-x}", env, "k"), "x");
  EXPECT_EQ(*Interpolate("cost $$5 $x", env, "k"), "cost $5 $x");
}

TEST(Interpolate, MissingVariableIsAnErrorNamingItAndTheKey) {
  auto r = Interpolate("${DB_PASSWORD}", Env({}), "[destination] url");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("DB_PASSWORD"), std::string::npos);
  EXPECT_NE(r.status().message().find("[destination] url"), std::string::npos);
}

TEST(ParseBytesAndDurations, UnderstandUnits) {
  EXPECT_EQ(*ParseBytes("8MB"), 8000000);
  EXPECT_EQ(*ParseBytes("1 GiB"), 1073741824);
  EXPECT_EQ(*ParseBytes("1.5KiB"), 1536);
  EXPECT_EQ(*ParseDurationSeconds("24h"), 86400);
  EXPECT_EQ(*ParseDurationSeconds("90s"), 90);
  EXPECT_EQ(*ParseDurationMillis("500ms"), 500);
  EXPECT_EQ(*ParseDurationMillis("2m"), 120000);
  EXPECT_EQ(*ParseDurationSeconds("1500ms"), 2);
  for (const char* bad : {"soon", "", "-5s", "0s", "1.5s", "5 s", "99999999999999999d"}) {
    EXPECT_FALSE(ParseDurationMillis(bad).ok()) << bad;
  }
  for (const char* bad : {"banana", "", "-1MB", "inf", "nan", "1e3", "1.2.3MB", "99999999999TB"}) {
    EXPECT_FALSE(ParseBytes(bad).ok()) << bad;
  }
}

TEST(ParseBytesAndDurations, SizesBeyondInt64AreErrors) {
  // Found by fuzz/config_fuzz.cc: converting these doubles to int64_t was
  // undefined behaviour (in practice a negative size).
  for (const char* text : {"53e081", "1e300GB", "9.3e18", "inf", "nan", "-nan MB"}) {
    Result<int64_t> bytes = ParseBytes(text);
    ASSERT_FALSE(bytes.ok()) << text << " -> " << *bytes;
    EXPECT_EQ(bytes.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(bytes.status().message().find("bad size"), std::string::npos);
  }
  EXPECT_EQ(*ParseBytes("9000000000000000000"), int64_t{9'000'000'000'000'000'000});
}

TEST(ParseBytesAndDurations, DurationsLongerThanAHundredYearsAreErrors) {
  // Found by fuzz/config_fuzz.cc: "every" this long overflowed the clock's
  // nanoseconds when the next run was computed, and n * 86400 overflowed.
  for (const char* text : {"999989999999919", "200000d", "106751991167301d", "9223372036854775807m"}) {
    Result<int64_t> seconds = ParseDurationSeconds(text);
    ASSERT_FALSE(seconds.ok()) << text << " -> " << *seconds;
    EXPECT_EQ(seconds.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(seconds.status().message().find("longer than 100 years"), std::string::npos);
  }
  EXPECT_EQ(*ParseDurationSeconds("36600d"), int64_t{36600} * 86400);
}

}  // namespace
}  // namespace sluice::config
