// S3Server: a real, private S3-compatible server (s3rver 3.7.1 from npm,
// pinned in tests/s3rver/) for one test or suite.
//
// Start() runs `node tests/s3rver/node_modules/s3rver/bin/s3rver.js` on
// 127.0.0.1 at a port the kernel picks, with a fresh data directory under
// /tmp, and returns once it answers. The destructor stops it and deletes
// the directory; a watchdog process does the same if the test binary dies
// without running destructors (crash, SIGKILL from a ctest timeout). Many
// servers may run at once. Works as root (node does not mind).
//
// s3rver accepts any well-formed SigV4 Authorization header from its
// access key S3RVER without checking the signature, and unsigned requests
// too; the helpers here (CreateBucket, PutObject, ...) send unsigned plain
// HTTP, independent of the client under test. Signing is tested against
// AWS's published examples instead.
//
// Run `scripts/setup.sh --tests` (or `npm ci --prefix tests/s3rver`) once
// to install s3rver; SLUICE_S3RVER_DIR overrides where it is looked for.
//
// Thread-safety: endpoint(), port() and the HTTP helpers may be used from
// several threads at once. Stop() must not run concurrently with anything
// else on the same server.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "sluice/status.h"

namespace sluice::testing {

class Subprocess;

class S3Server {
 public:
  /// s3rver's built-in account; any other access key gets 403 InvalidAccessKeyId.
  static constexpr const char* kAccessKeyId = "S3RVER";
  static constexpr const char* kSecretAccessKey = "S3RVER";

  static Result<std::unique_ptr<S3Server>> Start();

  /// Stops the server and removes its directory.
  ~S3Server();
  S3Server(const S3Server&) = delete;
  S3Server& operator=(const S3Server&) = delete;

  int port() const { return port_; }
  /// "http://127.0.0.1:PORT", for path-style addressing.
  std::string endpoint() const;
  /// "http://s3.localhost:PORT": with path_style = false a client sends
  /// requests to BUCKET.s3.localhost, which curl resolves to loopback and
  /// s3rver maps to the bucket (virtual-host addressing).
  std::string vhost_endpoint() const;

  Status CreateBucket(const std::string& bucket) const;
  Status PutObject(const std::string& bucket, const std::string& key, std::string_view bytes) const;
  /// Streams a local file as the object's body.
  Status PutFile(const std::string& bucket, const std::string& key, const std::string& path) const;
  /// The object's bytes, read without the client under test.
  Result<std::string> GetObject(const std::string& bucket, const std::string& key) const;

  /// Stops the server (SIGKILL, then reaps it); its data stays until the
  /// destructor. Afterwards requests are refused. OK if already stopped.
  Status Stop();
  bool running() const { return running_; }

  /// Where s3rver keeps buckets and objects.
  std::string data_dir() const { return dir_ + "/data"; }
  /// What s3rver printed (it runs with --silent, so mostly startup and errors).
  std::string OutputTail(size_t max_bytes = 4000) const;

 private:
  S3Server() = default;
  Status StartWatchdog();
  Status Launch(const std::string& s3rver_js);

  std::string dir_;
  int port_ = 0;
  bool running_ = false;
  std::unique_ptr<Subprocess> process_;
  int watchdog_fd_ = -1;  // write end; its closing tells the watchdog to act
};

}  // namespace sluice::testing
