// Fuzzes the redaction of secrets (redact.h): URLs and libpq connection
// strings as users write them in configs and as they end up in errors.
// Properties:
//  - RedactUrl hides the password that UrlPassword finds: the redacted text
//    holds it no more often than the URL does once the password itself is
//    cut out (a password may also occur elsewhere, e.g. as the database
//    name: that is not a leak of it). Checked for passwords of 4 or more
//    characters that contain no '*', which the mask itself is made of;
//  - RedactSecret leaves no occurrence of a secret without '*';
//  - CheckPgConnInfo's refusal holds a password it finds (6 or more
//    letters and digits) no more often than the refusal of the same string
//    with that password overwritten: it never quotes it.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/redact.h"
#include "fuzz_check.h"
#include "io/postgres/pg_conninfo.h"

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

void CheckConnInfo(const std::string& conninfo) {
  Status status = CheckPgConnInfo(conninfo);
  if (status.ok()) return;
  for (const std::string& secret : PgConnInfoSecrets(conninfo)) {
    // The refusal's own words may contain the password by chance ("string"):
    // only what the password brings in counts, so compare with the refusal
    // of the same string with the password overwritten by letters. Only for
    // passwords of letters and digits, whose overwriting cannot change how
    // the string parses (and so which refusal it gets).
    if (secret.size() < 6) continue;
    bool plain = true;
    for (char c : secret) plain = plain && std::isalnum(static_cast<unsigned char>(c));
    if (!plain) continue;
    std::string masked = conninfo;
    for (size_t pos = masked.find(secret); pos != std::string::npos; pos = masked.find(secret, pos + 1)) {
      masked.replace(pos, secret.size(), std::string(secret.size(), 'Q'));
    }
    Status neutral = CheckPgConnInfo(masked);
    SLUICE_FUZZ_CHECK(Count(status.message(), secret) <= Count(neutral.message(), secret));
  }
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
  sluice::CheckConnInfo(input);
  sluice::CheckSecret(input);
  return 0;
}
