// Keeping secrets out of logs and errors: the passwords of URLs and of
// libpq key=value connection strings, and secrets known by value.
//
// Users paste passwords into URLs as they are, with raw '@', '/', '?', '#'
// or spaces, so a URL's user info is taken to run from "://" to the last '@'
// that is followed by a host (see UrlUserInfo), not to the first one, and a
// key=value password is read with libpq's quoting rules. When in doubt,
// more is hidden rather than less.
//
// Pure functions; safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sluice {

/// "postgresql://user:secret@host/db" -> "postgresql://user:***@host/db";
/// also hides the values of password=... (and sslpassword=...) settings in
/// libpq key=value strings and URL query strings, quoted or not.
std::string RedactUrl(const std::string& url);

/// The password in a URL's user info ("" when none), for scrubbing it from
/// text that other code (libpq) may have formatted. It is spelled as the URL
/// spells it (percent-encoded where the URL encodes it).
std::string UrlPassword(const std::string& url);

/// Replaces every occurrence of `secret` (when non-empty) in `text` by ***.
std::string RedactSecret(std::string text, const std::string& secret);

/// The user info ("user:password") of the URL that `url` starts with
/// ("scheme://..."), nullopt when it has none. It runs from "://" to the
/// last '@' that is followed by a host list (host[:port][,host[:port]]...,
/// IPv6 in brackets, possibly empty) and then the end, '/', '?', '#',
/// whitespace or a closing quote or bracket; failing that, to the last '@'.
/// RedactUrl and UrlPassword find it the same way.
std::optional<std::string_view> UrlUserInfo(std::string_view url);

/// Whether text[pos...] is a host list followed by the end of a URL's
/// authority, as UrlUserInfo requires after its '@'.
bool HostListAt(std::string_view text, size_t pos);

/// Where the URL scheme's "://" ends when `text` starts with a URL scheme
/// ([A-Za-z][A-Za-z0-9+.-]*://); 0 when it does not.
size_t UrlSchemeLength(std::string_view text);

/// The value of the last password setting of a libpq key=value string as
/// libpq reads it (quotes and backslash escapes removed); "" when none.
std::string KeyValuePassword(std::string_view conninfo);

/// %XX sequences decoded; a '%' not followed by two hex digits is kept.
std::string PercentDecode(std::string_view text);

}  // namespace sluice
