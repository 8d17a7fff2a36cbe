// Compressed input files (.gz, .zst): what they are, their first bytes, and
// whether the compressed stream is whole.
//
// DuckDB decompresses .gz and .zst inputs itself, but it stops quietly where
// the bytes end: a file cut short (a partial upload, a full disk) would load
// a prefix of its rows and report success. VerifyCompressedFile reads the
// file through zlib or libzstd and checks the stream's own integrity (each
// gzip member's CRC-32 and length trailer; each zstd frame's end and, where
// present, its checksum), so that a damaged file fails the load.
//
// Stateless functions; safe from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "sluice/status.h"

namespace sluice::io {

enum class Compression { kNone, kGzip, kZstd };

/// From the extension: .gz -> gzip, .zst/.zstd -> zstd (case-insensitive).
Compression CompressionOfPath(std::string_view path);

/// "gzip", "zstd" or "none".
const char* CompressionName(Compression compression);

struct StreamCheck {
  int64_t compressed_bytes = 0;
  int64_t decompressed_bytes = 0;
  int members = 0;  // gzip members or zstd frames
};

/// Decompresses the whole file (discarding the output) and checks that the
/// stream is complete and intact. Errors are DataError and name the file as
/// `display_name` (the S3 key rather than the spool path): "... is
/// truncated ..." or "... is corrupt ...". `stop`, when set, ends the check
/// early with Cancelled.
Result<StreamCheck> VerifyCompressedFile(const std::string& path, Compression compression,
                                         const std::string& display_name,
                                         const std::atomic<bool>* stop = nullptr);

/// A file's content, decompressed when it is .gz or .zst, read front to back.
/// It does not check integrity: a damaged stream ends where decoding stops.
/// Used by one thread at a time.
class ContentReader {
 public:
  static Result<std::unique_ptr<ContentReader>> Open(const std::string& path, Compression compression);
  virtual ~ContentReader() = default;
  ContentReader(const ContentReader&) = delete;
  ContentReader& operator=(const ContentReader&) = delete;
  /// Fills up to `n` bytes; returns how many (0 at the end).
  virtual Result<size_t> Read(char* buf, size_t n) = 0;

 protected:
  ContentReader() = default;
};

/// Up to `max_bytes` of the file's content (decompressed); shorter when the
/// content is shorter.
Result<std::string> ReadContentHead(const std::string& path, Compression compression, size_t max_bytes);

}  // namespace sluice::io
