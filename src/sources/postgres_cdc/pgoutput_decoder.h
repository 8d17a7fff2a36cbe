// PgoutputDecoder: decodes the messages of PostgreSQL's built-in logical
// decoding plugin `pgoutput`, logical replication protocol version 2
// (PostgreSQL 14+; version 1 is the subset without streaming messages).
// Each input is one message: the `data` of an XLogData ('w') payload, or one
// row of pg_logical_slot_{get,peek}_binary_changes().
//
// Lifetime: decoded messages do not own their bytes. Every string_view in
// them (names, prefixes, column values) points into the buffer passed to
// Decode(); copy what must outlive that buffer. The vectors inside a
// message are reused when the same PgoutputMessage object is decoded into
// again with the same alternative, so a steady stream of inserts decodes
// without allocating.
//
// Relation ('R') messages are only decoded here; remembering them by
// relation id and matching tuples to columns is the caller's job.
//
// Errors: malformed or truncated input is a DataError naming the message
// type, the field and the byte offset within the message; nothing is read
// outside the input. A failed Decode() leaves the decoder's stream state
// unchanged.
//
// Thread-safety: one decoder per replication stream, used by one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <variant>
#include <vector>

#include "sluice/status.h"
#include "sources/postgres_cdc/replication_protocol.h"

namespace sluice::cdc {

using Oid = uint32_t;
using Xid = uint32_t;

// ---------------------------------------------------------------------------
// Tuple data

enum class TupleValueKind : char {
  kNull = 'n',
  /// An unchanged TOASTed value: the server did not send it. It is NOT null;
  /// the destination must keep the value it already has.
  kUnchangedToast = 'u',
  kText = 't',
  kBinary = 'b',
};

struct TupleValue {
  TupleValueKind kind = TupleValueKind::kNull;
  /// The value for kText (text output form) and kBinary (send form); empty
  /// otherwise.
  std::string_view data;
};

struct TupleData {
  std::vector<TupleValue> values;  // one per column of the Relation message
};

/// Which old row an Update or Delete carries.
enum class OldTupleKind : char {
  kNone = 0,    // Update only: no old row (replica identity unchanged)
  kKey = 'K',   // the replica identity (key) columns; other columns are null
  kFull = 'O',  // the whole old row (REPLICA IDENTITY FULL)
};

enum class ReplicaIdentity : char {
  kDefault = 'd',  // primary key
  kNothing = 'n',
  kFull = 'f',
  kIndex = 'i',
};

// ---------------------------------------------------------------------------
// Messages. `stream_xid` is set only for messages inside a Stream Start /
// Stream Stop block, where protocol v2 puts the (sub)transaction's xid
// after the message type.

struct BeginMessage {  // 'B'
  Lsn final_lsn;       // LSN of the commit record
  PgTimestamp commit_time = 0;
  Xid xid = 0;
};

struct CommitMessage {  // 'C'
  uint8_t flags = 0;    // unused, 0
  Lsn commit_lsn;
  Lsn end_lsn;  // end of the transaction: confirm this one
  PgTimestamp commit_time = 0;
};

struct OriginMessage {  // 'O'
  Lsn commit_lsn;       // of the commit on the origin server
  std::string_view name;
};

struct RelationColumn {
  uint8_t flags = 0;  // bit 0: part of the replica identity key
  std::string_view name;
  Oid type_oid = 0;
  int32_t type_modifier = -1;  // atttypmod
  bool is_key() const { return (flags & 1) != 0; }
};

struct RelationMessage {  // 'R'
  std::optional<Xid> stream_xid;
  Oid relation_id = 0;
  std::string_view namespace_name;  // empty for pg_catalog
  std::string_view relation_name;
  ReplicaIdentity replica_identity = ReplicaIdentity::kDefault;
  std::vector<RelationColumn> columns;  // generated columns are not sent
};

struct TypeMessage {  // 'Y'
  std::optional<Xid> stream_xid;
  Oid type_oid = 0;
  std::string_view namespace_name;  // empty for pg_catalog
  std::string_view type_name;
};

struct InsertMessage {  // 'I'
  std::optional<Xid> stream_xid;
  Oid relation_id = 0;
  TupleData new_tuple;
};

struct UpdateMessage {  // 'U'
  std::optional<Xid> stream_xid;
  Oid relation_id = 0;
  OldTupleKind old_kind = OldTupleKind::kNone;
  TupleData old_tuple;  // empty when old_kind is kNone
  TupleData new_tuple;
};

struct DeleteMessage {  // 'D'
  std::optional<Xid> stream_xid;
  Oid relation_id = 0;
  OldTupleKind old_kind = OldTupleKind::kKey;  // kKey or kFull
  TupleData old_tuple;
};

struct TruncateMessage {  // 'T'
  static constexpr uint8_t kCascade = 1;
  static constexpr uint8_t kRestartIdentity = 2;

  std::optional<Xid> stream_xid;
  uint8_t options = 0;
  std::vector<Oid> relation_ids;
  bool cascade() const { return (options & kCascade) != 0; }
  bool restart_identity() const { return (options & kRestartIdentity) != 0; }
};

/// 'M': pg_logical_emit_message().
struct LogicalMessage {
  std::optional<Xid> stream_xid;
  bool transactional = false;
  Lsn lsn;
  std::string_view prefix;
  std::string_view content;
};

struct StreamStartMessage {  // 'S'
  Xid xid = 0;
  bool first_segment = false;  // first block of this transaction
};

struct StreamStopMessage {};  // 'E'

struct StreamCommitMessage {  // 'c'
  Xid xid = 0;
  uint8_t flags = 0;  // unused, 0
  Lsn commit_lsn;
  Lsn end_lsn;
  PgTimestamp commit_time = 0;
};

/// 'A'. Protocol v2 carries only the two xids; the abort LSN and timestamp
/// exist only in v4 with streaming = parallel.
struct StreamAbortMessage {
  Xid xid = 0;
  Xid subxid = 0;  // equals xid when the whole transaction aborted
};

using PgoutputMessage =
    std::variant<BeginMessage, CommitMessage, OriginMessage, RelationMessage, TypeMessage, InsertMessage,
                 UpdateMessage, DeleteMessage, TruncateMessage, LogicalMessage, StreamStartMessage,
                 StreamStopMessage, StreamCommitMessage, StreamAbortMessage>;

/// "Insert", "StreamCommit", ... for logs and errors.
const char* PgoutputMessageName(const PgoutputMessage& message);

class PgoutputDecoder {
 public:
  PgoutputDecoder() = default;
  PgoutputDecoder(const PgoutputDecoder&) = delete;
  PgoutputDecoder& operator=(const PgoutputDecoder&) = delete;

  /// Decodes one message into *out, reusing *out's vectors when it already
  /// holds the same alternative. On error *out is unspecified.
  Status Decode(std::string_view message, PgoutputMessage* out);
  /// Convenience form that allocates a fresh message.
  Result<PgoutputMessage> Decode(std::string_view message);

  /// Whether the last decoded message left us inside a Stream Start /
  /// Stream Stop block.
  bool in_stream() const { return stream_xid_.has_value(); }
  /// The xid of the open stream block, if any.
  std::optional<Xid> stream_xid() const { return stream_xid_; }
  /// Forgets the stream state, e.g. after reconnecting.
  void Reset() { stream_xid_.reset(); }
  /// Puts the decoder inside a stream block of `xid`, as a Stream Start
  /// would: for replaying the stored messages of a streamed transaction.
  void EnterStream(Xid xid) { stream_xid_ = xid; }

 private:
  std::optional<Xid> stream_xid_;
};

}  // namespace sluice::cdc
