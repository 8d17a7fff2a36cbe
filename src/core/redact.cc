#include "core/redact.h"

#include <cctype>

#include "core/replace_all.h"

namespace sluice {
namespace {

constexpr std::string_view kMask = "***";

bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }
bool IsAlpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }
bool IsSchemeChar(char c) { return IsAlpha(c) || IsDigit(c) || c == '+' || c == '.' || c == '-'; }
bool IsWordChar(char c) { return IsAlpha(c) || IsDigit(c) || c == '_'; }

/// Characters of a host name, an IPv4 address or a percent-encoded socket
/// directory.
bool IsHostChar(char c) {
  return IsAlpha(c) || IsDigit(c) || c == '.' || c == '-' || c == '_' || c == '~' || c == '%';
}

/// What may follow the authority of a URL: its path, query or fragment, or,
/// in a message, the end of the URL.
bool EndsAuthority(char c) {
  return c == '/' || c == '?' || c == '#' || IsSpace(c) || c == ')' || c == ']' || c == '"' || c == '\'' ||
         c == '>' || c == ';';
}

}  // namespace

bool HostListAt(std::string_view text, size_t pos) {
  while (true) {
    if (pos < text.size() && text[pos] == '[') {
      // An IPv6 address, possibly with a zone: "[fe80::1%25eth0]".
      ++pos;
      while (pos < text.size() && (IsAlpha(text[pos]) || IsDigit(text[pos]) || text[pos] == ':' ||
                                   text[pos] == '.' || text[pos] == '%')) {
        ++pos;
      }
      if (pos >= text.size() || text[pos] != ']') return false;
      ++pos;
    } else {
      while (pos < text.size() && IsHostChar(text[pos])) ++pos;
    }
    if (pos < text.size() && text[pos] == ':') {
      ++pos;
      while (pos < text.size() && IsDigit(text[pos])) ++pos;
    }
    if (pos < text.size() && text[pos] == ',') {
      ++pos;
      continue;
    }
    return pos == text.size() || EndsAuthority(text[pos]);
  }
}

namespace {

/// The '@' that ends the user info of a URL whose "://" ends at `start`:
/// the last one followed by a host list, else the last one; npos if none.
size_t UserInfoEnd(std::string_view text, size_t start) {
  size_t last_any = std::string_view::npos;
  // Scanning backwards, the first match is the last '@'. Each check reads
  // only the host characters after its '@', which no other '@' shares, so
  // the scan stays linear.
  for (size_t at = text.rfind('@'); at != std::string_view::npos && at >= start;
       at = text.rfind('@', at - 1)) {
    if (last_any == std::string_view::npos) last_any = at;
    if (HostListAt(text, at + 1)) return at;
    if (at == 0) break;
  }
  return last_any;
}

/// The user info as it may be shown: "user:***" when a plain user name
/// precedes the first ':', "***" when anything looks odd, and unchanged when
/// it is a plain user name without a password.
std::string MaskUserInfo(std::string_view info) {
  auto plain = [](std::string_view user) {
    for (char c : user) {
      if (c == '@' || c == '/' || c == '?' || c == '#' || c == '"' || c == '\'' || c == '\\' || c == '=' ||
          IsSpace(c)) {
        return false;
      }
    }
    return true;
  };
  size_t colon = info.find(':');
  if (colon == std::string_view::npos) return plain(info) ? std::string(info) : std::string(kMask);
  std::string_view user = info.substr(0, colon);
  if (!plain(user)) return std::string(kMask);
  return std::string(user) + ":" + std::string(kMask);
}

/// Hides the user info of the first URL in `text` (and, when in doubt,
/// everything up to the last '@' after it).
std::string RedactUserInfo(const std::string& text) {
  size_t scheme = text.find("://");
  if (scheme == std::string::npos) return text;
  size_t start = scheme + 3;
  size_t at = UserInfoEnd(text, start);
  if (at == std::string::npos) return text;
  return text.substr(0, start) + MaskUserInfo(std::string_view(text).substr(start, at - start)) +
         text.substr(at);
}

/// Whether a URL query parameter ("&key=") starts at text[pos].
bool QueryParameterAt(std::string_view text, size_t pos) {
  if (pos >= text.size() || text[pos] != '&') return false;
  size_t i = pos + 1;
  while (i < text.size() && IsWordChar(text[i])) ++i;
  return i > pos + 1 && i < text.size() && text[i] == '=';
}

/// Whether a key=value setting ("key =", after whitespace) starts at pos.
bool SettingAt(std::string_view text, size_t pos) {
  while (pos < text.size() && IsSpace(text[pos])) ++pos;
  size_t begin = pos;
  while (pos < text.size() && IsWordChar(text[pos])) ++pos;
  if (pos == begin) return false;
  while (pos < text.size() && IsSpace(text[pos])) ++pos;
  return pos < text.size() && text[pos] == '=';
}

/// libpq's reading of a key=value string's value that starts at `pos`: a
/// quoted one runs to the closing quote (\' and \\ are escapes), an
/// unquoted one to the next whitespace (a backslash escapes the next
/// character). Returns where it ends; `value`, when given, receives it.
size_t ReadKeyValue(std::string_view text, size_t pos, std::string* value) {
  bool quoted = pos < text.size() && text[pos] == '\'';
  if (quoted) ++pos;
  while (pos < text.size()) {
    char c = text[pos];
    if (c == '\\') {
      if (pos + 1 < text.size() && value) *value += text[pos + 1];
      pos += 2;
      continue;
    }
    if (quoted && c == '\'') return pos + 1;
    if (!quoted && IsSpace(c)) return pos;
    if (value) *value += c;
    ++pos;
  }
  return text.size();
}

/// Where to stop hiding a password value that starts at `pos`. In a URL
/// query: at the next "&key=" (libpq stops at any '&', but a password may
/// hold a raw one) or the end. In a key=value string: where libpq's reading
/// ends when the end or another setting follows; otherwise (a raw space or
/// quote in the password, which libpq would misread) at the next setting or
/// the end, as what follows may be the rest of the password.
size_t HiddenValueEnd(std::string_view text, size_t pos, bool in_query) {
  if (in_query) {
    while (pos < text.size() && !QueryParameterAt(text, pos)) ++pos;
    return pos;
  }
  size_t end = ReadKeyValue(text, pos, nullptr);
  if (end >= text.size()) return text.size();
  size_t rest = end;
  while (rest < text.size() && IsSpace(text[rest])) ++rest;
  if (rest == text.size()) return end;
  for (size_t i = end; i < text.size(); ++i) {
    // Only the first space of a run: SettingAt skips the others.
    if (IsSpace(text[i]) && (i == end || !IsSpace(text[i - 1])) && SettingAt(text, i)) return i;
  }
  return text.size();
}

/// Calls fn(key, value_begin, value_end, in_query) for each setting whose
/// key ends in "password" (password, sslpassword, any case) followed by '='.
template <typename Fn>
void ForEachPasswordSetting(std::string_view text, Fn&& fn) {
  constexpr std::string_view kKey = "password";
  size_t pos = 0;
  while (pos < text.size()) {
    if (!IsWordChar(text[pos])) {
      ++pos;
      continue;
    }
    size_t word_begin = pos;
    while (pos < text.size() && IsWordChar(text[pos])) ++pos;
    std::string_view word = text.substr(word_begin, pos - word_begin);
    if (word.size() < kKey.size()) continue;
    bool is_password = true;
    for (size_t i = 0; i < kKey.size(); ++i) {
      char c =
          static_cast<char>(std::tolower(static_cast<unsigned char>(word[word.size() - kKey.size() + i])));
      if (c != kKey[i]) is_password = false;
    }
    if (!is_password) continue;
    size_t eq = pos;
    while (eq < text.size() && IsSpace(text[eq])) ++eq;
    if (eq >= text.size() || text[eq] != '=') continue;
    size_t value = eq + 1;
    bool in_query = word_begin > 0 && (text[word_begin - 1] == '?' || text[word_begin - 1] == '&');
    if (!in_query) {
      while (value < text.size() && IsSpace(text[value])) ++value;
    }
    size_t end = HiddenValueEnd(text, value, in_query);
    fn(word, value, end, in_query);
    pos = end;
  }
}

std::string RedactPasswordSettings(const std::string& text) {
  std::string out;
  size_t copied = 0;
  ForEachPasswordSetting(text, [&](std::string_view, size_t begin, size_t end, bool) {
    out.append(text, copied, begin - copied);
    out += kMask;
    copied = end;
  });
  if (copied == 0) return text;
  out.append(text, copied, std::string::npos);
  return out;
}

}  // namespace

size_t UrlSchemeLength(std::string_view text) {
  size_t i = 0;
  if (text.empty() || !IsAlpha(text[0])) return 0;
  while (i < text.size() && IsSchemeChar(text[i])) ++i;
  return text.substr(i, 3) == "://" ? i + 3 : 0;
}

std::optional<std::string_view> UrlUserInfo(std::string_view url) {
  size_t start = UrlSchemeLength(url);
  if (start == 0) return std::nullopt;
  size_t at = UserInfoEnd(url, start);
  if (at == std::string_view::npos) return std::nullopt;
  return url.substr(start, at - start);
}

std::string RedactUrl(const std::string& url) { return RedactPasswordSettings(RedactUserInfo(url)); }

std::string UrlPassword(const std::string& url) {
  std::optional<std::string_view> info = UrlUserInfo(url);
  if (!info) return {};
  size_t colon = info->find(':');
  if (colon == std::string_view::npos) return {};
  return std::string(info->substr(colon + 1));
}

std::string KeyValuePassword(std::string_view conninfo) {
  std::string password;
  ForEachPasswordSetting(conninfo, [&](std::string_view key, size_t begin, size_t, bool in_query) {
    // libpq's keywords are lower case; the last setting wins.
    if (key != "password") return;
    password.clear();
    if (in_query) {
      password = std::string(conninfo.substr(begin, HiddenValueEnd(conninfo, begin, true) - begin));
    } else {
      ReadKeyValue(conninfo, begin, &password);
    }
  });
  return password;
}

std::string PercentDecode(std::string_view text) {
  auto hex = [](char c) {
    return IsDigit(c) ? c - '0' : std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
  };
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && IsHex(text[i + 1]) && IsHex(text[i + 2])) {
      out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::string RedactSecret(std::string text, const std::string& secret) {
  return ReplaceAll(std::move(text), secret, kMask);
}

}  // namespace sluice
