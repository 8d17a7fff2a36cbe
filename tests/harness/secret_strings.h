// Passwords for the tests that check secrets never leak: random ones of
// every printable ASCII character, the ways a user writes them into a
// PostgreSQL connection string, and a check that no piece of one shows up
// in some output. Header-only; pure functions, safe from any thread.
#pragma once

#include <cctype>
#include <cstdio>
#include <random>
#include <string>

namespace sluice::testing {

/// 8 to 64 printable ASCII characters; with `awkward`, three of them are
/// surely a raw '@', a quote and a space (what libpq misreads unescaped).
inline std::string RandomPassword(std::mt19937& rng, bool awkward = false) {
  std::uniform_int_distribution<int> length(8, 64);
  std::uniform_int_distribution<int> printable(0x20, 0x7e);
  std::string out(static_cast<size_t>(length(rng)), ' ');
  for (char& c : out) c = static_cast<char>(printable(rng));
  if (awkward) {
    std::uniform_int_distribution<size_t> third(0, out.size() / 3 - 1);
    out[third(rng)] = '\'';
    out[out.size() / 3 + third(rng)] = '@';
    out[2 * (out.size() / 3) + third(rng)] = ' ';
  }
  return out;
}

/// `text` percent-encoded for a URL's user info (all but letters and digits).
inline std::string PercentEncode(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      out += c;
    } else {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", static_cast<unsigned char>(c));
      out += buf;
    }
  }
  return out;
}

/// A key=value value with libpq's quoting: '...' with \' and \\.
inline std::string QuoteKeyValue(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

/// The first 6-character piece of `secret` that occurs in `text`, or "".
inline std::string LeakedPiece(const std::string& text, const std::string& secret) {
  for (size_t i = 0; i + 6 <= secret.size(); ++i) {
    if (text.find(secret.substr(i, 6)) != std::string::npos) return secret.substr(i, 6);
  }
  return {};
}

}  // namespace sluice::testing
