#include "core/redact.h"

#include <regex>

#include "core/replace_all.h"

namespace sluice {

std::string RedactUrl(const std::string& url) {
  // The password runs to the last '@' of the authority: users do paste
  // unescaped '#', '?' or '/' into passwords, and those must not leak.
  static const std::regex kUserInfo(R"(([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@?#\s]*):[^@\s]*@)");
  static const std::regex kKeyValue(R"((password\s*=\s*)('[^']*'|[^\s&]*))", std::regex::icase);
  std::string out = std::regex_replace(url, kUserInfo, "$1:***@");
  return std::regex_replace(out, kKeyValue, "$1***");
}

std::string UrlPassword(const std::string& url) {
  static const std::regex kPassword(R"(^[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@?#\s]*:([^@\s]*)@)");
  std::smatch m;
  if (std::regex_search(url, m, kPassword)) return m[1].str();
  return {};
}

std::string RedactSecret(std::string text, const std::string& secret) {
  return ReplaceAll(std::move(text), secret, "***");
}

}  // namespace sluice
