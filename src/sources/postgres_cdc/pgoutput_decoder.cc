#include "sources/postgres_cdc/pgoutput_decoder.h"

#include <iterator>
#include <string>
#include <type_traits>

namespace sluice::cdc {

namespace {

/// Returns the alternative T of *out, reusing it (and its vectors'
/// capacity) when *out already holds one.
template <typename T>
T& Reuse(PgoutputMessage* out) {
  if (T* existing = std::get_if<T>(out)) return *existing;
  return out->emplace<T>();
}

Status ReadLsn(WireReader& r, const char* field, Lsn* out) {
  uint64_t v = 0;
  SLUICE_RETURN_IF_ERROR(r.ReadU64(field, &v));
  *out = Lsn(v);
  return Status::OK();
}

/// Reads the xid that v2 puts after the type byte inside stream blocks.
Status ReadStreamXid(WireReader& r, std::optional<Xid> in_stream, std::optional<Xid>* out) {
  out->reset();
  if (!in_stream) return Status::OK();
  Xid xid = 0;
  SLUICE_RETURN_IF_ERROR(r.ReadU32("transaction id", &xid));
  *out = xid;
  return Status::OK();
}

Status ReadTupleData(WireReader& r, TupleData* tuple) {
  int16_t ncols = 0;
  SLUICE_RETURN_IF_ERROR(r.ReadI16("tuple column count", &ncols));
  if (ncols < 0) return r.ErrorAt(r.offset() - 2, "tuple column count", "negative: " + std::to_string(ncols));
  // Every column takes at least its kind byte: reject absurd counts before
  // reserving memory for them.
  if (static_cast<size_t>(ncols) > r.remaining()) {
    return r.ErrorAt(r.offset() - 2, "tuple column count",
                     "truncated: " + std::to_string(ncols) + " columns announced, " +
                         std::to_string(r.remaining()) + " bytes left");
  }
  tuple->values.clear();
  tuple->values.reserve(static_cast<size_t>(ncols));
  for (int16_t i = 0; i < ncols; ++i) {
    uint8_t kind = 0;
    SLUICE_RETURN_IF_ERROR(r.ReadU8("tuple column kind", &kind));
    TupleValue value;
    switch (kind) {
      case 'n':
        value.kind = TupleValueKind::kNull;
        break;
      case 'u':
        value.kind = TupleValueKind::kUnchangedToast;
        break;
      case 't':
      case 'b': {
        value.kind = kind == 't' ? TupleValueKind::kText : TupleValueKind::kBinary;
        int32_t len = 0;
        SLUICE_RETURN_IF_ERROR(r.ReadI32("tuple column length", &len));
        if (len < 0)
          return r.ErrorAt(r.offset() - 4, "tuple column length", "negative: " + std::to_string(len));
        SLUICE_RETURN_IF_ERROR(r.ReadBytes("tuple column value", static_cast<size_t>(len), &value.data));
        break;
      }
      default:
        return r.ErrorAt(r.offset() - 1, "tuple column kind",
                         "unknown kind " + std::to_string(kind) + " for column " + std::to_string(i) +
                             " (expected 'n', 'u', 't' or 'b')");
    }
    tuple->values.push_back(value);
  }
  return Status::OK();
}

Status ExpectTupleTag(WireReader& r, const char* field, uint8_t tag, char expected) {
  if (tag == static_cast<uint8_t>(expected)) return Status::OK();
  return r.ErrorAt(r.offset() - 1, field,
                   std::string("expected '") + expected + "', got byte " + std::to_string(tag));
}

// One function per message type. `r` is positioned after the type byte;
// `in_stream` is the decoder's state before this message.

Status DecodeBegin(WireReader& r, BeginMessage* m) {
  SLUICE_RETURN_IF_ERROR(ReadLsn(r, "final LSN", &m->final_lsn));
  SLUICE_RETURN_IF_ERROR(r.ReadI64("commit time", &m->commit_time));
  return r.ReadU32("transaction id", &m->xid);
}

Status DecodeCommit(WireReader& r, CommitMessage* m) {
  SLUICE_RETURN_IF_ERROR(r.ReadU8("flags", &m->flags));
  SLUICE_RETURN_IF_ERROR(ReadLsn(r, "commit LSN", &m->commit_lsn));
  SLUICE_RETURN_IF_ERROR(ReadLsn(r, "end LSN", &m->end_lsn));
  return r.ReadI64("commit time", &m->commit_time);
}

Status DecodeOrigin(WireReader& r, OriginMessage* m) {
  SLUICE_RETURN_IF_ERROR(ReadLsn(r, "origin commit LSN", &m->commit_lsn));
  return r.ReadCString("origin name", &m->name);
}

Status DecodeRelation(WireReader& r, std::optional<Xid> in_stream, RelationMessage* m) {
  SLUICE_RETURN_IF_ERROR(ReadStreamXid(r, in_stream, &m->stream_xid));
  SLUICE_RETURN_IF_ERROR(r.ReadU32("relation id", &m->relation_id));
  SLUICE_RETURN_IF_ERROR(r.ReadCString("namespace", &m->namespace_name));
  SLUICE_RETURN_IF_ERROR(r.ReadCString("relation name", &m->relation_name));
  uint8_t ident = 0;
  SLUICE_RETURN_IF_ERROR(r.ReadU8("replica identity", &ident));
  switch (ident) {
    case 'd':
    case 'n':
    case 'f':
    case 'i':
      m->replica_identity = static_cast<ReplicaIdentity>(ident);
      break;
    default:
      return r.ErrorAt(r.offset() - 1, "replica identity",
                       "unknown setting " + std::to_string(ident) + " (expected 'd', 'n', 'f' or 'i')");
  }
  int16_t ncols = 0;
  SLUICE_RETURN_IF_ERROR(r.ReadI16("column count", &ncols));
  if (ncols < 0) return r.ErrorAt(r.offset() - 2, "column count", "negative: " + std::to_string(ncols));
  // Each column needs at least flags, an empty name, type and typmod.
  constexpr size_t kMinColumnBytes = 1 + 1 + 4 + 4;
  if (static_cast<size_t>(ncols) * kMinColumnBytes > r.remaining()) {
    return r.ErrorAt(r.offset() - 2, "column count",
                     "truncated: " + std::to_string(ncols) + " columns announced, " +
                         std::to_string(r.remaining()) + " bytes left");
  }
  m->columns.clear();
  m->columns.reserve(static_cast<size_t>(ncols));
  for (int16_t i = 0; i < ncols; ++i) {
    RelationColumn c;
    SLUICE_RETURN_IF_ERROR(r.ReadU8("column flags", &c.flags));
    SLUICE_RETURN_IF_ERROR(r.ReadCString("column name", &c.name));
    SLUICE_RETURN_IF_ERROR(r.ReadU32("column type OID", &c.type_oid));
    SLUICE_RETURN_IF_ERROR(r.ReadI32("column type modifier", &c.type_modifier));
    m->columns.push_back(c);
  }
  return Status::OK();
}

Status DecodeType(WireReader& r, std::optional<Xid> in_stream, TypeMessage* m) {
  SLUICE_RETURN_IF_ERROR(ReadStreamXid(r, in_stream, &m->stream_xid));
  SLUICE_RETURN_IF_ERROR(r.ReadU32("type OID", &m->type_oid));
  SLUICE_RETURN_IF_ERROR(r.ReadCString("namespace", &m->namespace_name));
  return r.ReadCString("type name", &m->type_name);
}

Status DecodeInsert(WireReader& r, std::optional<Xid> in_stream, InsertMessage* m) {
  SLUICE_RETURN_IF_ERROR(ReadStreamXid(r, in_stream, &m->stream_xid));
  SLUICE_RETURN_IF_ERROR(r.ReadU32("relation id", &m->relation_id));
  uint8_t tag = 0;
  SLUICE_RETURN_IF_ERROR(r.ReadU8("new tuple tag", &tag));
  SLUICE_RETURN_IF_ERROR(ExpectTupleTag(r, "new tuple tag", tag, 'N'));
  return ReadTupleData(r, &m->new_tuple);
}

Status DecodeUpdate(WireReader& r, std::optional<Xid> in_stream, UpdateMessage* m) {
  SLUICE_RETURN_IF_ERROR(ReadStreamXid(r, in_stream, &m->stream_xid));
  SLUICE_RETURN_IF_ERROR(r.ReadU32("relation id", &m->relation_id));
  uint8_t tag = 0;
  SLUICE_RETURN_IF_ERROR(r.ReadU8("tuple tag", &tag));
  if (tag == 'K' || tag == 'O') {
    m->old_kind = static_cast<OldTupleKind>(tag);
    SLUICE_RETURN_IF_ERROR(ReadTupleData(r, &m->old_tuple));
    SLUICE_RETURN_IF_ERROR(r.ReadU8("new tuple tag", &tag));
  } else {
    m->old_kind = OldTupleKind::kNone;
    m->old_tuple.values.clear();
  }
  if (tag != 'N') {
    return r.ErrorAt(r.offset() - 1, "tuple tag",
                     "expected 'K', 'O' or 'N', got byte " + std::to_string(tag));
  }
  return ReadTupleData(r, &m->new_tuple);
}

Status DecodeDelete(WireReader& r, std::optional<Xid> in_stream, DeleteMessage* m) {
  SLUICE_RETURN_IF_ERROR(ReadStreamXid(r, in_stream, &m->stream_xid));
  SLUICE_RETURN_IF_ERROR(r.ReadU32("relation id", &m->relation_id));
  uint8_t tag = 0;
  SLUICE_RETURN_IF_ERROR(r.ReadU8("old tuple tag", &tag));
  if (tag != 'K' && tag != 'O') {
    return r.ErrorAt(r.offset() - 1, "old tuple tag", "expected 'K' or 'O', got byte " + std::to_string(tag));
  }
  m->old_kind = static_cast<OldTupleKind>(tag);
  return ReadTupleData(r, &m->old_tuple);
}

Status DecodeTruncate(WireReader& r, std::optional<Xid> in_stream, TruncateMessage* m) {
  SLUICE_RETURN_IF_ERROR(ReadStreamXid(r, in_stream, &m->stream_xid));
  int32_t nrels = 0;
  SLUICE_RETURN_IF_ERROR(r.ReadI32("relation count", &nrels));
  if (nrels < 0) return r.ErrorAt(r.offset() - 4, "relation count", "negative: " + std::to_string(nrels));
  SLUICE_RETURN_IF_ERROR(r.ReadU8("options", &m->options));
  if (static_cast<uint64_t>(nrels) * 4 > r.remaining()) {
    return r.Error("relation ids", "truncated: " + std::to_string(nrels) + " relations announced, " +
                                       std::to_string(r.remaining()) + " bytes left");
  }
  m->relation_ids.clear();
  m->relation_ids.reserve(static_cast<size_t>(nrels));
  for (int32_t i = 0; i < nrels; ++i) {
    Oid id = 0;
    SLUICE_RETURN_IF_ERROR(r.ReadU32("relation id", &id));
    m->relation_ids.push_back(id);
  }
  return Status::OK();
}

Status DecodeLogicalMessage(WireReader& r, std::optional<Xid> in_stream, LogicalMessage* m) {
  SLUICE_RETURN_IF_ERROR(ReadStreamXid(r, in_stream, &m->stream_xid));
  uint8_t flags = 0;
  SLUICE_RETURN_IF_ERROR(r.ReadU8("flags", &flags));
  if (flags > 1) return r.ErrorAt(r.offset() - 1, "flags", "must be 0 or 1, got " + std::to_string(flags));
  m->transactional = flags == 1;
  SLUICE_RETURN_IF_ERROR(ReadLsn(r, "message LSN", &m->lsn));
  SLUICE_RETURN_IF_ERROR(r.ReadCString("prefix", &m->prefix));
  int32_t len = 0;
  SLUICE_RETURN_IF_ERROR(r.ReadI32("content length", &len));
  if (len < 0) return r.ErrorAt(r.offset() - 4, "content length", "negative: " + std::to_string(len));
  return r.ReadBytes("content", static_cast<size_t>(len), &m->content);
}

Status DecodeStreamStart(WireReader& r, StreamStartMessage* m) {
  SLUICE_RETURN_IF_ERROR(r.ReadU32("transaction id", &m->xid));
  uint8_t first = 0;
  SLUICE_RETURN_IF_ERROR(r.ReadU8("first segment", &first));
  if (first > 1)
    return r.ErrorAt(r.offset() - 1, "first segment", "must be 0 or 1, got " + std::to_string(first));
  m->first_segment = first == 1;
  return Status::OK();
}

Status DecodeStreamCommit(WireReader& r, StreamCommitMessage* m) {
  SLUICE_RETURN_IF_ERROR(r.ReadU32("transaction id", &m->xid));
  SLUICE_RETURN_IF_ERROR(r.ReadU8("flags", &m->flags));
  SLUICE_RETURN_IF_ERROR(ReadLsn(r, "commit LSN", &m->commit_lsn));
  SLUICE_RETURN_IF_ERROR(ReadLsn(r, "end LSN", &m->end_lsn));
  return r.ReadI64("commit time", &m->commit_time);
}

Status DecodeStreamAbort(WireReader& r, StreamAbortMessage* m) {
  SLUICE_RETURN_IF_ERROR(r.ReadU32("transaction id", &m->xid));
  return r.ReadU32("subtransaction id", &m->subxid);
}

/// Error-message names; the type byte is repeated so that a log line shows
/// what was on the wire.
const char* WireName(char type) {
  switch (type) {
    case 'B':
      return "pgoutput Begin ('B') message";
    case 'C':
      return "pgoutput Commit ('C') message";
    case 'O':
      return "pgoutput Origin ('O') message";
    case 'R':
      return "pgoutput Relation ('R') message";
    case 'Y':
      return "pgoutput Type ('Y') message";
    case 'I':
      return "pgoutput Insert ('I') message";
    case 'U':
      return "pgoutput Update ('U') message";
    case 'D':
      return "pgoutput Delete ('D') message";
    case 'T':
      return "pgoutput Truncate ('T') message";
    case 'M':
      return "pgoutput Message ('M') message";
    case 'S':
      return "pgoutput Stream Start ('S') message";
    case 'E':
      return "pgoutput Stream Stop ('E') message";
    case 'c':
      return "pgoutput Stream Commit ('c') message";
    case 'A':
      return "pgoutput Stream Abort ('A') message";
    default:
      return "pgoutput message";
  }
}

}  // namespace

const char* PgoutputMessageName(const PgoutputMessage& message) {
  static constexpr const char* kNames[] = {
      "Begin",  "Commit",   "Origin",  "Relation",    "Type",       "Insert",       "Update",
      "Delete", "Truncate", "Message", "StreamStart", "StreamStop", "StreamCommit", "StreamAbort"};
  static_assert(std::size(kNames) == std::variant_size_v<PgoutputMessage>);
  return kNames[message.index()];
}

Status PgoutputDecoder::Decode(std::string_view message, PgoutputMessage* out) {
  if (message.empty()) return Status::DataError("pgoutput message: empty message at offset 0");
  const char type = message[0];
  // Offsets in errors count from the type byte, so that they match a hex
  // dump of the message.
  WireReader reader(message, WireName(type));

  // Type and stream-state checks, reported at offset 0.
  switch (type) {
    case 'B':
    case 'C':
    case 'S':
    case 'c':
    case 'A':
      if (stream_xid_) {
        return reader.Error("message type", "not allowed inside the stream block of transaction " +
                                                std::to_string(*stream_xid_));
      }
      break;
    case 'E':
      if (!stream_xid_) return reader.Error("message type", "Stream Stop outside a stream block");
      break;
    case 'O':  // also inside a stream block (first segment with an origin), without an xid
    case 'R':
    case 'Y':
    case 'I':
    case 'U':
    case 'D':
    case 'T':
    case 'M':
      break;
    case 'b':
    case 'P':
    case 'K':
    case 'r':
    case 'p':
      return reader.Error("message type", std::string("two-phase message '") + type +
                                              "' is not part of protocol version 2 (needs version 3)");
    default:
      return reader.Error(
          "message type",
          "unknown type byte " + std::to_string(static_cast<unsigned>(static_cast<uint8_t>(type))));
  }
  uint8_t type_byte = 0;
  SLUICE_RETURN_IF_ERROR(reader.ReadU8("message type", &type_byte));

  Status st;
  switch (type) {
    case 'B':
      st = DecodeBegin(reader, &Reuse<BeginMessage>(out));
      break;
    case 'C':
      st = DecodeCommit(reader, &Reuse<CommitMessage>(out));
      break;
    case 'O':
      st = DecodeOrigin(reader, &Reuse<OriginMessage>(out));
      break;
    case 'R':
      st = DecodeRelation(reader, stream_xid_, &Reuse<RelationMessage>(out));
      break;
    case 'Y':
      st = DecodeType(reader, stream_xid_, &Reuse<TypeMessage>(out));
      break;
    case 'I':
      st = DecodeInsert(reader, stream_xid_, &Reuse<InsertMessage>(out));
      break;
    case 'U':
      st = DecodeUpdate(reader, stream_xid_, &Reuse<UpdateMessage>(out));
      break;
    case 'D':
      st = DecodeDelete(reader, stream_xid_, &Reuse<DeleteMessage>(out));
      break;
    case 'T':
      st = DecodeTruncate(reader, stream_xid_, &Reuse<TruncateMessage>(out));
      break;
    case 'M':
      st = DecodeLogicalMessage(reader, stream_xid_, &Reuse<LogicalMessage>(out));
      break;
    case 'S':
      st = DecodeStreamStart(reader, &Reuse<StreamStartMessage>(out));
      break;
    case 'E':
      Reuse<StreamStopMessage>(out);
      break;
    case 'c':
      st = DecodeStreamCommit(reader, &Reuse<StreamCommitMessage>(out));
      break;
    case 'A':
      st = DecodeStreamAbort(reader, &Reuse<StreamAbortMessage>(out));
      break;
    default:
      return Status::Internal("pgoutput decoder: unhandled message type");
  }
  SLUICE_RETURN_IF_ERROR(st);
  SLUICE_RETURN_IF_ERROR(reader.ExpectEnd());
  // The stream state changes only once the whole message is known good.
  if (type == 'S') stream_xid_ = std::get<StreamStartMessage>(*out).xid;
  if (type == 'E') stream_xid_.reset();
  return Status::OK();
}

Result<PgoutputMessage> PgoutputDecoder::Decode(std::string_view message) {
  PgoutputMessage out;
  SLUICE_RETURN_IF_ERROR(Decode(message, &out));
  return out;
}

}  // namespace sluice::cdc
