#include "io/compressed_input.h"

#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <fstream>
#include <string>

#include "harness/temp_dir.h"

namespace sluice::io {
namespace {

using sluice::testing::TempDir;

std::string Lines(int n) {
  std::string out = "id,amount\n";
  for (int i = 0; i < n; ++i) out += std::to_string(i) + "," + std::to_string(i) + ".25\n";
  return out;
}

std::string Gzip(const std::string& data) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string Zstd(const std::string& data, bool checksum) {
  ZSTD_CCtx* ctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(ctx, ZSTD_c_checksumFlag, checksum ? 1 : 0);
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress2(ctx, out.data(), out.size(), data.data(), data.size());
  EXPECT_FALSE(ZSTD_isError(n));
  ZSTD_freeCCtx(ctx);
  out.resize(n);
  return out;
}

class CompressedInputTest : public ::testing::Test {
 protected:
  std::string Put(const std::string& name, const std::string& bytes) {
    std::string path = dir_.Path(name);
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  TempDir dir_{"sluice-compressed"};
};

TEST_F(CompressedInputTest, WholeStreamsPassAndCountTheirContent) {
  std::string data = Lines(5000);
  auto gz = VerifyCompressedFile(Put("a.csv.gz", Gzip(data)), Compression::kGzip, "a.csv.gz");
  ASSERT_TRUE(gz.ok()) << gz.status().ToString();
  EXPECT_EQ(gz->decompressed_bytes, static_cast<int64_t>(data.size()));
  EXPECT_EQ(gz->members, 1);
  auto zst = VerifyCompressedFile(Put("a.csv.zst", Zstd(data, true)), Compression::kZstd, "a.csv.zst");
  ASSERT_TRUE(zst.ok()) << zst.status().ToString();
  EXPECT_EQ(zst->decompressed_bytes, static_cast<int64_t>(data.size()));
  // Concatenated members and frames are one valid stream each.
  auto two = VerifyCompressedFile(Put("b.csv.gz", Gzip(data) + Gzip(data)), Compression::kGzip, "b");
  ASSERT_TRUE(two.ok()) << two.status().ToString();
  EXPECT_EQ(two->members, 2);
  EXPECT_EQ(two->decompressed_bytes, 2 * static_cast<int64_t>(data.size()));
  auto frames =
      VerifyCompressedFile(Put("b.csv.zst", Zstd(data, false) + Zstd(data, true)), Compression::kZstd, "b");
  ASSERT_TRUE(frames.ok()) << frames.status().ToString();
  EXPECT_EQ(frames->members, 2);
}

TEST_F(CompressedInputTest, EveryCutInsideAGzipMemberOrZstdFrameIsTruncated) {
  std::string data = Lines(3000);
  for (const auto& [name, compression, whole] :
       {std::tuple{"c.csv.gz", Compression::kGzip, Gzip(data)},
        std::tuple{"c.csv.zst", Compression::kZstd, Zstd(data, true)},
        std::tuple{"n.csv.zst", Compression::kZstd, Zstd(data, false)}}) {
    for (size_t cut = 1; cut < whole.size(); cut += (cut < 32 || cut > whole.size() - 32) ? 1 : 97) {
      SCOPED_TRACE(std::string(name) + " cut at " + std::to_string(cut) + " of " +
                   std::to_string(whole.size()));
      auto r = VerifyCompressedFile(Put(name, whole.substr(0, cut)), compression, name);
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.status().code(), StatusCode::kDataError);
      // A cut inside the gzip header reads as not-gzip at all, which is also refused.
      EXPECT_TRUE(r.status().message().starts_with(std::string(name) + " is truncated") ||
                  r.status().message().starts_with(std::string(name) + " is corrupt"))
          << r.status().message();
    }
  }
}

TEST_F(CompressedInputTest, DamagedBytesAreCorrupt) {
  std::string data = Lines(3000);
  std::string gz = Gzip(data);
  std::string crc = gz;
  crc[crc.size() - 6] ^= 1;
  auto r = VerifyCompressedFile(Put("crc.gz", crc), Compression::kGzip, "crc.gz");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("crc.gz is corrupt: CRC-32 mismatch", 0), 0u) << r.status().message();
  std::string length = gz;
  length[length.size() - 2] ^= 1;
  r = VerifyCompressedFile(Put("len.gz", length), Compression::kGzip, "len.gz");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("length trailer mismatch"), std::string::npos) << r.status().message();
  r = VerifyCompressedFile(Put("tail.gz", gz + "garbage"), Compression::kGzip, "tail.gz");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("unexpected bytes after the gzip member"), std::string::npos);
  // Zero padding after the last member is what gzip(1) accepts too.
  EXPECT_TRUE(
      VerifyCompressedFile(Put("pad.gz", gz + std::string(512, '\0')), Compression::kGzip, "pad").ok());
  r = VerifyCompressedFile(Put("plain.gz", data), Compression::kGzip, "plain.gz");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not gzip data"), std::string::npos);

  std::string zst = Zstd(data, true);
  zst[zst.size() - 1] ^= 1;  // the frame's content checksum
  r = VerifyCompressedFile(Put("sum.zst", zst), Compression::kZstd, "sum.zst");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("sum.zst is corrupt: zstd:", 0), 0u) << r.status().message();
}

TEST_F(CompressedInputTest, ContentReaderAndHeadDecompressAndStopAtTheEnd) {
  std::string data = Lines(20000);
  for (const auto& [name, compression, bytes] :
       {std::tuple{"r.csv", Compression::kNone, data},
        std::tuple{"r.csv.gz", Compression::kGzip, Gzip(data) + Gzip("x\n")},
        std::tuple{"r.csv.zst", Compression::kZstd, Zstd(data, true)}}) {
    SCOPED_TRACE(name);
    std::string path = Put(name, bytes);
    auto reader = ContentReader::Open(path, compression);
    ASSERT_TRUE(reader.ok());
    std::string all;
    char buf[4096];
    while (true) {
      auto n = (*reader)->Read(buf, sizeof buf);
      ASSERT_TRUE(n.ok());
      if (*n == 0) break;
      all.append(buf, *n);
    }
    EXPECT_EQ(all, compression == Compression::kGzip ? data + "x\n" : data);
    auto head = ReadContentHead(path, compression, 10);
    ASSERT_TRUE(head.ok());
    EXPECT_EQ(*head, "id,amount\n");
  }
  EXPECT_EQ(CompressionOfPath("a/B.CSV.GZ"), Compression::kGzip);
  EXPECT_EQ(CompressionOfPath("x.jsonl.zstd"), Compression::kZstd);
  EXPECT_EQ(CompressionOfPath("x.csv"), Compression::kNone);
}

}  // namespace
}  // namespace sluice::io
