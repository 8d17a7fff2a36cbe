// Fuzzes the S3 XML reader (s3_xml.h) with what an S3 server, or anything
// claiming to be one, may answer: ListObjectsV2 pages, <Error> bodies,
// InitiateMultipartUploadResult, and the entity, URL and ISO 8601 decoders
// they use. Properties:
//  - every parser either succeeds or fails with a DataError;
//  - a ListObjectsV2 page has one object per <Contents> element;
//  - any text, escaped by XmlEscape, reads back unchanged through XmlDecode
//    and as the text of an element;
//  - a CompleteMultipartUpload body built from fuzzed ETags parses, and
//    carries each part number and ETag as given;
//  - URL decoding never lengthens its input.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz_check.h"
#include "io/s3/s3_xml.h"

namespace sluice::io {
namespace {

void CheckParsers(std::string_view input) {
  Result<XmlElement> root = ParseXml(input);
  SLUICE_FUZZ_CHECK(root.ok() || root.status().code() == StatusCode::kDataError);

  Result<ListObjectsPage> page = ParseListObjectsV2(input);
  if (page.ok()) {
    SLUICE_FUZZ_CHECK(root.ok());
    size_t contents = 0;
    for (const XmlElement& child : root->children) contents += child.name == "Contents" ? 1 : 0;
    SLUICE_FUZZ_CHECK(page->objects.size() == contents);
  } else {
    SLUICE_FUZZ_CHECK(page.status().code() == StatusCode::kDataError);
  }

  S3ErrorInfo error = ParseS3Error(input);
  SLUICE_FUZZ_CHECK(error.code.empty() || (root.ok() && root->name == "Error"));

  Result<std::string> upload_id = ParseInitiateMultipartUpload(input);
  SLUICE_FUZZ_CHECK(upload_id.ok() ? !upload_id->empty()
                                   : upload_id.status().code() == StatusCode::kDataError);

  Result<int64_t> ms = ParseIso8601Ms(input);
  SLUICE_FUZZ_CHECK(ms.ok() || ms.status().code() == StatusCode::kDataError);

  SLUICE_FUZZ_CHECK(UrlDecode(input, true).size() <= input.size());
  SLUICE_FUZZ_CHECK(UrlDecode(input, false).size() <= input.size());
  (void)XmlDecode(input);
}

void CheckRoundTrips(std::string_view input) {
  const std::string escaped = XmlEscape(input);
  SLUICE_FUZZ_CHECK(XmlDecode(escaped) == input);
  Result<XmlElement> element = ParseXml("<Key>" + escaped + "</Key>");
  SLUICE_FUZZ_CHECK(element.ok() && element->name == "Key" && element->text == input &&
                    element->children.empty());

  // The input split at NUL bytes gives the ETags of a multipart upload.
  std::vector<std::pair<int, std::string>> parts;
  size_t start = 0;
  while (start <= input.size() && parts.size() < 16) {
    size_t end = std::min(input.find('\0', start), input.size());
    parts.emplace_back(static_cast<int>(parts.size()) + 1, std::string(input.substr(start, end - start)));
    start = end + 1;
  }
  Result<XmlElement> complete = ParseXml(CompleteMultipartUploadXml(parts));
  SLUICE_FUZZ_CHECK(complete.ok() && complete->name == "CompleteMultipartUpload");
  SLUICE_FUZZ_CHECK(complete->children.size() == parts.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    const XmlElement& part = complete->children[i];
    SLUICE_FUZZ_CHECK(part.ChildText("PartNumber") == std::to_string(parts[i].first));
    SLUICE_FUZZ_CHECK(part.ChildText("ETag") == "\"" + parts[i].second + "\"");
  }
}

}  // namespace
}  // namespace sluice::io

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  sluice::io::CheckParsers(input);
  sluice::io::CheckRoundTrips(input);
  return 0;
}
