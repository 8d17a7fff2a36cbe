// Keeping secrets out of logs and errors.
#pragma once

#include <string>

namespace sluice {

/// "postgresql://user:secret@host/db" -> "postgresql://user:***@host/db";
/// also hides password=... in libpq key/value connection strings.
std::string RedactUrl(const std::string& url);

/// The password in a URL's user info ("" when none), for scrubbing it from
/// text that other code (libpq) may have formatted.
std::string UrlPassword(const std::string& url);

/// Replaces every occurrence of `secret` (when non-empty) in `text` by ***.
std::string RedactSecret(std::string text, const std::string& secret);

}  // namespace sluice
