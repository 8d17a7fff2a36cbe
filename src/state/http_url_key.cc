#include "state/http_url_key.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "io/http/http_client.h"

namespace sluice::state {

std::string HttpUrlHash(std::string_view url) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(url.data(), url.size(), digest, &len, EVP_sha256(), nullptr) != 1 || len != 32) {
    // Only an OpenSSL without SHA-256 (or out of memory) fails: a programmer
    // error of the build, not something the user can act on.
    std::abort();
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(2 * len, '0');
  for (unsigned int i = 0; i < len; ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 0xf];
  }
  return out;
}

std::string StoredHttpUrl(std::string_view url) { return io::RedactHttpUrl(url); }

std::vector<std::string> DistinctUrls(const std::vector<std::string>& urls) {
  std::vector<std::string> out;
  out.reserve(urls.size());
  std::unordered_set<std::string_view> seen;
  seen.reserve(urls.size());
  for (const std::string& url : urls) {
    if (seen.insert(url).second) out.push_back(url);
  }
  return out;
}

HttpValidatorLookup::HttpValidatorLookup(const std::vector<std::string>& urls) : urls_(DistinctUrls(urls)) {
  hashes_.reserve(urls_.size());
  index_.reserve(urls_.size());
  for (size_t i = 0; i < urls_.size(); ++i) {
    hashes_.push_back(HttpUrlHash(urls_[i]));
    index_.emplace(hashes_.back(), i);
  }
  found_.resize(urls_.size());
}

void HttpValidatorLookup::Found(const std::string& url_hash, std::string etag, std::string last_modified) {
  auto it = index_.find(url_hash);
  if (it == index_.end()) return;
  found_[it->second] = HttpValidator{urls_[it->second], std::move(etag), std::move(last_modified)};
}

std::vector<HttpValidator> HttpValidatorLookup::Take() {
  std::vector<HttpValidator> out;
  for (auto& v : found_) {
    if (v) out.push_back(std::move(*v));
  }
  found_.assign(found_.size(), std::nullopt);
  return out;
}

std::vector<HttpValidator> LastValidatorPerUrl(const std::vector<HttpValidator>& validators) {
  std::unordered_map<std::string_view, size_t> last;
  last.reserve(validators.size());
  for (size_t i = 0; i < validators.size(); ++i) last[validators[i].url] = i;
  if (last.size() == validators.size()) return validators;
  std::vector<HttpValidator> out;
  out.reserve(last.size());
  for (size_t i = 0; i < validators.size(); ++i) {
    if (last.at(validators[i].url) == i) out.push_back(validators[i]);
  }
  return out;
}

}  // namespace sluice::state
