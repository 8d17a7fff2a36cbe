// Test-only builder of big-endian protocol messages, for hand-made pgoutput
// and replication-stream inputs. Not used by production code.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::cdc::testing {

class WireBuilder {
 public:
  WireBuilder& Byte(char c) {
    out_.push_back(c);
    return *this;
  }
  WireBuilder& U8(uint8_t v) {
    out_.push_back(static_cast<char>(v));
    return *this;
  }
  WireBuilder& I16(int16_t v) {
    auto u = static_cast<uint16_t>(v);
    out_.push_back(static_cast<char>(u >> 8));
    out_.push_back(static_cast<char>(u));
    return *this;
  }
  WireBuilder& U32(uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out_.push_back(static_cast<char>(v >> s));
    return *this;
  }
  WireBuilder& I32(int32_t v) { return U32(static_cast<uint32_t>(v)); }
  WireBuilder& U64(uint64_t v) {
    for (int s = 56; s >= 0; s -= 8) out_.push_back(static_cast<char>(v >> s));
    return *this;
  }
  WireBuilder& I64(int64_t v) { return U64(static_cast<uint64_t>(v)); }
  /// A NUL-terminated string.
  WireBuilder& CStr(std::string_view s) {
    out_.append(s);
    out_.push_back('\0');
    return *this;
  }
  WireBuilder& Raw(std::string_view s) {
    out_.append(s);
    return *this;
  }

  // pgoutput tuple data helpers.
  WireBuilder& Columns(int16_t n) { return I16(n); }
  WireBuilder& Null() { return Byte('n'); }
  WireBuilder& Toast() { return Byte('u'); }
  WireBuilder& Text(std::string_view v) {
    Byte('t').I32(static_cast<int32_t>(v.size()));
    return Raw(v);
  }
  WireBuilder& Binary(std::string_view v) {
    Byte('b').I32(static_cast<int32_t>(v.size()));
    return Raw(v);
  }

  const std::string& str() const { return out_; }
  operator std::string() const { return out_; }  // NOLINT: convenience in tests

 private:
  std::string out_;
};

}  // namespace sluice::cdc::testing
