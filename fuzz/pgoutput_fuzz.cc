// Fuzzes PgoutputDecoder, which decodes every message a replication
// connection receives from the server. Each input is one pgoutput message,
// decoded by a decoder outside a stream block and by one inside the block
// of a streamed transaction. Properties:
//  - a message that fails is a DataError and leaves the stream state as it
//    was;
//  - a message that decodes encodes back to exactly the input bytes (the
//    decoder neither drops nor invents a field);
//  - decoding into a message object that still holds other values of the
//    same type (the decoder reuses vectors) gives the same message.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "fuzz_check.h"
#include "sources/postgres_cdc/pgoutput_decoder.h"

namespace sluice::cdc {
namespace {

constexpr Xid kStreamXid = 0x01020304;

void AppendLsn(Lsn lsn, std::string* out) { AppendBigEndian64(out, lsn.value()); }
void AppendI64(int64_t v, std::string* out) { AppendBigEndian64(out, static_cast<uint64_t>(v)); }
void AppendCString(std::string_view s, std::string* out) {
  out->append(s);
  out->push_back('\0');
}
void AppendStreamXid(const std::optional<Xid>& xid, std::string* out) {
  if (xid) AppendBigEndian32(out, *xid);
}
void AppendTuple(const TupleData& tuple, std::string* out) {
  AppendBigEndian16(out, static_cast<uint16_t>(tuple.values.size()));
  for (const TupleValue& value : tuple.values) {
    out->push_back(static_cast<char>(value.kind));
    if (value.kind == TupleValueKind::kText || value.kind == TupleValueKind::kBinary) {
      AppendBigEndian32(out, static_cast<uint32_t>(value.data.size()));
      out->append(value.data);
    }
  }
}

/// The wire form of a decoded message, written from the protocol
/// documentation independently of the decoder.
struct Encoder {
  std::string* out;

  void operator()(const BeginMessage& m) const {
    out->push_back('B');
    AppendLsn(m.final_lsn, out);
    AppendI64(m.commit_time, out);
    AppendBigEndian32(out, m.xid);
  }
  void operator()(const CommitMessage& m) const {
    out->push_back('C');
    out->push_back(static_cast<char>(m.flags));
    AppendLsn(m.commit_lsn, out);
    AppendLsn(m.end_lsn, out);
    AppendI64(m.commit_time, out);
  }
  void operator()(const OriginMessage& m) const {
    out->push_back('O');
    AppendLsn(m.commit_lsn, out);
    AppendCString(m.name, out);
  }
  void operator()(const RelationMessage& m) const {
    out->push_back('R');
    AppendStreamXid(m.stream_xid, out);
    AppendBigEndian32(out, m.relation_id);
    AppendCString(m.namespace_name, out);
    AppendCString(m.relation_name, out);
    out->push_back(static_cast<char>(m.replica_identity));
    AppendBigEndian16(out, static_cast<uint16_t>(m.columns.size()));
    for (const RelationColumn& c : m.columns) {
      out->push_back(static_cast<char>(c.flags));
      AppendCString(c.name, out);
      AppendBigEndian32(out, c.type_oid);
      AppendBigEndian32(out, static_cast<uint32_t>(c.type_modifier));
    }
  }
  void operator()(const TypeMessage& m) const {
    out->push_back('Y');
    AppendStreamXid(m.stream_xid, out);
    AppendBigEndian32(out, m.type_oid);
    AppendCString(m.namespace_name, out);
    AppendCString(m.type_name, out);
  }
  void operator()(const InsertMessage& m) const {
    out->push_back('I');
    AppendStreamXid(m.stream_xid, out);
    AppendBigEndian32(out, m.relation_id);
    out->push_back('N');
    AppendTuple(m.new_tuple, out);
  }
  void operator()(const UpdateMessage& m) const {
    out->push_back('U');
    AppendStreamXid(m.stream_xid, out);
    AppendBigEndian32(out, m.relation_id);
    if (m.old_kind != OldTupleKind::kNone) {
      out->push_back(static_cast<char>(m.old_kind));
      AppendTuple(m.old_tuple, out);
    }
    out->push_back('N');
    AppendTuple(m.new_tuple, out);
  }
  void operator()(const DeleteMessage& m) const {
    out->push_back('D');
    AppendStreamXid(m.stream_xid, out);
    AppendBigEndian32(out, m.relation_id);
    out->push_back(static_cast<char>(m.old_kind));
    AppendTuple(m.old_tuple, out);
  }
  void operator()(const TruncateMessage& m) const {
    out->push_back('T');
    AppendStreamXid(m.stream_xid, out);
    AppendBigEndian32(out, static_cast<uint32_t>(m.relation_ids.size()));
    out->push_back(static_cast<char>(m.options));
    for (Oid id : m.relation_ids) AppendBigEndian32(out, id);
  }
  void operator()(const LogicalMessage& m) const {
    out->push_back('M');
    AppendStreamXid(m.stream_xid, out);
    out->push_back(m.transactional ? 1 : 0);
    AppendLsn(m.lsn, out);
    AppendCString(m.prefix, out);
    AppendBigEndian32(out, static_cast<uint32_t>(m.content.size()));
    out->append(m.content);
  }
  void operator()(const StreamStartMessage& m) const {
    out->push_back('S');
    AppendBigEndian32(out, m.xid);
    out->push_back(m.first_segment ? 1 : 0);
  }
  void operator()(const StreamStopMessage&) const { out->push_back('E'); }
  void operator()(const StreamCommitMessage& m) const {
    out->push_back('c');
    AppendBigEndian32(out, m.xid);
    out->push_back(static_cast<char>(m.flags));
    AppendLsn(m.commit_lsn, out);
    AppendLsn(m.end_lsn, out);
    AppendI64(m.commit_time, out);
  }
  void operator()(const StreamAbortMessage& m) const {
    out->push_back('A');
    AppendBigEndian32(out, m.xid);
    AppendBigEndian32(out, m.subxid);
  }
};

std::string Encode(const PgoutputMessage& message) {
  std::string out;
  std::visit(Encoder{&out}, message);
  return out;
}

/// Leaves stale values in every field a later Decode() must overwrite.
struct Dirtier {
  static void Tuple(TupleData* t) {
    t->values.push_back(TupleValue{TupleValueKind::kText, "stale"});
    t->values.push_back(TupleValue{TupleValueKind::kUnchangedToast, {}});
  }
  static void Xid(std::optional<cdc::Xid>* xid) {
    if (*xid)
      xid->reset();
    else
      *xid = 77;
  }
  void operator()(RelationMessage& m) const {
    Xid(&m.stream_xid);
    m.columns.push_back(RelationColumn{1, "stale", 25, -1});
  }
  void operator()(TypeMessage& m) const { Xid(&m.stream_xid); }
  void operator()(InsertMessage& m) const {
    Xid(&m.stream_xid);
    Tuple(&m.new_tuple);
  }
  void operator()(UpdateMessage& m) const {
    Xid(&m.stream_xid);
    m.old_kind = m.old_kind == OldTupleKind::kNone ? OldTupleKind::kFull : OldTupleKind::kNone;
    Tuple(&m.old_tuple);
    Tuple(&m.new_tuple);
  }
  void operator()(DeleteMessage& m) const {
    Xid(&m.stream_xid);
    m.old_kind = m.old_kind == OldTupleKind::kKey ? OldTupleKind::kFull : OldTupleKind::kKey;
    Tuple(&m.old_tuple);
  }
  void operator()(TruncateMessage& m) const {
    Xid(&m.stream_xid);
    m.relation_ids.push_back(12345);
  }
  void operator()(LogicalMessage& m) const {
    Xid(&m.stream_xid);
    m.transactional = !m.transactional;
  }
  void operator()(StreamStartMessage& m) const { m.first_segment = !m.first_segment; }
  template <typename Other>
  void operator()(Other&) const {}
};

void CheckOne(std::string_view input, bool in_stream) {
  PgoutputDecoder decoder;
  if (in_stream) decoder.EnterStream(kStreamXid);
  const std::optional<Xid> before = decoder.stream_xid();

  PgoutputMessage message;
  Status st = decoder.Decode(input, &message);
  if (!st.ok()) {
    SLUICE_FUZZ_CHECK(st.code() == StatusCode::kDataError);
    SLUICE_FUZZ_CHECK(decoder.stream_xid() == before);
    return;
  }
  const std::string encoded = Encode(message);
  SLUICE_FUZZ_CHECK(encoded == input);
  if (const auto* start = std::get_if<StreamStartMessage>(&message)) {
    SLUICE_FUZZ_CHECK(decoder.stream_xid() == start->xid);
  } else if (std::holds_alternative<StreamStopMessage>(message)) {
    SLUICE_FUZZ_CHECK(!decoder.in_stream());
  } else {
    SLUICE_FUZZ_CHECK(decoder.stream_xid() == before);
  }

  PgoutputDecoder again;
  if (in_stream) again.EnterStream(kStreamXid);
  std::visit(Dirtier{}, message);
  SLUICE_FUZZ_CHECK(again.Decode(input, &message).ok());
  SLUICE_FUZZ_CHECK(Encode(message) == encoded);
  if (const auto* update = std::get_if<UpdateMessage>(&message)) {
    // "empty when old_kind is kNone" (pgoutput_decoder.h)
    SLUICE_FUZZ_CHECK(update->old_kind != OldTupleKind::kNone || update->old_tuple.values.empty());
  }
}

}  // namespace
}  // namespace sluice::cdc

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  sluice::cdc::CheckOne(input, /*in_stream=*/false);
  sluice::cdc::CheckOne(input, /*in_stream=*/true);
  return 0;
}
