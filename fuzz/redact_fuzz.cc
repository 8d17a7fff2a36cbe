// Fuzzes the redaction of secrets (redact.h): URLs and libpq connection
// strings as users write them in configs and as they end up in errors.
// Properties:
//  - RedactUrl hides the password that UrlPassword finds: the redacted text
//    holds it no more often than the URL does once the password itself is
//    cut out (a password may also occur elsewhere, e.g. as the database
//    name: that is not a leak of it). Checked for passwords of 4 or more
//    characters that contain no '*', which the mask itself is made of;
//  - RedactSecret leaves no occurrence of a secret without '*'.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/redact.h"
#include "fuzz_check.h"

namespace sluice {
namespace {

/// Occurrences of `needle` in `text`, overlapping ones included.
size_t Count(std::string_view text, std::string_view needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string_view::npos; pos = text.find(needle, pos + 1)) ++n;
  return n;
}

void CheckUrl(const std::string& url) {
  const std::string redacted = RedactUrl(url);
  const std::string password = UrlPassword(url);
  if (password.size() < 4 || password.find('*') != std::string::npos) return;
  // The password follows "scheme://user:"; neither part contains ':'.
  const size_t at = url.find(':', url.find("://") + 3) + 1;
  SLUICE_FUZZ_CHECK(url.compare(at, password.size(), password) == 0);
  const std::string without = url.substr(0, at) + url.substr(at + password.size());
  SLUICE_FUZZ_CHECK(Count(redacted, password) <= Count(without, password));
}

void CheckSecret(std::string_view input) {
  // "secret\ntext": the first line is the secret.
  const size_t newline = input.find('\n');
  if (newline == std::string_view::npos) return;
  const std::string secret(input.substr(0, newline));
  const std::string text(input.substr(newline + 1));
  const std::string redacted = RedactSecret(text, secret);
  if (!secret.empty() && secret.find('*') == std::string::npos) {
    SLUICE_FUZZ_CHECK(redacted.find(secret) == std::string::npos);
  }
}

}  // namespace
}  // namespace sluice

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  sluice::CheckUrl(input);
  sluice::CheckSecret(input);
  return 0;
}
