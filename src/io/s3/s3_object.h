// S3Object: what a listing or a HEAD says about one object. A plain value.
#pragma once

#include <cstdint>
#include <string>

namespace sluice::io {

struct S3Object {
  std::string key;
  std::string etag;  // without the surrounding quotes; "<md5>-<parts>" for multipart uploads on AWS
  int64_t size = 0;
  int64_t last_modified_unix_ms = 0;  // listings give milliseconds, HEAD whole seconds

  bool operator==(const S3Object&) const = default;
};

}  // namespace sluice::io
