#include "core/json_string.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace sluice {
namespace {

TEST(AppendJsonString, ParsesBackToTheSameValidText) {
  std::string text = "tab\there \"quoted\" back\\slash \x1b esc \xE2\x80\xA8 ok";
  std::string out;
  AppendJsonString(text, &out);
  EXPECT_EQ(nlohmann::json::parse(out).get<std::string>(), text);
}

TEST(AppendJsonString, ReplacesInvalidUtf8SoTheResultParses) {
  std::string out;
  AppendJsonString("a\xff\xc3(b", &out);
  EXPECT_EQ(out, "\"a\xEF\xBF\xBD\xEF\xBF\xBD(b\"");
  EXPECT_TRUE(nlohmann::json::accept(out));
}

}  // namespace
}  // namespace sluice
