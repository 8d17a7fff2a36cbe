#include "core/job.h"

namespace sluice {

std::string ErrorKind(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return "";
    case StatusCode::kInvalidArgument:
      return "config";
    case StatusCode::kDataError:
      return "data";
    case StatusCode::kSchemaMismatch:
      return "schema";
    case StatusCode::kNotFound:
      return "not_found";
    case StatusCode::kIoError:
      return "io";
    case StatusCode::kUnavailable:
      return "unavailable";
    case StatusCode::kCancelled:
      return "cancelled";
    default:
      return "internal";
  }
}

}  // namespace sluice
