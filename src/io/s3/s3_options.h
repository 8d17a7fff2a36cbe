// Where an S3 client connects and as whom: S3Options, filled from the
// pipeline config and then, for whatever the config left empty, from the
// AWS environment variables and the shared ~/.aws files, the way the AWS
// CLI does. Also s3:// URL parsing. Stateless functions; safe from any
// thread (the environment is read through the EnvLookup passed in).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/cancellation.h"
#include "core/retry.h"
#include "sluice/config_table.h"
#include "sluice/status.h"

namespace sluice::io {

struct S3Options {
  /// "" = AWS (https://s3.<region>.amazonaws.com); else the service's base
  /// URL, e.g. "http://127.0.0.1:9000" (MinIO), "https://<account>.r2.cloudflarestorage.com".
  std::string endpoint;
  /// Signing region. ResolveS3Options fills "" from the environment and
  /// ~/.aws/config; S3Client::Make takes "" as "us-east-1".
  std::string region;
  /// Empty key and secret after resolution mean anonymous (unsigned) requests.
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  /// https://host/bucket/key (true) or https://bucket.host/key (false).
  /// Default: true with a custom endpoint, false for AWS.
  std::optional<bool> path_style;
  RetryPolicy retry;
  int64_t connect_timeout_ms = 10000;
  /// A request that sends and receives nothing for this long is stalled:
  /// it is aborted and retried (a download resumes). Checked about once a
  /// second, so give at least ~1000.
  int64_t stall_timeout_ms = 30000;
  /// Optional; when it fires, requests in flight are aborted and calls
  /// return Cancelled. Must outlive the client.
  const CancellationSource* cancel = nullptr;
};

/// Reads one environment variable; nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

/// The process environment (getenv).
EnvLookup ProcessEnv();

/// Fills what the config left empty. Precedence, field by field:
///  - credentials, as a set (key, secret, token together): the config, then
///    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, then the
///    profile AWS_PROFILE (default "default") of the shared credentials file
///    (AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials);
///  - region: the config, AWS_REGION, AWS_DEFAULT_REGION, the profile's
///    region in AWS_CONFIG_FILE (default ~/.aws/config), "us-east-1";
///  - endpoint: the config, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, "" (AWS);
///  - path_style: the config, else true exactly when there is an endpoint.
/// Fails with InvalidArgument when only half of a key pair is given, or when
/// an explicitly named AWS_PROFILE is in neither file.
Result<S3Options> ResolveS3Options(S3Options from_config, const EnvLookup& env);

/// [s3] of a pipeline file as written (nothing resolved yet): endpoint,
/// region, access_key_id, secret_access_key, session_token, addressing
/// ("path" | "virtual"), stall_timeout, retry_max_elapsed. Every key is
/// read; bad values are recorded in the table.
S3Options ReadS3Section(const ConfigTable& s3);
/// `written` completed from the process environment and ~/.aws, with
/// `cancel` for the requests; errors name [s3].
Result<S3Options> ResolveS3OptionsForUse(S3Options written, const CancellationSource* cancel);

struct S3Url {
  std::string bucket;
  std::string key;  // may be "", a prefix, or contain a glob
};

/// "s3://bucket/a/b*.parquet" -> {"bucket", "a/b*.parquet"}. The key is
/// taken literally (no percent-decoding).
Result<S3Url> ParseS3Url(std::string_view url);

/// "s3://bucket/key", for messages.
std::string S3UrlString(std::string_view bucket, std::string_view key);

}  // namespace sluice::io
