// The few S3 XML documents the client reads and writes: ListObjectsV2
// pages, <Error> bodies, InitiateMultipartUploadResult and the
// CompleteMultipartUpload request. A small XML reader of our own (elements,
// text, CDATA, entities; attributes, comments, processing instructions and
// DOCTYPE skipped) is enough for them. Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/s3/s3_object.h"
#include "sluice/status.h"

namespace sluice::io {

/// An element: its local name (namespace prefix dropped), its text
/// (entities decoded, CDATA included, child elements' text not) and its
/// child elements in document order.
struct XmlElement {
  std::string name;
  std::string text;
  std::vector<XmlElement> children;

  /// The first child named `name`, or nullptr.
  const XmlElement* Child(std::string_view child_name) const;
  /// The text of the first child named `name`, or "" when there is none.
  std::string ChildText(std::string_view child_name) const;
};

/// Parses a whole document into its root element. Fails with DataError on
/// malformed or truncated input.
Result<XmlElement> ParseXml(std::string_view document);

/// Decodes &amp; &lt; &gt; &quot; &apos; and numeric references (&#38;
/// &#x26;) to UTF-8; anything else is kept as written.
std::string XmlDecode(std::string_view text);
/// Escapes & < > " ' for element text and attribute values.
std::string XmlEscape(std::string_view text);

/// Decodes %XX escapes, and '+' as a space when plus_as_space (S3's
/// encoding-type=url does that in listings).
std::string UrlDecode(std::string_view s, bool plus_as_space);

/// "2009-10-12T17:50:30.000Z" (fraction optional, 'Z' or +hh:mm) to
/// milliseconds since the Unix epoch.
Result<int64_t> ParseIso8601Ms(std::string_view text);

struct ListObjectsPage {
  std::vector<S3Object> objects;
  bool is_truncated = false;
  std::string next_continuation_token;
};

/// A ListBucketResult of ListObjectsV2. Keys are URL-decoded when the
/// response says <EncodingType>url</EncodingType>; ETags lose their quotes.
Result<ListObjectsPage> ParseListObjectsV2(std::string_view document);

struct S3ErrorInfo {
  std::string code;     // "NoSuchKey"; "" when the body is not an S3 <Error>
  std::string message;  // "The specified key does not exist."
};

/// The Code and Message of an <Error> document; empty fields for anything else.
S3ErrorInfo ParseS3Error(std::string_view document);

/// The UploadId of an InitiateMultipartUploadResult.
Result<std::string> ParseInitiateMultipartUpload(std::string_view document);

/// The request body of CompleteMultipartUpload for (part number, ETag) pairs.
std::string CompleteMultipartUploadXml(const std::vector<std::pair<int, std::string>>& parts);

}  // namespace sluice::io
