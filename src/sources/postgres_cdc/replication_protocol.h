// The framing of PostgreSQL's streaming replication protocol, as seen by a
// client after START_REPLICATION ... LOGICAL: the CopyData payloads the
// walsender sends (XLogData 'w', Primary keepalive 'k') and the one the
// client sends back (Standby status update 'r'), plus the small value types
// they carry: WAL positions (Lsn) and PostgreSQL timestamps (microseconds
// since 2000-01-01 00:00:00 UTC).
//
// Everything here is pure: no I/O, no allocation when parsing (parsed
// messages hold string_views into the caller's buffer), all reads
// bounds-checked. Malformed input is a DataError that names the message,
// the field and the byte offset.
//
// Thread-safety: free functions and value types; WireReader is a cursor
// used by one thread.
#pragma once

#include <chrono>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "sluice/status.h"

namespace sluice::cdc {

// ---------------------------------------------------------------------------
// Big-endian helpers (the protocol's byte order).

inline uint16_t LoadBigEndian16(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>((uint16_t{u[0]} << 8) | uint16_t{u[1]});
}
inline uint32_t LoadBigEndian32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}
inline uint64_t LoadBigEndian64(const char* p) {
  return (uint64_t{LoadBigEndian32(p)} << 32) | uint64_t{LoadBigEndian32(p + 4)};
}
inline void AppendBigEndian16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v));
}
inline void AppendBigEndian32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}
inline void AppendBigEndian64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

/// A bounds-checked big-endian cursor over one protocol message. Each read
/// either succeeds and advances, or returns a DataError
/// "<message>: <field> at offset N: ..." and leaves the cursor where it was.
/// `message` must outlive the reader (pass a string literal).
class WireReader {
 public:
  WireReader(std::string_view data, const char* message) : data_(data), message_(message) {}

  Status ReadU8(const char* field, uint8_t* out);
  Status ReadI16(const char* field, int16_t* out);
  Status ReadU32(const char* field, uint32_t* out);
  Status ReadI32(const char* field, int32_t* out);
  Status ReadU64(const char* field, uint64_t* out);
  Status ReadI64(const char* field, int64_t* out);
  /// A NUL-terminated string; *out excludes the terminator.
  Status ReadCString(const char* field, std::string_view* out);
  /// Exactly n raw bytes.
  Status ReadBytes(const char* field, size_t n, std::string_view* out);
  /// All bytes left.
  std::string_view ReadRest();
  /// An error unless every byte has been read.
  Status ExpectEnd() const;

  size_t offset() const { return pos_; }
  size_t remaining() const { return data_.size() - pos_; }
  /// DataError "<message>: <field> at offset <offset()>: <detail>".
  Status Error(const char* field, const std::string& detail) const { return ErrorAt(pos_, field, detail); }
  /// The same for a field that starts at `offset` (one already read).
  Status ErrorAt(size_t offset, const char* field, const std::string& detail) const;

 private:
  Status Need(const char* field, size_t n) const;

  std::string_view data_;
  const char* message_;
  size_t pos_ = 0;
};

// ---------------------------------------------------------------------------
// WAL positions and timestamps.

/// A WAL position (XLogRecPtr). 0 is InvalidXLogRecPtr.
class Lsn {
 public:
  constexpr Lsn() = default;
  constexpr explicit Lsn(uint64_t value) : value_(value) {}

  /// Parses PostgreSQL's text form "16/B374D848" (two hexadecimal numbers of
  /// 1 to 8 digits, either case). Anything else is InvalidArgument.
  static Result<Lsn> Parse(std::string_view text);
  /// "16/B374D848": upper-case hex, no leading zeros, as pg_lsn prints it.
  std::string ToString() const;

  constexpr uint64_t value() const { return value_; }
  constexpr bool valid() const { return value_ != 0; }
  friend constexpr auto operator<=>(Lsn, Lsn) = default;

 private:
  uint64_t value_ = 0;
};

/// Microseconds between the Unix epoch and the PostgreSQL epoch
/// (2000-01-01 00:00:00 UTC).
inline constexpr int64_t kPgEpochUnixMicros = 946'684'800LL * 1'000'000LL;

/// A TimestampTz as it travels on the wire: microseconds since 2000-01-01 UTC.
using PgTimestamp = int64_t;

/// Converts, saturating at the limits of the time_point instead of overflowing.
std::chrono::system_clock::time_point PgTimestampToTimePoint(PgTimestamp ts);
PgTimestamp TimePointToPgTimestamp(std::chrono::system_clock::time_point tp);

// ---------------------------------------------------------------------------
// CopyData payloads of the replication stream.

/// 'w': a chunk of WAL data; for logical replication exactly one output
/// plugin message (pgoutput: see pgoutput_decoder.h).
struct XLogData {
  Lsn wal_start;              // position of `data` in the WAL (0 for some messages)
  Lsn wal_end;                // current end of WAL on the server
  PgTimestamp send_time = 0;  // server clock when sent
  std::string_view data;      // points into the buffer given to the parser
};

/// 'k': the server's heartbeat. When reply_requested is set the client must
/// send a Standby status update at once or risk wal_sender_timeout.
struct PrimaryKeepalive {
  Lsn wal_end;
  PgTimestamp send_time = 0;
  bool reply_requested = false;
};

using ReplicationMessage = std::variant<XLogData, PrimaryKeepalive>;

/// Parses one CopyData payload received in CopyBoth mode. The result's
/// string_views point into `copy_data`: keep that buffer alive while using
/// them. Unknown message types and malformed messages are DataError.
Result<ReplicationMessage> ParseReplicationMessage(std::string_view copy_data);

/// 'r': the client's progress report. Per the protocol each position is
/// "the last WAL byte + 1" written, flushed, applied; the server may recycle
/// WAL and advance the slot up to `flushed`.
struct StandbyStatusUpdate {
  Lsn written;
  Lsn flushed;
  Lsn applied;
  PgTimestamp client_time = 0;
  bool reply_requested = false;
};

inline constexpr size_t kStandbyStatusUpdateSize = 1 + 8 + 8 + 8 + 8 + 1;

/// Appends the 34-byte CopyData payload of `update` to *out.
void AppendStandbyStatusUpdate(const StandbyStatusUpdate& update, std::string* out);
std::string EncodeStandbyStatusUpdate(const StandbyStatusUpdate& update);

}  // namespace sluice::cdc
