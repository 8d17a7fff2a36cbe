// S3Client: the S3 REST API over libcurl, for AWS and S3-compatible
// services (MinIO, R2, Ceph, s3rver), signed with SigV4.
//
// Every call retries what may succeed later (5xx, 503 SlowDown, 429 with
// Retry-After, 408/RequestTimeout, timeouts, stalled transfers, refused or
// dropped connections) with exponential backoff and jitter under
// options.retry, and ends with Unavailable saying how many attempts were
// made, marked not retryable (the budget is spent). Other errors fail at once: 404/NoSuchKey/NoSuchBucket as
// NotFound, 403 and other 4xx as InvalidArgument, each naming s3://bucket/key and the S3 error code and
// message. Messages never contain the secret key, the session token or the Authorization header.
//
// Thread-safety: all methods may be called from several threads at once;
// each request uses its own curl easy handle, taken from a small
// mutex-guarded pool so connections are reused. A Lister is used by one
// thread at a time and must not outlive its client.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/s3/s3_object.h"
#include "io/s3/s3_options.h"
#include "sluice/status.h"

namespace sluice::io {

/// Counters since the client was made, for metrics and tests.
struct S3ClientStats {
  int64_t requests = 0;  // HTTP requests sent (each attempt counts)
  int64_t retries = 0;   // attempts after a retryable failure
  int64_t bytes_downloaded = 0;
  int64_t bytes_uploaded = 0;
};

class S3Client {
 public:
  /// Validates the options (endpoint URL, region, timeouts); call
  /// ResolveS3Options first to fill them from the environment.
  static Result<std::unique_ptr<S3Client>> Make(S3Options options);

  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  /// Pages of a ListObjectsV2 listing, fetched one request at a time.
  class Lister {
   public:
    virtual ~Lister() = default;
    /// The next page (at most max_keys objects, in key order; it may be
    /// empty), or nullopt when the listing is done. After an error the same
    /// page may be asked for again.
    virtual Result<std::optional<std::vector<S3Object>>> NextPage() = 0;
  };
  /// Objects whose key starts with prefix ("" for all). Sends nothing until
  /// the first NextPage().
  std::unique_ptr<Lister> List(const std::string& bucket, const std::string& prefix,
                               int max_keys = 1000) const;

  Result<S3Object> Head(const std::string& bucket, const std::string& key) const;

  /// Bytes [offset, offset + length) of the object; fewer at its end.
  Result<std::string> GetRange(const std::string& bucket, const std::string& key, int64_t offset,
                               int64_t length) const;

  /// Streams the object to local_path through a temporary file in the same
  /// directory that is renamed into place when complete. A transfer that
  /// breaks off is resumed with a Range request from the bytes already on
  /// disk, with If-Match on the ETag; if the object changed meanwhile the
  /// download starts over. Returns the metadata of what was downloaded.
  Result<S3Object> Download(const std::string& bucket, const std::string& key,
                            const std::string& local_path) const;

  /// Uploads body in one PUT (signed payload hash).
  Status PutObject(const std::string& bucket, const std::string& key, std::string_view body) const;

  /// Uploads a local file, streamed from disk (memory use does not grow
  /// with the file): one PUT when it fits in one part, else a multipart
  /// upload of parts of part_size bytes (5 MiB to 5 GiB; raised when the
  /// file would need more than 10,000 parts), sent one after another. A
  /// failed multipart upload is aborted so no parts are left behind.
  Status Upload(const std::string& bucket, const std::string& key, const std::string& local_path,
                int64_t part_size = kDefaultPartSize) const;

  /// Deletes the object; deleting a missing key succeeds (S3 semantics).
  Status DeleteObject(const std::string& bucket, const std::string& key) const;

  /// Creates the bucket in the client's region; OK if this account already owns it.
  Status CreateBucket(const std::string& bucket) const;

  S3ClientStats stats() const;
  const S3Options& options() const;

  static constexpr int64_t kDefaultPartSize = 8 << 20;
  static constexpr int64_t kMinPartSize = 5 << 20;
  static constexpr int64_t kMaxPartSize = int64_t{5} << 30;
  static constexpr int kMaxParts = 10000;

  class Impl;

 private:
  explicit S3Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// After a download: when the object kept the ETag it was listed with, its
/// size must be the listed one (a proxy or server that cut the body short
/// while the lengths it sent agreed). Unavailable naming `where` otherwise.
Status CheckDownloadedSize(const std::string& where, const S3Object& got, int64_t listed_size,
                           const std::string& listed_etag);

}  // namespace sluice::io
