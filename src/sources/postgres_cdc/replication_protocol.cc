#include "sources/postgres_cdc/replication_protocol.h"

#include <cstdio>
#include <limits>

namespace sluice::cdc {

// ---------------------------------------------------------------------------
// WireReader

Status WireReader::ErrorAt(size_t offset, const char* field, const std::string& detail) const {
  std::string msg;
  msg.reserve(64 + detail.size());
  msg.append(message_).append(": ").append(field).append(" at offset ").append(std::to_string(offset));
  msg.append(": ").append(detail);
  return Status::DataError(std::move(msg));
}

Status WireReader::Need(const char* field, size_t n) const {
  if (remaining() >= n) return Status::OK();
  return Error(field, "truncated: needs " + std::to_string(n) + " byte" + (n == 1 ? "" : "s") + ", " +
                          std::to_string(remaining()) + " left");
}

Status WireReader::ReadU8(const char* field, uint8_t* out) {
  SLUICE_RETURN_IF_ERROR(Need(field, 1));
  *out = static_cast<uint8_t>(data_[pos_]);
  pos_ += 1;
  return Status::OK();
}

Status WireReader::ReadI16(const char* field, int16_t* out) {
  SLUICE_RETURN_IF_ERROR(Need(field, 2));
  *out = static_cast<int16_t>(LoadBigEndian16(data_.data() + pos_));
  pos_ += 2;
  return Status::OK();
}

Status WireReader::ReadU32(const char* field, uint32_t* out) {
  SLUICE_RETURN_IF_ERROR(Need(field, 4));
  *out = LoadBigEndian32(data_.data() + pos_);
  pos_ += 4;
  return Status::OK();
}

Status WireReader::ReadI32(const char* field, int32_t* out) {
  uint32_t v = 0;
  SLUICE_RETURN_IF_ERROR(ReadU32(field, &v));
  *out = static_cast<int32_t>(v);
  return Status::OK();
}

Status WireReader::ReadU64(const char* field, uint64_t* out) {
  SLUICE_RETURN_IF_ERROR(Need(field, 8));
  *out = LoadBigEndian64(data_.data() + pos_);
  pos_ += 8;
  return Status::OK();
}

Status WireReader::ReadI64(const char* field, int64_t* out) {
  uint64_t v = 0;
  SLUICE_RETURN_IF_ERROR(ReadU64(field, &v));
  *out = static_cast<int64_t>(v);
  return Status::OK();
}

Status WireReader::ReadCString(const char* field, std::string_view* out) {
  size_t end = data_.find('\0', pos_);
  if (end == std::string_view::npos) {
    return Error(field, "truncated: string has no terminating NUL in the " + std::to_string(remaining()) +
                            " bytes left");
  }
  *out = data_.substr(pos_, end - pos_);
  pos_ = end + 1;
  return Status::OK();
}

Status WireReader::ReadBytes(const char* field, size_t n, std::string_view* out) {
  SLUICE_RETURN_IF_ERROR(Need(field, n));
  *out = data_.substr(pos_, n);
  pos_ += n;
  return Status::OK();
}

std::string_view WireReader::ReadRest() {
  std::string_view rest = data_.substr(pos_);
  pos_ = data_.size();
  return rest;
}

Status WireReader::ExpectEnd() const {
  if (remaining() == 0) return Status::OK();
  return Error("end of message",
               std::to_string(remaining()) + " unexpected trailing byte" + (remaining() == 1 ? "" : "s"));
}

// ---------------------------------------------------------------------------
// Lsn

namespace {

/// Parses 1..8 hex digits; false on anything else.
bool ParseHex32(std::string_view s, uint32_t* out) {
  if (s.empty() || s.size() > 8) return false;
  uint32_t v = 0;
  for (char c : s) {
    uint32_t d;
    if (c >= '0' && c <= '9') {
      d = static_cast<uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = static_cast<uint32_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      d = static_cast<uint32_t>(c - 'A' + 10);
    } else {
      return false;
    }
    v = (v << 4) | d;
  }
  *out = v;
  return true;
}

}  // namespace

Result<Lsn> Lsn::Parse(std::string_view text) {
  size_t slash = text.find('/');
  uint32_t hi = 0;
  uint32_t lo = 0;
  if (slash == std::string_view::npos || !ParseHex32(text.substr(0, slash), &hi) ||
      !ParseHex32(text.substr(slash + 1), &lo)) {
    return Status::InvalidArgument("invalid LSN \"" + std::string(text) +
                                   "\": expected two hexadecimal numbers separated by '/', "
                                   "such as 16/B374D848");
  }
  return Lsn((uint64_t{hi} << 32) | lo);
}

std::string Lsn::ToString() const {
  char buf[24];
  int n = std::snprintf(buf, sizeof(buf), "%X/%X", static_cast<unsigned>(value_ >> 32),
                        static_cast<unsigned>(value_ & 0xFFFFFFFFu));
  return std::string(buf, static_cast<size_t>(n));
}

// ---------------------------------------------------------------------------
// Timestamps

std::chrono::system_clock::time_point PgTimestampToTimePoint(PgTimestamp ts) {
  using std::chrono::microseconds;
  using std::chrono::system_clock;
  // Limits of the clock, in microseconds since the Unix epoch.
  constexpr int64_t kMax =
      std::chrono::duration_cast<microseconds>(system_clock::time_point::max().time_since_epoch()).count();
  constexpr int64_t kMin =
      std::chrono::duration_cast<microseconds>(system_clock::time_point::min().time_since_epoch()).count();
  int64_t unix_us;
  if (ts > kMax - kPgEpochUnixMicros) {
    unix_us = kMax;
  } else if (ts < kMin - kPgEpochUnixMicros) {
    unix_us = kMin;
  } else {
    unix_us = ts + kPgEpochUnixMicros;
  }
  return system_clock::time_point(std::chrono::duration_cast<system_clock::duration>(microseconds(unix_us)));
}

PgTimestamp TimePointToPgTimestamp(std::chrono::system_clock::time_point tp) {
  int64_t unix_us = std::chrono::duration_cast<std::chrono::microseconds>(tp.time_since_epoch()).count();
  if (unix_us < std::numeric_limits<int64_t>::min() + kPgEpochUnixMicros) {
    return std::numeric_limits<int64_t>::min();
  }
  return unix_us - kPgEpochUnixMicros;
}

// ---------------------------------------------------------------------------
// CopyData payloads

namespace {

Result<ReplicationMessage> ParseXLogData(std::string_view copy_data) {
  WireReader r(copy_data, "replication XLogData ('w') message");
  uint8_t type = 0;
  uint64_t start = 0;
  uint64_t end = 0;
  XLogData m;
  SLUICE_RETURN_IF_ERROR(r.ReadU8("message type", &type));
  SLUICE_RETURN_IF_ERROR(r.ReadU64("WAL start", &start));
  SLUICE_RETURN_IF_ERROR(r.ReadU64("WAL end", &end));
  SLUICE_RETURN_IF_ERROR(r.ReadI64("send time", &m.send_time));
  m.wal_start = Lsn(start);
  m.wal_end = Lsn(end);
  m.data = r.ReadRest();
  return ReplicationMessage(m);
}

Result<ReplicationMessage> ParseKeepalive(std::string_view copy_data) {
  WireReader r(copy_data, "replication Primary keepalive ('k') message");
  uint8_t type = 0;
  uint64_t end = 0;
  uint8_t reply = 0;
  PrimaryKeepalive m;
  SLUICE_RETURN_IF_ERROR(r.ReadU8("message type", &type));
  SLUICE_RETURN_IF_ERROR(r.ReadU64("WAL end", &end));
  SLUICE_RETURN_IF_ERROR(r.ReadI64("send time", &m.send_time));
  SLUICE_RETURN_IF_ERROR(r.ReadU8("reply requested", &reply));
  if (reply > 1)
    return r.ErrorAt(r.offset() - 1, "reply requested", "must be 0 or 1, got " + std::to_string(reply));
  SLUICE_RETURN_IF_ERROR(r.ExpectEnd());
  m.wal_end = Lsn(end);
  m.reply_requested = reply == 1;
  return ReplicationMessage(m);
}

}  // namespace

Result<ReplicationMessage> ParseReplicationMessage(std::string_view copy_data) {
  if (copy_data.empty()) {
    return Status::DataError("replication message: empty CopyData payload at offset 0");
  }
  switch (copy_data[0]) {
    case 'w':
      return ParseXLogData(copy_data);
    case 'k':
      return ParseKeepalive(copy_data);
    default: {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "0x%02X", static_cast<unsigned>(static_cast<uint8_t>(copy_data[0])));
      return Status::DataError(std::string("replication message: unknown message type ") + buf +
                               " at offset 0 (expected 'w' XLogData or 'k' Primary keepalive)");
    }
  }
}

void AppendStandbyStatusUpdate(const StandbyStatusUpdate& update, std::string* out) {
  out->reserve(out->size() + kStandbyStatusUpdateSize);
  out->push_back('r');
  AppendBigEndian64(out, update.written.value());
  AppendBigEndian64(out, update.flushed.value());
  AppendBigEndian64(out, update.applied.value());
  AppendBigEndian64(out, static_cast<uint64_t>(update.client_time));
  out->push_back(update.reply_requested ? 1 : 0);
}

std::string EncodeStandbyStatusUpdate(const StandbyStatusUpdate& update) {
  std::string out;
  AppendStandbyStatusUpdate(update, &out);
  return out;
}

}  // namespace sluice::cdc
