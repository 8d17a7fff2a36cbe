#include "state/http_url_key.h"

#include <gtest/gtest.h>

namespace sluice::state {
namespace {

TEST(HttpUrlKey, HashIsTheLowercaseHexSha256OfTheUrl) {
  // FIPS 180-2's examples.
  EXPECT_EQ(HttpUrlHash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HttpUrlHash(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_NE(HttpUrlHash("https://h/p?token=a"), HttpUrlHash("https://h/p?token=b"));
}

TEST(HttpUrlKey, StoredUrlHidesThePasswordAndSecretQueryValues) {
  EXPECT_EQ(
      StoredHttpUrl("https://u:pw@h/p?api_key=1&apikey=2&token=3&access_token=4&key=5&signature=6&sig=7"
                    "&password=8&city=Oslo#top"),
      "https://u:***@h/p?api_key=***&apikey=***&token=***&access_token=***&key=***&signature=***&sig=***"
      "&password=***&city=Oslo#top");
  EXPECT_EQ(StoredHttpUrl("https://h/p?keyword=k&monkey=m"), "https://h/p?keyword=k&monkey=m");
}

TEST(HttpUrlKey, LastValidatorOfEachUrlWins) {
  const std::vector<HttpValidator> in = {
      {"a", "1", ""}, {"b", "1", ""}, {"a", "2", ""}, {"c", "", "d"}, {"b", "", ""}};
  std::vector<std::string> out;
  for (const auto& v : LastValidatorPerUrl(in)) out.push_back(v.url + v.etag + v.last_modified);
  EXPECT_EQ(out, (std::vector<std::string>{"a2", "cd", "b"}));
  EXPECT_EQ(DistinctUrls({"b", "a", "b", "c", "a"}), (std::vector<std::string>{"b", "a", "c"}));
}

TEST(HttpUrlKey, LookupReturnsTheRowsFoundAsValidatorsOfTheUrlsInTheOrderAsked) {
  HttpValidatorLookup lookup({"https://h/b", "https://h/a", "https://h/b", "https://h/c"});
  ASSERT_EQ(lookup.hashes(), (std::vector<std::string>{HttpUrlHash("https://h/b"), HttpUrlHash("https://h/a"),
                                                       HttpUrlHash("https://h/c")}));
  lookup.Found(HttpUrlHash("https://h/c"), "\"c\"", "");
  lookup.Found(HttpUrlHash("https://h/other"), "\"x\"", "");
  lookup.Found(HttpUrlHash("https://h/b"), "", "Mon, 01 Jan 2024 00:00:00 GMT");
  std::vector<std::string> out;
  for (const auto& v : lookup.Take()) out.push_back(v.url + " " + v.etag + "|" + v.last_modified);
  EXPECT_EQ(out,
            (std::vector<std::string>{"https://h/b |Mon, 01 Jan 2024 00:00:00 GMT", "https://h/c \"c\"|"}));
}

}  // namespace
}  // namespace sluice::state
