#include "core/json_string.h"

#include <cstddef>

namespace sluice {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD
constexpr char kHex[] = "0123456789abcdef";

/// Length of the valid UTF-8 sequence at s[0..n) (n > 0, s[0] >= 0x80), or
/// minus the length of the maximal invalid prefix to replace by one U+FFFD
/// (Unicode's "substitution of maximal subparts").
int Utf8Sequence(const unsigned char* s, size_t n) {
  unsigned c = s[0];
  int need;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c == 0xE0) {
    need = 2;
    lo = 0xA0;
  } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
    need = 2;
  } else if (c == 0xED) {
    need = 2;
    hi = 0x9F;  // no surrogates
  } else if (c == 0xF0) {
    need = 3;
    lo = 0x90;
  } else if (c >= 0xF1 && c <= 0xF3) {
    need = 3;
  } else if (c == 0xF4) {
    need = 3;
    hi = 0x8F;  // nothing beyond U+10FFFF
  } else {
    return -1;
  }
  size_t k = 1;
  for (int j = 0; j < need; ++j, ++k) {
    if (k >= n) return -static_cast<int>(k);
    unsigned b = s[k];
    if (j == 0 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return -static_cast<int>(k);
  }
  return static_cast<int>(k);
}

}  // namespace

void AppendJsonString(std::string_view text, std::string* out) {
  out->push_back('"');
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t run = 0;  // start of bytes not yet copied
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      int len = Utf8Sequence(s + i, n - i);
      if (len > 0) {
        i += static_cast<size_t>(len);
        continue;
      }
      out->append(text.data() + run, i - run);
      out->append(kReplacement);
      i += static_cast<size_t>(-len);
      run = i;
      continue;
    }
    out->append(text.data() + run, i - run);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default: {
        char buf[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out->append(buf, 6);
      }
    }
    ++i;
    run = i;
  }
  out->append(text.data() + run, n - run);
  out->push_back('"');
}

}  // namespace sluice
