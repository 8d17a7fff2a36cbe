// How the SQLite and PostgreSQL state stores file the URLs of HTTP
// validators: under the hex SHA-256 of the URL as requested (the key), with
// only a redacted copy kept for people to read, so that the secrets URLs
// carry (passwords, api_key, token, signature, ... values) never reach the
// state database.
//
// Pure functions; safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "state/state_store.h"

namespace sluice::state {

/// 64 lowercase hex digits: the SHA-256 of the URL's bytes.
std::string HttpUrlHash(std::string_view url);

/// The URL as the url column keeps it: without its password and without
/// the values of query parameters that carry secrets (io::RedactHttpUrl).
std::string StoredHttpUrl(std::string_view url);

/// The URLs without repeats, each where it first appears.
std::vector<std::string> DistinctUrls(const std::vector<std::string>& urls);

/// A lookup of validators by URL hash: the URLs asked for (without repeats)
/// and their hashes, so that rows found by hash come back as validators of
/// the URLs, in the order asked.
class HttpValidatorLookup {
 public:
  explicit HttpValidatorLookup(const std::vector<std::string>& urls);

  /// The hashes to look up, one per distinct URL.
  const std::vector<std::string>& hashes() const { return hashes_; }
  /// Records a row found; a hash not asked for is ignored.
  void Found(const std::string& url_hash, std::string etag, std::string last_modified);
  /// The validators found, in the order of the URLs asked for.
  std::vector<HttpValidator> Take();

 private:
  std::vector<std::string> urls_;
  std::vector<std::string> hashes_;
  std::unordered_map<std::string, size_t> index_;  // hash -> position in urls_
  std::vector<std::optional<HttpValidator>> found_;
};

/// The validators without repeated URLs: of each URL the last one, which is
/// what saving them one by one would leave; in the order of those last ones.
std::vector<HttpValidator> LastValidatorPerUrl(const std::vector<HttpValidator>& validators);

}  // namespace sluice::state
