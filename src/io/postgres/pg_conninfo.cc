#include "io/postgres/pg_conninfo.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <optional>
#include <string_view>

#include "core/redact.h"

namespace sluice {
namespace {

// Hiding shorter spellings would turn ordinary words of messages into ***;
// they are not what lets someone log in anyway.
constexpr size_t kMinSecretLength = 4;

bool IsUrl(const std::string& conninfo) {
  // libpq's own test (uri_prefix_length): these two prefixes, case-sensitive.
  return conninfo.starts_with("postgresql://") || conninfo.starts_with("postgres://");
}

bool IsHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

/// libpq's message on one line, without any run of 4 or more characters
/// that it shares with the connection string as written or percent-decoded
/// (libpq quotes the token it could not parse, which may be a piece of a
/// password, and a token may hold quotes, so quoting cannot be relied on).
std::string HideConnInfoText(const char* message, const std::string& conninfo) {
  constexpr size_t kMinRun = 4;
  const std::string decoded = PercentDecode(conninfo);
  std::string text = message != nullptr ? message : "out of memory";
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    size_t run = 0;
    while (i + run < text.size()) {
      std::string_view piece(text.data() + i, run + 1);
      if (conninfo.find(piece) == std::string::npos && decoded.find(piece) == std::string::npos) break;
      ++run;
    }
    if (run >= kMinRun) {
      if (!out.ends_with("...")) out += "...";
      i += run;
      continue;
    }
    out += text[i] == '\n' ? ' ' : text[i];
    ++i;
  }
  return out;
}

/// The URL checks libpq does not do for us: where the user info ends, and
/// percent escapes (libpq quotes a bad one whole).
Status CheckUrl(const std::string& url) {
  const size_t start = UrlSchemeLength(url);
  // libpq: the user info ends at the first '@' before the first '/'.
  const size_t slash = url.find('/', start);
  size_t libpq_at = url.find('@', start);
  if (libpq_at > slash) libpq_at = std::string::npos;
  // Ours: at the last '@' before the host.
  const std::optional<std::string_view> info = UrlUserInfo(url);
  const size_t our_at = info ? start + info->size() : std::string::npos;
  if (our_at != libpq_at) {
    // An '@' in the query string (application_name=me@host) is fine when
    // libpq's own reading ends its user info at an '@' followed by a host
    // and no other '@' comes before the query.
    size_t query = url.find('?', libpq_at == std::string::npos ? start : libpq_at + 1);
    size_t next_at = url.find('@', libpq_at == std::string::npos ? start : libpq_at + 1);
    bool in_query = query != std::string::npos && next_at > query &&
                    (libpq_at == std::string::npos || HostListAt(url, libpq_at + 1));
    if (!in_query) {
      std::string_view user_info = info.value_or(std::string_view());
      size_t colon = user_info.find(':');
      size_t raw = user_info.find_first_of("@/");
      std::string part = colon != std::string_view::npos && raw > colon ? "password" : "user name";
      char c = raw != std::string_view::npos ? user_info[raw] : '@';
      return Status::InvalidArgument(
          "the " + part + " contains a raw '" + std::string(1, c) + "'; write it as " +
          (c == '@' ? "%40" : "%2F") +
          " (in a URL, percent-encode '@', '/' and '%' in user names and passwords)");
    }
  }
  for (size_t i = url.find('%'); i != std::string::npos; i = url.find('%', i + 1)) {
    if (i + 2 >= url.size() || !IsHex(url[i + 1]) || !IsHex(url[i + 2])) {
      return Status::InvalidArgument(
          "a '%' does not start a %XX escape; write a '%' in a user name or password as %25");
    }
    if (url[i + 1] == '0' && url[i + 2] == '0') {
      return Status::InvalidArgument("%00 (a zero byte) is not allowed in a PostgreSQL URL");
    }
  }
  return Status::OK();
}

}  // namespace

Status CheckPgConnInfo(const std::string& conninfo) {
  const bool url = IsUrl(conninfo);
  if (url) SLUICE_RETURN_IF_ERROR(CheckUrl(conninfo));
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options != nullptr) {
    PQconninfoFree(options);
    return Status::OK();
  }
  std::string reason = ScrubPgMessage(HideConnInfoText(error, conninfo), PgConnInfoSecrets(conninfo));
  if (error != nullptr) PQfreemem(error);
  if (url) return Status::InvalidArgument("libpq cannot parse the URL: " + reason);
  return Status::InvalidArgument("libpq cannot parse the connection string: " + reason +
                                 " (write values with spaces, quotes or backslashes as '...', with \\' for ' "
                                 "and \\\\ for \\ inside)");
}

void AddPgSecret(std::vector<std::string>* secrets, std::string secret) {
  if (secret.size() < kMinSecretLength) return;
  if (std::find(secrets->begin(), secrets->end(), secret) != secrets->end()) return;
  // Longest first, so that a shorter spelling inside a longer one cannot
  // leave the rest of the longer one behind.
  auto pos = std::find_if(secrets->begin(), secrets->end(),
                          [&](const std::string& s) { return s.size() < secret.size(); });
  secrets->insert(pos, std::move(secret));
}

std::vector<std::string> PgConnInfoSecrets(const std::string& conninfo) {
  std::vector<std::string> out;
  auto add = [&](std::string secret) { AddPgSecret(&out, std::move(secret)); };
  std::string url_password = UrlPassword(conninfo);
  add(url_password);
  add(PercentDecode(url_password));
  std::string setting = KeyValuePassword(conninfo);
  add(setting);
  add(PercentDecode(setting));
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), nullptr);
  if (options != nullptr) {
    for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
      if (o->val == nullptr) continue;
      if (std::strcmp(o->keyword, "password") == 0 || std::strcmp(o->keyword, "sslpassword") == 0)
        add(o->val);
    }
    PQconninfoFree(options);
  }
  return out;
}

std::string HideSecrets(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) text = RedactSecret(std::move(text), secret);
  return text;
}

std::string ScrubPgMessage(std::string text, const std::vector<std::string>& secrets) {
  return RedactUrl(HideSecrets(std::move(text), secrets));
}

}  // namespace sluice
