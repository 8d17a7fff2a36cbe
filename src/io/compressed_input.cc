#include "io/compressed_input.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <vector>

#include "core/human_format.h"

namespace sluice::io {

namespace {

constexpr size_t kInputChunk = 256 << 10;
constexpr size_t kOutputChunk = 256 << 10;

/// A file read in chunks; closes itself.
class ChunkReader {
 public:
  static Result<ChunkReader> Open(const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::IoError("cannot open '" + path + "': " + std::strerror(errno));
#ifdef POSIX_FADV_SEQUENTIAL
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
    return ChunkReader(fd, path);
  }
  ChunkReader(ChunkReader&& other) noexcept
      : fd_(other.fd_), path_(std::move(other.path_)), offset_(other.offset_) {
    other.fd_ = -1;
  }
  ChunkReader(const ChunkReader&) = delete;
  ChunkReader& operator=(const ChunkReader&) = delete;
  ChunkReader& operator=(ChunkReader&&) = delete;
  ~ChunkReader() {
    if (fd_ >= 0) close(fd_);
  }

  /// Fills `buf` with the next bytes; returns how many (0 at the end).
  Result<size_t> Read(std::vector<unsigned char>* buf) {
    while (true) {
      ssize_t n = read(fd_, buf->data(), buf->size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::IoError("cannot read '" + path_ + "': " + std::strerror(errno));
      offset_ += n;
      return static_cast<size_t>(n);
    }
  }
  /// Reads up to n bytes into buf; returns how many (0 at the end).
  Result<size_t> ReadInto(char* buf, size_t n) {
    while (true) {
      ssize_t got = read(fd_, buf, n);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return Status::IoError("cannot read '" + path_ + "': " + std::strerror(errno));
      offset_ += got;
      return static_cast<size_t>(got);
    }
  }
  int64_t offset() const { return offset_; }

 private:
  ChunkReader(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
  int64_t offset_ = 0;
};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

Status Truncated(const std::string& name, const std::string& why) {
  return Status::DataError(
      name + " is truncated: " + why +
      "; the file is incomplete (a partial upload or copy?), so nothing was loaded from it");
}

Status Corrupt(const std::string& name, const std::string& why) {
  return Status::DataError(name + " is corrupt: " + why + "; nothing was loaded from it");
}

/// A zlib stream that reads gzip members (header, deflate data, trailer).
/// Not movable: zlib's state points back at it.
struct GzipInflater {
  GzipInflater() = default;
  GzipInflater(const GzipInflater&) = delete;
  GzipInflater& operator=(const GzipInflater&) = delete;
  ~GzipInflater() {
    if (ready) inflateEnd(&z);
  }
  Status Init() {
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return Status::Internal("zlib inflateInit2 failed");
    ready = true;
    return Status::OK();
  }
  z_stream z{};
  bool ready = false;
};

struct ZstdFree {
  void operator()(ZSTD_DCtx* ctx) const { ZSTD_freeDCtx(ctx); }
};
using ZstdContext = std::unique_ptr<ZSTD_DCtx, ZstdFree>;

Result<ZstdContext> NewZstdContext() {
  ZstdContext ctx(ZSTD_createDCtx());
  if (!ctx) return Status::Internal("ZSTD_createDCtx failed");
  // Accept frames written with --long (windows up to 2 GiB), as zstd -d does
  // when told; the memory is used only by frames that ask for it.
  (void)ZSTD_DCtx_setParameter(ctx.get(), ZSTD_d_windowLogMax, 31);
  return ctx;
}

bool Stopped(const std::atomic<bool>* stop) {
  return stop != nullptr && stop->load(std::memory_order_relaxed);
}

Result<StreamCheck> VerifyGzip(const std::string& path, const std::string& name,
                               const std::atomic<bool>* stop) {
  SLUICE_ASSIGN_OR_RETURN(ChunkReader reader, ChunkReader::Open(path));
  std::vector<unsigned char> in(kInputChunk), out(kOutputChunk);
  GzipInflater inflater;
  SLUICE_RETURN_IF_ERROR(inflater.Init());
  z_stream& z = inflater.z;

  StreamCheck check;
  bool in_member = false;     // bytes of a member were consumed and its end not reached
  int64_t member_start = 0;   // offset of the current member in the file
  bool after_member = false;  // at least one member ended: what follows must be another one
  bool trailing_zeros = false;
  while (true) {
    if (Stopped(stop)) return Status::Cancelled("interrupted");
    SLUICE_ASSIGN_OR_RETURN(size_t got, reader.Read(&in));
    if (got == 0) break;
    z.next_in = in.data();
    z.avail_in = static_cast<uInt>(got);
    while (z.avail_in > 0) {
      int64_t position = reader.offset() - static_cast<int64_t>(z.avail_in);
      if (!in_member) {
        if (trailing_zeros || (after_member && z.next_in[0] == 0)) {
          // gzip(1) ignores zero padding after the last member (tape blocks).
          for (uInt i = 0; i < z.avail_in; ++i) {
            if (z.next_in[i] != 0) {
              return Corrupt(name, "unexpected bytes after the gzip data at byte " +
                                       Thousands(position + static_cast<int64_t>(i)));
            }
          }
          trailing_zeros = true;
          z.avail_in = 0;
          break;
        }
        if (z.next_in[0] != 0x1f) {
          return after_member ? Corrupt(name, "unexpected bytes after the gzip member that ends at byte " +
                                                  Thousands(position))
                              : Corrupt(name, "it is not gzip data (no gzip header)");
        }
        in_member = true;
        member_start = position;
      }
      z.next_out = out.data();
      z.avail_out = static_cast<uInt>(out.size());
      int rc = inflate(&z, Z_NO_FLUSH);
      check.decompressed_bytes += static_cast<int64_t>(out.size() - z.avail_out);
      if (rc == Z_STREAM_END) {
        // zlib has checked the member's CRC-32 and length trailer.
        ++check.members;
        in_member = false;
        after_member = true;
        if (inflateReset(&z) != Z_OK) return Status::Internal("zlib inflateReset failed");
        continue;
      }
      if (rc == Z_OK || rc == Z_BUF_ERROR) continue;
      std::string why = z.msg ? z.msg : "zlib error " + std::to_string(rc);
      if (why == "incorrect data check") why = "CRC-32 mismatch";
      if (why == "incorrect length check") why = "length trailer mismatch";
      return Corrupt(name, why + " in the gzip member starting at byte " + Thousands(member_start));
    }
  }
  check.compressed_bytes = reader.offset();
  if (in_member) {
    return Truncated(name, "the gzip stream ends inside a member (the member starting at byte " +
                               Thousands(member_start) + " has no end; the file has " +
                               Thousands(check.compressed_bytes) + " bytes)");
  }
  return check;
}

Result<StreamCheck> VerifyZstd(const std::string& path, const std::string& name,
                               const std::atomic<bool>* stop) {
  SLUICE_ASSIGN_OR_RETURN(ChunkReader reader, ChunkReader::Open(path));
  std::vector<unsigned char> in(kInputChunk), out(kOutputChunk);
  SLUICE_ASSIGN_OR_RETURN(ZstdContext context, NewZstdContext());
  ZSTD_DCtx* ctx = context.get();

  StreamCheck check;
  size_t last = 0;  // 0: at a frame boundary
  int64_t frame_start = 0;
  while (true) {
    if (Stopped(stop)) return Status::Cancelled("interrupted");
    SLUICE_ASSIGN_OR_RETURN(size_t got, reader.Read(&in));
    if (got == 0) break;
    ZSTD_inBuffer input{in.data(), got, 0};
    while (input.pos < input.size) {
      if (last == 0) frame_start = reader.offset() - static_cast<int64_t>(input.size - input.pos);
      ZSTD_outBuffer output{out.data(), out.size(), 0};
      last = ZSTD_decompressStream(ctx, &output, &input);
      if (ZSTD_isError(last)) {
        return Corrupt(name, std::string("zstd: ") + ZSTD_getErrorName(last) +
                                 " in the frame starting at byte " + Thousands(frame_start));
      }
      check.decompressed_bytes += static_cast<int64_t>(output.pos);
      if (last == 0) ++check.members;
    }
    // Flush what a finished input left in the context's buffers.
    while (last != 0) {
      ZSTD_inBuffer none{nullptr, 0, 0};
      ZSTD_outBuffer output{out.data(), out.size(), 0};
      size_t rc = ZSTD_decompressStream(ctx, &output, &none);
      if (ZSTD_isError(rc)) {
        return Corrupt(name, std::string("zstd: ") + ZSTD_getErrorName(rc) +
                                 " in the frame starting at byte " + Thousands(frame_start));
      }
      check.decompressed_bytes += static_cast<int64_t>(output.pos);
      bool progressed = output.pos > 0;
      last = rc;
      if (last == 0) ++check.members;
      if (!progressed) break;  // needs more input
    }
  }
  check.compressed_bytes = reader.offset();
  if (last != 0) {
    return Truncated(name, "the zstd frame starting at byte " + Thousands(frame_start) +
                               " has no end (the file has " + Thousands(check.compressed_bytes) + " bytes)");
  }
  return check;
}

}  // namespace

Compression CompressionOfPath(std::string_view path) {
  std::string p = Lower(path);
  if (p.ends_with(".gz")) return Compression::kGzip;
  if (p.ends_with(".zst") || p.ends_with(".zstd")) return Compression::kZstd;
  return Compression::kNone;
}

const char* CompressionName(Compression compression) {
  switch (compression) {
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
    case Compression::kNone:
      break;
  }
  return "none";
}

Result<StreamCheck> VerifyCompressedFile(const std::string& path, Compression compression,
                                         const std::string& display_name, const std::atomic<bool>* stop) {
  switch (compression) {
    case Compression::kGzip:
      return VerifyGzip(path, display_name, stop);
    case Compression::kZstd:
      return VerifyZstd(path, display_name, stop);
    case Compression::kNone:
      break;
  }
  return StreamCheck{};
}

namespace {

class PlainReader : public ContentReader {
 public:
  explicit PlainReader(ChunkReader file) : file_(std::move(file)) {}
  Result<size_t> Read(char* buf, size_t n) override { return file_.ReadInto(buf, n); }

 private:
  ChunkReader file_;
};

class GzipReader : public ContentReader {
 public:
  explicit GzipReader(ChunkReader file) : file_(std::move(file)), in_(kInputChunk) {}
  Status Init() { return inflater_.Init(); }
  Result<size_t> Read(char* buf, size_t n) override {
    z_stream& z = inflater_.z;
    while (!done_) {
      if (z.avail_in == 0) {
        SLUICE_ASSIGN_OR_RETURN(size_t got, file_.Read(&in_));
        if (got == 0) {
          done_ = true;
          break;
        }
        z.next_in = in_.data();
        z.avail_in = static_cast<uInt>(got);
      }
      z.next_out = reinterpret_cast<Bytef*>(buf);
      z.avail_out = static_cast<uInt>(n);
      int rc = inflate(&z, Z_NO_FLUSH);
      size_t produced = n - z.avail_out;
      if (rc == Z_STREAM_END) {
        // Another member may follow (concatenated gzip files).
        if (z.avail_in > 0 && z.next_in[0] != 0x1f) done_ = true;
        if (!done_ && inflateReset(&z) != Z_OK) done_ = true;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        done_ = true;
      }
      if (produced > 0) return produced;
    }
    return size_t{0};
  }

 private:
  ChunkReader file_;
  std::vector<unsigned char> in_;
  GzipInflater inflater_;
  bool done_ = false;
};

class ZstdReader : public ContentReader {
 public:
  explicit ZstdReader(ChunkReader file) : file_(std::move(file)), in_(kInputChunk) {}
  Status Init() {
    SLUICE_ASSIGN_OR_RETURN(ctx_, NewZstdContext());
    return Status::OK();
  }
  Result<size_t> Read(char* buf, size_t n) override {
    while (!done_) {
      if (input_.pos == input_.size && !eof_) {
        SLUICE_ASSIGN_OR_RETURN(size_t got, file_.Read(&in_));
        eof_ = got == 0;
        input_ = ZSTD_inBuffer{in_.data(), got, 0};
      }
      ZSTD_outBuffer output{buf, n, 0};
      size_t rc = ZSTD_decompressStream(ctx_.get(), &output, &input_);
      if (ZSTD_isError(rc) || (eof_ && output.pos == 0)) done_ = true;
      if (output.pos > 0) return output.pos;
    }
    return size_t{0};
  }

 private:
  ChunkReader file_;
  std::vector<unsigned char> in_;
  ZstdContext ctx_;
  ZSTD_inBuffer input_{nullptr, 0, 0};
  bool eof_ = false;
  bool done_ = false;
};

}  // namespace

Result<std::unique_ptr<ContentReader>> ContentReader::Open(const std::string& path, Compression compression) {
  SLUICE_ASSIGN_OR_RETURN(ChunkReader file, ChunkReader::Open(path));
  switch (compression) {
    case Compression::kGzip: {
      auto reader = std::make_unique<GzipReader>(std::move(file));
      SLUICE_RETURN_IF_ERROR(reader->Init());
      return std::unique_ptr<ContentReader>(std::move(reader));
    }
    case Compression::kZstd: {
      auto reader = std::make_unique<ZstdReader>(std::move(file));
      SLUICE_RETURN_IF_ERROR(reader->Init());
      return std::unique_ptr<ContentReader>(std::move(reader));
    }
    case Compression::kNone:
      break;
  }
  return std::unique_ptr<ContentReader>(std::make_unique<PlainReader>(std::move(file)));
}

Result<std::string> ReadContentHead(const std::string& path, Compression compression, size_t max_bytes) {
  SLUICE_ASSIGN_OR_RETURN(auto reader, ContentReader::Open(path, compression));
  std::string head(max_bytes, '\0');
  size_t got = 0;
  while (got < max_bytes) {
    SLUICE_ASSIGN_OR_RETURN(size_t n, reader->Read(head.data() + got, max_bytes - got));
    if (n == 0) break;
    got += n;
  }
  head.resize(got);
  return head;
}

}  // namespace sluice::io
