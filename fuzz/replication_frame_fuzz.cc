// Fuzzes the framing of the streaming replication protocol
// (replication_protocol.h): the CopyData payloads the walsender sends
// (XLogData 'w', Primary keepalive 'k'), the LSN text form, and the
// timestamp and Standby status update encodings. Properties:
//  - a payload that parses encodes back to exactly the input bytes, and
//    XLogData's data points into the input;
//  - an LSN that parses prints as the input does (upper-case, no leading
//    zeros) and parses back to itself; any 64-bit LSN round-trips;
//  - a PostgreSQL timestamp converts to a time_point and back unchanged
//    unless it lies outside the clock's range, where it saturates;
//  - a Standby status update is 34 bytes that carry its fields.
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <variant>

#include "fuzz_check.h"
#include "sources/postgres_cdc/replication_protocol.h"

namespace sluice::cdc {
namespace {

void CheckCopyData(std::string_view input) {
  Result<ReplicationMessage> parsed = ParseReplicationMessage(input);
  if (!parsed.ok()) {
    SLUICE_FUZZ_CHECK(parsed.status().code() == StatusCode::kDataError);
    return;
  }
  std::string encoded;
  if (const auto* x = std::get_if<XLogData>(&*parsed)) {
    SLUICE_FUZZ_CHECK(x->data.data() >= input.data() &&
                      x->data.data() + x->data.size() == input.data() + input.size());
    encoded.push_back('w');
    AppendBigEndian64(&encoded, x->wal_start.value());
    AppendBigEndian64(&encoded, x->wal_end.value());
    AppendBigEndian64(&encoded, static_cast<uint64_t>(x->send_time));
    encoded.append(x->data);
  } else {
    const auto& k = std::get<PrimaryKeepalive>(*parsed);
    encoded.push_back('k');
    AppendBigEndian64(&encoded, k.wal_end.value());
    AppendBigEndian64(&encoded, static_cast<uint64_t>(k.send_time));
    encoded.push_back(k.reply_requested ? 1 : 0);
  }
  SLUICE_FUZZ_CHECK(encoded == input);
}

/// "0001a" -> "1A": how pg_lsn prints one half.
std::string Canonical(std::string_view half) {
  while (half.size() > 1 && half.front() == '0') half.remove_prefix(1);
  std::string out(half);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

void CheckLsnText(std::string_view input) {
  Result<Lsn> lsn = Lsn::Parse(input);
  if (!lsn.ok()) {
    SLUICE_FUZZ_CHECK(lsn.status().code() == StatusCode::kInvalidArgument);
    return;
  }
  const std::string text = lsn->ToString();
  const size_t slash = input.find('/');
  SLUICE_FUZZ_CHECK(text == Canonical(input.substr(0, slash)) + "/" + Canonical(input.substr(slash + 1)));
  Result<Lsn> again = Lsn::Parse(text);
  SLUICE_FUZZ_CHECK(again.ok() && *again == *lsn);
}

void CheckValues(std::string_view input) {
  if (input.size() < 8) return;
  const uint64_t bits = LoadBigEndian64(input.data());

  const Lsn lsn(bits);
  Result<Lsn> back = Lsn::Parse(lsn.ToString());
  SLUICE_FUZZ_CHECK(back.ok() && *back == lsn);

  using std::chrono::microseconds;
  using std::chrono::system_clock;
  const auto ts = static_cast<PgTimestamp>(bits);
  const int64_t max_us =
      std::chrono::duration_cast<microseconds>(system_clock::time_point::max().time_since_epoch()).count();
  const int64_t min_us =
      std::chrono::duration_cast<microseconds>(system_clock::time_point::min().time_since_epoch()).count();
  // Saturating in the conversion, and in computing the expectation.
  const PgTimestamp lowest = min_us - kPgEpochUnixMicros;
  const PgTimestamp highest = max_us - kPgEpochUnixMicros;
  SLUICE_FUZZ_CHECK(TimePointToPgTimestamp(PgTimestampToTimePoint(ts)) == std::clamp(ts, lowest, highest));

  if (input.size() < 33) return;
  StandbyStatusUpdate update;
  update.written = Lsn(LoadBigEndian64(input.data()));
  update.flushed = Lsn(LoadBigEndian64(input.data() + 8));
  update.applied = Lsn(LoadBigEndian64(input.data() + 16));
  update.client_time = static_cast<PgTimestamp>(LoadBigEndian64(input.data() + 24));
  update.reply_requested = (input[32] & 1) != 0;
  const std::string wire = EncodeStandbyStatusUpdate(update);
  SLUICE_FUZZ_CHECK(wire.size() == kStandbyStatusUpdateSize);
  SLUICE_FUZZ_CHECK(wire[0] == 'r');
  SLUICE_FUZZ_CHECK(wire.compare(1, 32, input.data(), 32) == 0);
  SLUICE_FUZZ_CHECK(wire[33] == (update.reply_requested ? 1 : 0));
}

}  // namespace
}  // namespace sluice::cdc

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  sluice::cdc::CheckCopyData(input);
  sluice::cdc::CheckLsnText(input);
  sluice::cdc::CheckValues(input);
  return 0;
}
