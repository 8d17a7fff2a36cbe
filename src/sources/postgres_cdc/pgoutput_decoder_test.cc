#include "sources/postgres_cdc/pgoutput_decoder.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "harness/pg_server.h"
#include "sources/postgres_cdc/test_wire_encoder.h"

namespace sluice::cdc {
namespace {

using testing::WireBuilder;

// ---------------------------------------------------------------------------
// Hand-built messages. `xid` is the v2 stream xid: pass it only for
// messages inside a stream block.

WireBuilder Head(char type, std::optional<Xid> xid) {
  WireBuilder b;
  b.Byte(type);
  if (xid) b.U32(*xid);
  return b;
}

std::string BeginBytes() { return WireBuilder().Byte('B').U64(0x16B374D848ULL).I64(777).U32(1234); }
std::string CommitBytes() { return WireBuilder().Byte('C').U8(0).U64(0x10).U64(0x20).I64(888); }
std::string OriginBytes() { return WireBuilder().Byte('O').U64(0x30).CStr("node_a"); }

std::string RelationBytes(std::optional<Xid> xid = std::nullopt) {
  return Head('R', xid)
      .U32(16384)
      .CStr("public")
      .CStr("orders")
      .Byte('d')
      .I16(3)
      .U8(1)
      .CStr("id")
      .U32(23)
      .I32(-1)  // int4, key
      .U8(0)
      .CStr("note")
      .U32(25)
      .I32(-1)  // text
      .U8(0)
      .CStr("price")
      .U32(1700)
      .I32(655366);  // numeric(10,2)
}

std::string TypeBytes(std::optional<Xid> xid = std::nullopt) {
  return Head('Y', xid).U32(90001).CStr("public").CStr("mood");
}

std::string InsertBytes(std::optional<Xid> xid = std::nullopt) {
  return Head('I', xid).U32(16384).Byte('N').Columns(3).Text("1").Null().Binary(std::string("\x00\x01", 2));
}

std::string UpdateNoOldBytes(std::optional<Xid> xid = std::nullopt) {
  return Head('U', xid).U32(16384).Byte('N').Columns(3).Text("1").Toast().Text("9.50");
}

std::string UpdateKeyBytes(std::optional<Xid> xid = std::nullopt) {
  return Head('U', xid)
      .U32(16384)
      .Byte('K')
      .Columns(3)
      .Text("1")
      .Null()
      .Null()
      .Byte('N')
      .Columns(3)
      .Text("2")
      .Toast()
      .Text("9.50");
}

std::string UpdateFullBytes(std::optional<Xid> xid = std::nullopt) {
  return Head('U', xid)
      .U32(16384)
      .Byte('O')
      .Columns(3)
      .Text("1")
      .Text("old note")
      .Text("1.00")
      .Byte('N')
      .Columns(3)
      .Text("1")
      .Text("new note")
      .Text("1.00");
}

std::string DeleteKeyBytes(std::optional<Xid> xid = std::nullopt) {
  return Head('D', xid).U32(16384).Byte('K').Columns(3).Text("1").Null().Null();
}

std::string DeleteFullBytes(std::optional<Xid> xid = std::nullopt) {
  return Head('D', xid).U32(16384).Byte('O').Columns(3).Text("1").Text("n").Null();
}

std::string TruncateBytes(std::optional<Xid> xid = std::nullopt) {
  return Head('T', xid)
      .I32(2)
      .U8(TruncateMessage::kCascade | TruncateMessage::kRestartIdentity)
      .U32(16384)
      .U32(16390);
}

std::string MessageBytes(std::optional<Xid> xid = std::nullopt) {
  return Head('M', xid).U8(1).U64(0x40).CStr("sluice").I32(5).Raw(std::string("he\0lo", 5));
}

std::string StreamStartBytes(Xid xid, bool first) {
  return WireBuilder().Byte('S').U32(xid).U8(first ? 1 : 0);
}
std::string StreamStopBytes() { return WireBuilder().Byte('E'); }
std::string StreamCommitBytes(Xid xid) {
  return WireBuilder().Byte('c').U32(xid).U8(0).U64(0x50).U64(0x60).I64(999);
}
std::string StreamAbortBytes(Xid xid, Xid subxid) { return WireBuilder().Byte('A').U32(xid).U32(subxid); }

template <typename T>
const T& As(const Result<PgoutputMessage>& r) {
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(std::holds_alternative<T>(*r)) << "got " << PgoutputMessageName(*r);
  return std::get<T>(*r);
}

// A decoded result must outlive the views into its input, so tests keep the
// bytes in a named variable.

TEST(PgoutputDecoder, DecodesBegin) {
  PgoutputDecoder d;
  std::string bytes = BeginBytes();
  auto r = d.Decode(bytes);
  const auto& m = As<BeginMessage>(r);
  EXPECT_EQ(m.final_lsn.ToString(), "16/B374D848");
  EXPECT_EQ(m.commit_time, 777);
  EXPECT_EQ(m.xid, 1234u);
  EXPECT_STREQ(PgoutputMessageName(*r), "Begin");
}

TEST(PgoutputDecoder, DecodesCommit) {
  PgoutputDecoder d;
  std::string bytes = CommitBytes();
  auto r = d.Decode(bytes);
  const auto& m = As<CommitMessage>(r);
  EXPECT_EQ(m.flags, 0);
  EXPECT_EQ(m.commit_lsn, Lsn(0x10));
  EXPECT_EQ(m.end_lsn, Lsn(0x20));
  EXPECT_EQ(m.commit_time, 888);
}

TEST(PgoutputDecoder, DecodesOrigin) {
  PgoutputDecoder d;
  std::string bytes = OriginBytes();
  auto r = d.Decode(bytes);
  const auto& m = As<OriginMessage>(r);
  EXPECT_EQ(m.commit_lsn, Lsn(0x30));
  EXPECT_EQ(m.name, "node_a");
}

TEST(PgoutputDecoder, DecodesRelationWithColumnFlagsTypesAndTypmods) {
  PgoutputDecoder d;
  std::string bytes = RelationBytes();
  auto r = d.Decode(bytes);
  const auto& m = As<RelationMessage>(r);
  EXPECT_FALSE(m.stream_xid.has_value());
  EXPECT_EQ(m.relation_id, 16384u);
  EXPECT_EQ(m.namespace_name, "public");
  EXPECT_EQ(m.relation_name, "orders");
  EXPECT_EQ(m.replica_identity, ReplicaIdentity::kDefault);
  ASSERT_EQ(m.columns.size(), 3u);
  EXPECT_TRUE(m.columns[0].is_key());
  EXPECT_EQ(m.columns[0].name, "id");
  EXPECT_EQ(m.columns[0].type_oid, 23u);
  EXPECT_EQ(m.columns[0].type_modifier, -1);
  EXPECT_FALSE(m.columns[1].is_key());
  EXPECT_EQ(m.columns[1].name, "note");
  EXPECT_EQ(m.columns[2].type_oid, 1700u);
  EXPECT_EQ(m.columns[2].type_modifier, 655366);
}

TEST(PgoutputDecoder, DecodesEveryReplicaIdentity) {
  for (char ident : {'d', 'n', 'f', 'i'}) {
    PgoutputDecoder d;
    std::string bytes = WireBuilder().Byte('R').U32(1).CStr("").CStr("t").Byte(ident).I16(0);
    auto r = d.Decode(bytes);
    const auto& m = As<RelationMessage>(r);
    EXPECT_EQ(static_cast<char>(m.replica_identity), ident);
    EXPECT_TRUE(m.columns.empty());
    EXPECT_EQ(m.namespace_name, "");
  }
  PgoutputDecoder d;
  std::string bad = WireBuilder().Byte('R').U32(1).CStr("").CStr("t").Byte('x').I16(0);
  auto r = d.Decode(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(
      r.status().message(),
      "pgoutput Relation ('R') message: replica identity at offset 8: unknown setting 120 (expected 'd', "
      "'n', 'f' or 'i')");
}

TEST(PgoutputDecoder, DecodesType) {
  PgoutputDecoder d;
  std::string bytes = TypeBytes();
  auto r = d.Decode(bytes);
  const auto& m = As<TypeMessage>(r);
  EXPECT_EQ(m.type_oid, 90001u);
  EXPECT_EQ(m.namespace_name, "public");
  EXPECT_EQ(m.type_name, "mood");
}

TEST(PgoutputDecoder, DecodesInsertWithTextNullAndBinaryValues) {
  PgoutputDecoder d;
  std::string bytes = InsertBytes();
  auto r = d.Decode(bytes);
  const auto& m = As<InsertMessage>(r);
  EXPECT_EQ(m.relation_id, 16384u);
  ASSERT_EQ(m.new_tuple.values.size(), 3u);
  EXPECT_EQ(m.new_tuple.values[0].kind, TupleValueKind::kText);
  EXPECT_EQ(m.new_tuple.values[0].data, "1");
  EXPECT_EQ(m.new_tuple.values[1].kind, TupleValueKind::kNull);
  EXPECT_TRUE(m.new_tuple.values[1].data.empty());
  EXPECT_EQ(m.new_tuple.values[2].kind, TupleValueKind::kBinary);
  EXPECT_EQ(m.new_tuple.values[2].data, std::string("\x00\x01", 2));
  // Values are views into the input.
  EXPECT_GE(m.new_tuple.values[0].data.data(), bytes.data());
  EXPECT_LT(m.new_tuple.values[0].data.data(), bytes.data() + bytes.size());
}

TEST(PgoutputDecoder, UnchangedToastIsNotNull) {
  PgoutputDecoder d;
  std::string bytes = UpdateNoOldBytes();
  auto r = d.Decode(bytes);
  const auto& m = As<UpdateMessage>(r);
  EXPECT_EQ(m.old_kind, OldTupleKind::kNone);
  EXPECT_TRUE(m.old_tuple.values.empty());
  ASSERT_EQ(m.new_tuple.values.size(), 3u);
  EXPECT_EQ(m.new_tuple.values[1].kind, TupleValueKind::kUnchangedToast);
  EXPECT_NE(m.new_tuple.values[1].kind, TupleValueKind::kNull);
  EXPECT_EQ(m.new_tuple.values[2].data, "9.50");
}

TEST(PgoutputDecoder, DecodesUpdateWithOldKey) {
  PgoutputDecoder d;
  std::string bytes = UpdateKeyBytes();
  auto r = d.Decode(bytes);
  const auto& m = As<UpdateMessage>(r);
  EXPECT_EQ(m.old_kind, OldTupleKind::kKey);
  ASSERT_EQ(m.old_tuple.values.size(), 3u);
  EXPECT_EQ(m.old_tuple.values[0].data, "1");
  EXPECT_EQ(m.old_tuple.values[1].kind, TupleValueKind::kNull);
  ASSERT_EQ(m.new_tuple.values.size(), 3u);
  EXPECT_EQ(m.new_tuple.values[0].data, "2");
  EXPECT_EQ(m.new_tuple.values[1].kind, TupleValueKind::kUnchangedToast);
}

TEST(PgoutputDecoder, DecodesUpdateWithOldFullRow) {
  PgoutputDecoder d;
  std::string bytes = UpdateFullBytes();
  auto r = d.Decode(bytes);
  const auto& m = As<UpdateMessage>(r);
  EXPECT_EQ(m.old_kind, OldTupleKind::kFull);
  EXPECT_EQ(m.old_tuple.values[1].data, "old note");
  EXPECT_EQ(m.new_tuple.values[1].data, "new note");
}

TEST(PgoutputDecoder, DecodesDeleteWithOldKeyAndOldFullRow) {
  PgoutputDecoder d;
  std::string key = DeleteKeyBytes();
  auto r = d.Decode(key);
  EXPECT_EQ(As<DeleteMessage>(r).old_kind, OldTupleKind::kKey);
  EXPECT_EQ(As<DeleteMessage>(r).old_tuple.values[0].data, "1");
  std::string full = DeleteFullBytes();
  r = d.Decode(full);
  EXPECT_EQ(As<DeleteMessage>(r).old_kind, OldTupleKind::kFull);
  EXPECT_EQ(As<DeleteMessage>(r).old_tuple.values[1].data, "n");

  std::string bad = WireBuilder().Byte('D').U32(1).Byte('N').Columns(0);
  r = d.Decode(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "pgoutput Delete ('D') message: old tuple tag at offset 5: expected 'K' or 'O', got byte 78");
}

TEST(PgoutputDecoder, DecodesTruncateOptionsAndRelations) {
  PgoutputDecoder d;
  std::string bytes = TruncateBytes();
  auto r = d.Decode(bytes);
  const auto& m = As<TruncateMessage>(r);
  EXPECT_TRUE(m.cascade());
  EXPECT_TRUE(m.restart_identity());
  EXPECT_EQ(m.relation_ids, (std::vector<Oid>{16384, 16390}));

  std::string plain = WireBuilder().Byte('T').I32(1).U8(0).U32(7);
  r = d.Decode(plain);
  const auto& p = As<TruncateMessage>(r);
  EXPECT_FALSE(p.cascade());
  EXPECT_FALSE(p.restart_identity());
  EXPECT_EQ(p.relation_ids, (std::vector<Oid>{7}));
}

TEST(PgoutputDecoder, DecodesLogicalDecodingMessage) {
  PgoutputDecoder d;
  std::string bytes = MessageBytes();
  auto r = d.Decode(bytes);
  const auto& m = As<LogicalMessage>(r);
  EXPECT_TRUE(m.transactional);
  EXPECT_EQ(m.lsn, Lsn(0x40));
  EXPECT_EQ(m.prefix, "sluice");
  EXPECT_EQ(m.content, std::string("he\0lo", 5));

  std::string plain = WireBuilder().Byte('M').U8(0).U64(1).CStr("p").I32(0);
  r = d.Decode(plain);
  EXPECT_FALSE(As<LogicalMessage>(r).transactional);
  EXPECT_TRUE(As<LogicalMessage>(r).content.empty());
}

TEST(PgoutputDecoder, DecodesStreamedTransactionWithXids) {
  PgoutputDecoder d;
  std::vector<std::string> wire = {
      StreamStartBytes(700, true),
      OriginBytes(),  // first segment of a transaction with an origin: no xid
      RelationBytes(700),
      TypeBytes(700),
      InsertBytes(700),
      MessageBytes(701),  // a subtransaction's xid
      StreamStopBytes(),
      StreamStartBytes(700, false),
      UpdateKeyBytes(700),
      DeleteFullBytes(701),
      TruncateBytes(700),
      StreamStopBytes(),
      StreamAbortBytes(700, 701),
      StreamCommitBytes(700),
  };
  std::vector<std::string> names;
  std::vector<bool> in_stream;
  PgoutputMessage m;
  for (const auto& bytes : wire) {
    Status st = d.Decode(bytes, &m);
    ASSERT_TRUE(st.ok()) << st.ToString();
    names.push_back(PgoutputMessageName(m));
    in_stream.push_back(d.in_stream());
    std::visit(
        [&](const auto& msg) {
          using T = std::decay_t<decltype(msg)>;
          if constexpr (std::is_same_v<T, StreamStartMessage>) {
            EXPECT_EQ(msg.xid, 700u);
            EXPECT_EQ(msg.first_segment, names.size() == 1);
          } else if constexpr (requires { msg.stream_xid; }) {
            ASSERT_TRUE(msg.stream_xid.has_value()) << names.back();
            constexpr bool kSubtransaction =
                std::is_same_v<T, LogicalMessage> || std::is_same_v<T, DeleteMessage>;
            EXPECT_EQ(*msg.stream_xid, kSubtransaction ? 701u : 700u) << names.back();
          }
        },
        m);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"StreamStart", "Origin", "Relation", "Type", "Insert", "Message",
                                             "StreamStop", "StreamStart", "Update", "Delete", "Truncate",
                                             "StreamStop", "StreamAbort", "StreamCommit"}));
  EXPECT_EQ(in_stream, (std::vector<bool>{true, true, true, true, true, true, false, true, true, true, true,
                                          false, false, false}));
  EXPECT_EQ(std::get<StreamCommitMessage>(m).xid, 700u);
  EXPECT_EQ(std::get<StreamCommitMessage>(m).commit_lsn, Lsn(0x50));
  EXPECT_EQ(std::get<StreamCommitMessage>(m).end_lsn, Lsn(0x60));
  EXPECT_EQ(std::get<StreamCommitMessage>(m).commit_time, 999);
}

TEST(PgoutputDecoder, StreamedInsertKeepsItsValuesAfterTheXid) {
  PgoutputDecoder d;
  std::string start = StreamStartBytes(42, true);
  ASSERT_TRUE(d.Decode(start).ok());
  EXPECT_EQ(d.stream_xid(), std::optional<Xid>(42));
  std::string bytes = InsertBytes(42);
  auto r = d.Decode(bytes);
  const auto& m = As<InsertMessage>(r);
  EXPECT_EQ(m.stream_xid, std::optional<Xid>(42));
  EXPECT_EQ(m.relation_id, 16384u);
  EXPECT_EQ(m.new_tuple.values[0].data, "1");
}

TEST(PgoutputDecoder, DecodesStreamAbortWithoutV4Fields) {
  PgoutputDecoder d;
  std::string bytes = StreamAbortBytes(9, 10);
  auto r = d.Decode(bytes);
  EXPECT_EQ(As<StreamAbortMessage>(r).xid, 9u);
  EXPECT_EQ(As<StreamAbortMessage>(r).subxid, 10u);
  // A v4 parallel abort (LSN and timestamp appended) is not v2.
  std::string v4 = WireBuilder().Byte('A').U32(9).U32(10).U64(1).I64(2);
  r = d.Decode(v4);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("16 unexpected trailing bytes"), std::string::npos)
      << r.status().message();
}

TEST(PgoutputDecoder, RejectsMessagesThatBreakTheStreamState) {
  PgoutputDecoder d;
  std::string stop = StreamStopBytes();
  auto r = d.Decode(stop);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(
      r.status().message(),
      "pgoutput Stream Stop ('E') message: message type at offset 0: Stream Stop outside a stream block");

  std::string start = StreamStartBytes(5, true);
  ASSERT_TRUE(d.Decode(start).ok());
  for (const std::string& bytes : {BeginBytes(), CommitBytes(), StreamStartBytes(6, true),
                                   StreamCommitBytes(5), StreamAbortBytes(5, 5)}) {
    r = d.Decode(bytes);
    ASSERT_FALSE(r.ok()) << bytes[0];
    EXPECT_EQ(r.status().code(), StatusCode::kDataError);
    EXPECT_NE(r.status().message().find("not allowed inside the stream block of transaction 5"),
              std::string::npos)
        << r.status().message();
    EXPECT_TRUE(d.in_stream());
  }
  d.Reset();
  EXPECT_FALSE(d.in_stream());
}

TEST(PgoutputDecoder, RejectsUnknownAndTwoPhaseTypes) {
  PgoutputDecoder d;
  auto r = d.Decode(std::string_view("Z"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "pgoutput message: message type at offset 0: unknown type byte 90");
  r = d.Decode(std::string_view("P"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not part of protocol version 2"), std::string::npos);
  r = d.Decode(std::string_view());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "pgoutput message: empty message at offset 0");
}

TEST(PgoutputDecoder, RejectsBadTupleData) {
  PgoutputDecoder d;
  std::string bad_kind = WireBuilder().Byte('I').U32(1).Byte('N').Columns(1).Byte('x');
  auto r = d.Decode(bad_kind);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "pgoutput Insert ('I') message: tuple column kind at offset 8: unknown kind 120 for column 0 "
            "(expected 'n', 'u', 't' or 'b')");

  std::string negative = WireBuilder().Byte('I').U32(1).Byte('N').Columns(1).Byte('t').I32(-2);
  r = d.Decode(negative);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("tuple column length at offset 9: negative: -2"), std::string::npos)
      << r.status().message();

  std::string too_many = WireBuilder().Byte('I').U32(1).Byte('N').Columns(30000).Null();
  r = d.Decode(too_many);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("30000 columns announced, 1 bytes left"), std::string::npos)
      << r.status().message();

  std::string huge_truncate = WireBuilder().Byte('T').I32(0x7FFFFFFF).U8(0).U32(1);
  r = d.Decode(huge_truncate);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("relations announced"), std::string::npos) << r.status().message();
}

TEST(PgoutputDecoder, RejectsTrailingBytes) {
  PgoutputDecoder d;
  std::string bytes = BeginBytes() + "x";
  auto r = d.Decode(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "pgoutput Begin ('B') message: end of message at offset 21: 1 unexpected trailing byte");
}

TEST(PgoutputDecoder, ReusesVectorsWhenDecodingIntoTheSameMessage) {
  PgoutputDecoder d;
  PgoutputMessage m;
  std::string first = InsertBytes();
  ASSERT_TRUE(d.Decode(first, &m).ok());
  const TupleValue* storage = std::get<InsertMessage>(m).new_tuple.values.data();
  std::string second = WireBuilder().Byte('I').U32(5).Byte('N').Columns(2).Text("a").Text("b");
  ASSERT_TRUE(d.Decode(second, &m).ok());
  const auto& insert = std::get<InsertMessage>(m);
  EXPECT_EQ(insert.new_tuple.values.data(), storage);
  ASSERT_EQ(insert.new_tuple.values.size(), 2u);
  EXPECT_EQ(insert.new_tuple.values[1].data, "b");
  EXPECT_EQ(insert.relation_id, 5u);

  // An update without an old row must not keep the previous one's.
  std::string with_old = UpdateKeyBytes();
  ASSERT_TRUE(d.Decode(with_old, &m).ok());
  std::string without_old = UpdateNoOldBytes();
  ASSERT_TRUE(d.Decode(without_old, &m).ok());
  EXPECT_EQ(std::get<UpdateMessage>(m).old_kind, OldTupleKind::kNone);
  EXPECT_TRUE(std::get<UpdateMessage>(m).old_tuple.values.empty());
}

// Every strict prefix of every message must fail cleanly, naming the
// message and an offset, and must not change the stream state.
TEST(PgoutputDecoderTruncation, EveryPrefixOfEveryMessageIsAnError) {
  struct Case {
    std::string bytes;
    std::optional<Xid> stream;  // decoder state to test in
  };
  std::vector<Case> cases = {
      {BeginBytes(), std::nullopt},
      {CommitBytes(), std::nullopt},
      {OriginBytes(), std::nullopt},
      {RelationBytes(), std::nullopt},
      {TypeBytes(), std::nullopt},
      {InsertBytes(), std::nullopt},
      {UpdateNoOldBytes(), std::nullopt},
      {UpdateKeyBytes(), std::nullopt},
      {UpdateFullBytes(), std::nullopt},
      {DeleteKeyBytes(), std::nullopt},
      {DeleteFullBytes(), std::nullopt},
      {TruncateBytes(), std::nullopt},
      {MessageBytes(), std::nullopt},
      {StreamStartBytes(3, true), std::nullopt},
      {StreamCommitBytes(3), std::nullopt},
      {StreamAbortBytes(3, 4), std::nullopt},
      {StreamStopBytes(), 3},
      {OriginBytes(), 3},
      {RelationBytes(3), 3},
      {TypeBytes(3), 3},
      {InsertBytes(3), 3},
      {UpdateNoOldBytes(3), 3},
      {UpdateKeyBytes(3), 3},
      {UpdateFullBytes(3), 3},
      {DeleteKeyBytes(3), 3},
      {DeleteFullBytes(3), 3},
      {TruncateBytes(3), 3},
      {MessageBytes(3), 3},
  };
  int checked = 0;
  for (const Case& c : cases) {
    PgoutputDecoder d;
    if (c.stream) {
      std::string start = StreamStartBytes(*c.stream, true);
      ASSERT_TRUE(d.Decode(start).ok());
    }
    // The whole message decodes...
    {
      PgoutputDecoder whole;
      if (c.stream) {
        std::string start = StreamStartBytes(*c.stream, true);
        ASSERT_TRUE(whole.Decode(start).ok());
      }
      auto r = whole.Decode(c.bytes);
      ASSERT_TRUE(r.ok()) << c.bytes[0] << ": " << r.status().ToString();
    }
    // ...and no strict prefix does.
    PgoutputMessage out;
    for (size_t n = 0; n < c.bytes.size(); ++n) {
      // Exact-size heap copy: an over-read would touch memory past the end.
      auto copy = std::make_unique<char[]>(n == 0 ? 1 : n);
      c.bytes.copy(copy.get(), n);
      Status st = d.Decode(std::string_view(copy.get(), n), &out);
      ASSERT_FALSE(st.ok()) << "type '" << c.bytes[0] << "' prefix of " << n << " bytes decoded";
      EXPECT_EQ(st.code(), StatusCode::kDataError);
      EXPECT_NE(st.message().find("offset"), std::string::npos) << st.message();
      if (n > 0) {
        EXPECT_NE(st.message().find(std::string("('") + c.bytes[0] + "')"), std::string::npos)
            << st.message();
        EXPECT_NE(st.message().find("truncated"), std::string::npos) << st.message();
      }
      EXPECT_EQ(d.stream_xid(), c.stream);
      ++checked;
    }
  }
  EXPECT_GT(checked, 500);
}

// ---------------------------------------------------------------------------
// Against a real PostgreSQL 15: what pgoutput really sends.

/// bytea text output "\\x4201..." to bytes.
std::string FromHex(const std::string& text) {
  EXPECT_EQ(text.substr(0, 2), "\\x");
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  std::string out;
  for (size_t i = 2; i + 1 < text.size(); i += 2) {
    out.push_back(static_cast<char>((nibble(text[i]) << 4) | nibble(text[i + 1])));
  }
  return out;
}

TEST(PgoutputDecoderPostgres, DecodesWhatPgoutputSends) {
  auto server = sluice::testing::PgServer::Start();
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  auto& pg = **server;
  // One Exec per transaction: a multi-statement string would be one
  // transaction, and a slot cannot be created in one that has written.
  for (const char* sql : {
           "CREATE TABLE t (id int PRIMARY KEY, note text, big text);"
           "ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL;"
           "CREATE PUBLICATION pub FOR TABLE t",
           "SELECT pg_create_logical_replication_slot('slot', 'pgoutput')",
           "INSERT INTO t VALUES (1, 'a', repeat('x', 5000)), (2, NULL, 'small')",
           "UPDATE t SET note = 'b' WHERE id = 1",
           "DELETE FROM t WHERE id = 2",
           "TRUNCATE t",
           "SELECT pg_logical_emit_message(true, 'sluice', 'hello')",
       }) {
    Status st = pg.Exec("postgres", sql);
    ASSERT_TRUE(st.ok()) << sql << ": " << st.ToString();
  }
  auto rows = pg.Query("postgres",
                       "SELECT data FROM pg_logical_slot_peek_binary_changes('slot', NULL, NULL, "
                       "'proto_version', '2', 'publication_names', 'pub', 'messages', 'true')");
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  auto oid = pg.QueryScalar("postgres", "SELECT 't'::regclass::oid");
  ASSERT_TRUE(oid.ok());
  const Oid table_oid = static_cast<Oid>(std::stoul(*oid));

  // Keep every message's bytes alive: the decoded messages point into them.
  std::vector<std::string> wire;
  for (const auto& row : *rows) wire.push_back(FromHex(row.at(0).value()));
  PgoutputDecoder decoder;
  std::vector<PgoutputMessage> decoded;
  std::vector<std::string> names;
  for (const auto& bytes : wire) {
    auto m = decoder.Decode(bytes);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    names.push_back(PgoutputMessageName(*m));
    decoded.push_back(std::move(*m));
  }
  ASSERT_EQ(names, (std::vector<std::string>{"Begin", "Relation", "Insert", "Insert", "Commit",  //
                                             "Begin", "Update", "Commit",                        //
                                             "Begin", "Delete", "Commit",                        //
                                             "Begin", "Relation", "Truncate", "Commit",          //
                                             "Begin", "Message", "Commit"}));

  const auto& begin = std::get<BeginMessage>(decoded[0]);
  const auto& commit = std::get<CommitMessage>(decoded[4]);
  EXPECT_NE(begin.xid, 0u);
  EXPECT_EQ(begin.final_lsn, commit.commit_lsn);
  EXPECT_GT(commit.end_lsn, commit.commit_lsn);
  EXPECT_EQ(begin.commit_time, commit.commit_time);

  const auto& rel = std::get<RelationMessage>(decoded[1]);
  EXPECT_EQ(rel.relation_id, table_oid);
  EXPECT_EQ(rel.namespace_name, "public");
  EXPECT_EQ(rel.relation_name, "t");
  EXPECT_EQ(rel.replica_identity, ReplicaIdentity::kDefault);
  ASSERT_EQ(rel.columns.size(), 3u);
  EXPECT_EQ(rel.columns[0].name, "id");
  EXPECT_TRUE(rel.columns[0].is_key());
  EXPECT_EQ(rel.columns[0].type_oid, 23u);
  EXPECT_EQ(rel.columns[1].name, "note");
  EXPECT_FALSE(rel.columns[1].is_key());
  EXPECT_EQ(rel.columns[1].type_oid, 25u);

  const auto& ins2 = std::get<InsertMessage>(decoded[3]);
  EXPECT_EQ(ins2.relation_id, table_oid);
  ASSERT_EQ(ins2.new_tuple.values.size(), 3u);
  EXPECT_EQ(ins2.new_tuple.values[0].data, "2");
  EXPECT_EQ(ins2.new_tuple.values[1].kind, TupleValueKind::kNull);
  EXPECT_EQ(ins2.new_tuple.values[2].data, "small");
  EXPECT_EQ(std::get<InsertMessage>(decoded[2]).new_tuple.values[2].data, std::string(5000, 'x'));

  const auto& upd = std::get<UpdateMessage>(decoded[6]);
  EXPECT_EQ(upd.old_kind, OldTupleKind::kNone);
  ASSERT_EQ(upd.new_tuple.values.size(), 3u);
  EXPECT_EQ(upd.new_tuple.values[1].data, "b");
  EXPECT_EQ(upd.new_tuple.values[2].kind, TupleValueKind::kUnchangedToast);

  const auto& del = std::get<DeleteMessage>(decoded[9]);
  EXPECT_EQ(del.old_kind, OldTupleKind::kKey);
  ASSERT_EQ(del.old_tuple.values.size(), 3u);
  EXPECT_EQ(del.old_tuple.values[0].data, "2");
  EXPECT_EQ(del.old_tuple.values[1].kind, TupleValueKind::kNull);

  // TRUNCATE gives the table a new relfilenode, which invalidates
  // pgoutput's cache entry: the Relation message is sent again.
  EXPECT_EQ(std::get<RelationMessage>(decoded[12]).relation_id, table_oid);
  const auto& trunc = std::get<TruncateMessage>(decoded[13]);
  EXPECT_EQ(trunc.relation_ids, (std::vector<Oid>{table_oid}));
  EXPECT_FALSE(trunc.cascade());

  const auto& msg = std::get<LogicalMessage>(decoded[16]);
  EXPECT_TRUE(msg.transactional);
  EXPECT_EQ(msg.prefix, "sluice");
  EXPECT_EQ(msg.content, "hello");
  EXPECT_FALSE(decoder.in_stream());
}

TEST(PgoutputDecoderPostgres, DecodesAStreamedLargeTransaction) {
  sluice::testing::PgServerOptions options;
  // The smallest limit, so that one modest transaction is streamed.
  options.extra_settings = {"logical_decoding_work_mem = 64kB"};
  auto server = sluice::testing::PgServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  auto& pg = **server;
  for (const char* sql : {
           "CREATE TABLE big (id int PRIMARY KEY, payload text);"
           "CREATE PUBLICATION pub FOR TABLE big",
           "SELECT pg_create_logical_replication_slot('slot', 'pgoutput')",
           "INSERT INTO big SELECT g, repeat('y', 200) FROM generate_series(1, 5000) g",
       }) {
    Status st = pg.Exec("postgres", sql);
    ASSERT_TRUE(st.ok()) << sql << ": " << st.ToString();
  }
  auto rows = pg.Query("postgres",
                       "SELECT data FROM pg_logical_slot_peek_binary_changes('slot', NULL, NULL, "
                       "'proto_version', '2', 'publication_names', 'pub', 'streaming', 'on')");
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();

  PgoutputDecoder decoder;
  PgoutputMessage m;
  std::optional<Xid> xid;
  int inserts = 0;
  int blocks = 0;
  bool committed = false;
  for (const auto& row : *rows) {
    std::string bytes = FromHex(row.at(0).value());
    Status st = decoder.Decode(bytes, &m);
    ASSERT_TRUE(st.ok()) << st.ToString();
    ASSERT_FALSE(committed) << "message after Stream Commit: " << PgoutputMessageName(m);
    if (const auto* start = std::get_if<StreamStartMessage>(&m)) {
      EXPECT_EQ(start->first_segment, blocks == 0);
      if (!xid) xid = start->xid;
      EXPECT_EQ(start->xid, *xid);
      ++blocks;
    } else if (const auto* insert = std::get_if<InsertMessage>(&m)) {
      ASSERT_TRUE(decoder.in_stream());
      EXPECT_EQ(insert->stream_xid, xid);
      ASSERT_EQ(insert->new_tuple.values.size(), 2u);
      EXPECT_EQ(insert->new_tuple.values[1].data, std::string(200, 'y'));
      ++inserts;
    } else if (const auto* rel = std::get_if<RelationMessage>(&m)) {
      EXPECT_EQ(rel->stream_xid, xid);
      EXPECT_EQ(rel->relation_name, "big");
    } else if (const auto* commit = std::get_if<StreamCommitMessage>(&m)) {
      EXPECT_EQ(commit->xid, *xid);
      EXPECT_GT(commit->end_lsn, commit->commit_lsn);
      committed = true;
    } else {
      ASSERT_TRUE(std::holds_alternative<StreamStopMessage>(m)) << "unexpected " << PgoutputMessageName(m);
    }
  }
  EXPECT_GE(blocks, 2) << "the transaction was not streamed in several blocks";
  EXPECT_EQ(inserts, 5000);
  EXPECT_TRUE(committed);
  EXPECT_FALSE(decoder.in_stream());
}

}  // namespace
}  // namespace sluice::cdc
