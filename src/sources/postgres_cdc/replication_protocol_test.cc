#include "sources/postgres_cdc/replication_protocol.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "sources/postgres_cdc/test_wire_encoder.h"

namespace sluice::cdc {
namespace {

using testing::WireBuilder;

std::string Bytes(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

TEST(ReplicationMessageLsn, ParseAndFormatRoundTrip) {
  for (const char* text : {"16/B374D848", "0/0", "0/1", "1/0", "FFFFFFFF/FFFFFFFF", "ABC/DEF01234"}) {
    auto lsn = Lsn::Parse(text);
    ASSERT_TRUE(lsn.ok()) << text << ": " << lsn.status().ToString();
    EXPECT_EQ(lsn->ToString(), text);
  }
  auto lsn = Lsn::Parse("16/B374D848");
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(lsn->value(), 0x16B374D848ULL);
  EXPECT_EQ(Lsn(0x16B374D848ULL).ToString(), "16/B374D848");
}

TEST(ReplicationMessageLsn, ParseAcceptsLowerCaseAndLeadingZeros) {
  auto lsn = Lsn::Parse("00000016/b374d848");
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(lsn->value(), 0x16B374D848ULL);
  EXPECT_EQ(lsn->ToString(), "16/B374D848");
}

TEST(ReplicationMessageLsn, ParseRejectsMalformedText) {
  for (const char* text : {"", "/", "16/", "/B374D848", "16B374D848", "16/B374D848/1", "G/0", "1/123456789",
                           " 1/2", "1/2 ", "-1/2"}) {
    auto lsn = Lsn::Parse(text);
    ASSERT_FALSE(lsn.ok()) << text;
    EXPECT_EQ(lsn.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(lsn.status().message().find("invalid LSN"), std::string::npos) << lsn.status().message();
  }
}

TEST(ReplicationMessageLsn, OrdersByPosition) {
  EXPECT_LT(Lsn(1), Lsn(2));
  EXPECT_LT(*Lsn::Parse("0/FFFFFFFF"), *Lsn::Parse("1/0"));
  EXPECT_FALSE(Lsn().valid());
  EXPECT_TRUE(Lsn(1).valid());
}

TEST(ReplicationMessage, PgTimestampsCountFrom2000) {
  using namespace std::chrono;
  // 2000-01-01T00:00:00Z is Unix time 946684800.
  EXPECT_EQ(duration_cast<seconds>(PgTimestampToTimePoint(0).time_since_epoch()).count(), 946684800);
  EXPECT_EQ(TimePointToPgTimestamp(system_clock::time_point(seconds(946684800))), 0);
  EXPECT_EQ(TimePointToPgTimestamp(PgTimestampToTimePoint(123456789012345)), 123456789012345);
  EXPECT_EQ(TimePointToPgTimestamp(PgTimestampToTimePoint(-5)), -5);
}

TEST(ReplicationMessage, ParsesKeepaliveBytes) {
  std::string bytes = Bytes({'k', 0x00, 0x00, 0x00, 0x16, 0xB3, 0x74, 0xD8, 0x48,  // WAL end
                             0x00, 0x02, 0x8C, 0x5E, 0x9B, 0x1C, 0x40, 0x00,       // send time
                             0x01});                                               // reply requested
  auto parsed = ParseReplicationMessage(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const auto* k = std::get_if<PrimaryKeepalive>(&*parsed);
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->wal_end.ToString(), "16/B374D848");
  EXPECT_EQ(k->send_time, 0x00028C5E9B1C4000LL);
  EXPECT_TRUE(k->reply_requested);

  bytes.back() = 0;
  parsed = ParseReplicationMessage(bytes);
  ASSERT_TRUE(parsed.ok());
  EXPECT_FALSE(std::get<PrimaryKeepalive>(*parsed).reply_requested);
}

TEST(ReplicationMessage, ParsesXLogDataAndPointsIntoTheBuffer) {
  std::string bytes = WireBuilder().Byte('w').U64(0x100).U64(0x200).I64(42).Raw("B-payload");
  auto parsed = ParseReplicationMessage(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const auto& w = std::get<XLogData>(*parsed);
  EXPECT_EQ(w.wal_start, Lsn(0x100));
  EXPECT_EQ(w.wal_end, Lsn(0x200));
  EXPECT_EQ(w.send_time, 42);
  EXPECT_EQ(w.data, "B-payload");
  EXPECT_EQ(w.data.data(), bytes.data() + 25);
}

TEST(ReplicationMessage, XLogDataMayHaveEmptyPayload) {
  std::string bytes = WireBuilder().Byte('w').U64(1).U64(2).I64(3);
  auto parsed = ParseReplicationMessage(bytes);
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(std::get<XLogData>(*parsed).data.empty());
}

TEST(ReplicationMessage, EncodesStandbyStatusUpdateByteExact) {
  StandbyStatusUpdate update;
  update.written = Lsn(0x16B374D848ULL);
  update.flushed = Lsn(0x16B374D800ULL);
  update.applied = Lsn(1);
  update.client_time = 1000000;
  update.reply_requested = false;
  std::string expected = Bytes({'r',  0x00, 0x00, 0x00, 0x16, 0xB3, 0x74, 0xD8, 0x48,  // written
                                0x00, 0x00, 0x00, 0x16, 0xB3, 0x74, 0xD8, 0x00,        // flushed
                                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,        // applied
                                0x00, 0x00, 0x00, 0x00, 0x00, 0x0F, 0x42, 0x40,        // clock
                                0x00});                                                // reply
  EXPECT_EQ(EncodeStandbyStatusUpdate(update), expected);
  EXPECT_EQ(expected.size(), kStandbyStatusUpdateSize);

  update.reply_requested = true;
  std::string out = "prefix";
  AppendStandbyStatusUpdate(update, &out);
  expected.back() = 1;
  EXPECT_EQ(out, "prefix" + expected);
}

TEST(ReplicationMessage, TruncatedMessagesAreDataErrorsAtEveryOffset) {
  const std::string keepalive = WireBuilder().Byte('k').U64(7).I64(8).U8(1);
  const std::string xlog = WireBuilder().Byte('w').U64(7).U64(8).I64(9);
  for (const std::string* full : {&keepalive, &xlog}) {
    for (size_t n = 0; n < full->size(); ++n) {
      // An exact-size heap copy, so that an over-read would hit the sanitizer.
      auto copy = std::make_unique<char[]>(n == 0 ? 1 : n);
      full->copy(copy.get(), n);
      auto parsed = ParseReplicationMessage(std::string_view(copy.get(), n));
      ASSERT_FALSE(parsed.ok()) << (*full)[0] << " prefix " << n;
      EXPECT_EQ(parsed.status().code(), StatusCode::kDataError);
      EXPECT_NE(parsed.status().message().find("offset"), std::string::npos) << parsed.status().message();
      if (n > 0) {
        EXPECT_NE(parsed.status().message().find("truncated"), std::string::npos)
            << parsed.status().message();
      }
    }
  }
}

TEST(ReplicationMessage, NamesFieldAndOffsetOfATruncation) {
  std::string bytes = WireBuilder().Byte('k').U64(7).U32(0);
  auto parsed = ParseReplicationMessage(bytes);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(),
            "replication Primary keepalive ('k') message: send time at offset 9: truncated: needs 8 bytes, 4 "
            "left");
}

TEST(ReplicationMessage, RejectsUnknownTypeAndTrailingBytes) {
  auto parsed = ParseReplicationMessage("x123");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), StatusCode::kDataError);
  EXPECT_NE(parsed.status().message().find("unknown message type 0x78"), std::string::npos);

  std::string bytes = WireBuilder().Byte('k').U64(7).I64(8).U8(0).U8(0);
  parsed = ParseReplicationMessage(bytes);
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("1 unexpected trailing byte"), std::string::npos)
      << parsed.status().message();
}

}  // namespace
}  // namespace sluice::cdc
