#include "io/s3/s3_xml.h"

#include <charconv>
#include <cstring>

namespace sluice::io {
namespace {

constexpr int kMaxDepth = 64;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xE0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view LocalName(std::string_view qualified) {
  size_t colon = qualified.find(':');
  return colon == std::string_view::npos ? qualified : qualified.substr(colon + 1);
}

class XmlParser {
 public:
  explicit XmlParser(std::string_view doc) : doc_(doc) {}

  Result<XmlElement> ParseDocument() {
    SLUICE_RETURN_IF_ERROR(SkipMisc());
    if (pos_ >= doc_.size()) return Error("no root element");
    if (doc_[pos_] != '<') return Error("text before the root element");
    XmlElement root;
    SLUICE_RETURN_IF_ERROR(ParseElement(&root, 0));
    return root;
  }

 private:
  Status Error(const std::string& what) const {
    return Status::DataError("malformed XML at byte " + std::to_string(pos_) + ": " + what);
  }

  bool StartsWith(std::string_view s) const { return doc_.substr(pos_, s.size()) == s; }

  Status SkipPast(std::string_view terminator, const char* what) {
    size_t end = doc_.find(terminator, pos_);
    if (end == std::string_view::npos) {
      pos_ = doc_.size();
      return Error(std::string("unterminated ") + what);
    }
    pos_ = end + terminator.size();
    return Status::OK();
  }

  // Whitespace, <?...?>, comments and a DOCTYPE (with an internal subset).
  Status SkipMisc() {
    while (true) {
      while (pos_ < doc_.size() && IsSpace(doc_[pos_])) ++pos_;
      if (StartsWith("<?")) {
        SLUICE_RETURN_IF_ERROR(SkipPast("?>", "processing instruction"));
      } else if (StartsWith("<!--")) {
        SLUICE_RETURN_IF_ERROR(SkipPast("-->", "comment"));
      } else if (StartsWith("<!DOCTYPE")) {
        int brackets = 0;
        while (pos_ < doc_.size()) {
          char c = doc_[pos_++];
          if (c == '[') ++brackets;
          if (c == ']') --brackets;
          if (c == '>' && brackets <= 0) break;
        }
      } else {
        return Status::OK();
      }
    }
  }

  std::string_view ReadName() {
    size_t start = pos_;
    while (pos_ < doc_.size() && !IsSpace(doc_[pos_]) && doc_[pos_] != '>' && doc_[pos_] != '/' &&
           doc_[pos_] != '=') {
      ++pos_;
    }
    return doc_.substr(start, pos_ - start);
  }

  // pos_ is at '<' of a start tag.
  Status ParseElement(XmlElement* out, int depth) {
    if (depth > kMaxDepth) return Error("elements nested too deeply");
    ++pos_;
    std::string_view qualified = ReadName();
    if (qualified.empty()) return Error("empty element name");
    out->name = std::string(LocalName(qualified));

    // Attributes are skipped; quoted values may contain '>' and '/'.
    while (true) {
      while (pos_ < doc_.size() && IsSpace(doc_[pos_])) ++pos_;
      if (pos_ >= doc_.size()) return Error("unterminated start tag <" + std::string(qualified) + ">");
      char c = doc_[pos_];
      if (c == '>') {
        ++pos_;
        break;
      }
      if (c == '/') {
        if (pos_ + 1 < doc_.size() && doc_[pos_ + 1] == '>') {
          pos_ += 2;
          return Status::OK();  // <empty/>
        }
        return Error("stray '/' in start tag");
      }
      if (ReadName().empty()) return Error("bad attribute in <" + std::string(qualified) + ">");
      while (pos_ < doc_.size() && IsSpace(doc_[pos_])) ++pos_;
      if (pos_ < doc_.size() && doc_[pos_] == '=') {
        ++pos_;
        while (pos_ < doc_.size() && IsSpace(doc_[pos_])) ++pos_;
        if (pos_ >= doc_.size() || (doc_[pos_] != '"' && doc_[pos_] != '\'')) {
          return Error("unquoted attribute value");
        }
        char quote = doc_[pos_++];
        size_t end = doc_.find(quote, pos_);
        if (end == std::string_view::npos) return Error("unterminated attribute value");
        pos_ = end + 1;
      }
    }

    // Content.
    while (true) {
      size_t lt = doc_.find('<', pos_);
      if (lt == std::string_view::npos) {
        pos_ = doc_.size();
        return Error("document ends inside <" + std::string(qualified) + ">");
      }
      if (lt > pos_) out->text += XmlDecode(doc_.substr(pos_, lt - pos_));
      pos_ = lt;
      if (StartsWith("</")) {
        pos_ += 2;
        std::string_view closing = ReadName();
        if (closing != qualified) {
          return Error("</" + std::string(closing) + "> closes <" + std::string(qualified) + ">");
        }
        while (pos_ < doc_.size() && IsSpace(doc_[pos_])) ++pos_;
        if (pos_ >= doc_.size() || doc_[pos_] != '>') return Error("unterminated end tag");
        ++pos_;
        return Status::OK();
      }
      if (StartsWith("<!--")) {
        SLUICE_RETURN_IF_ERROR(SkipPast("-->", "comment"));
      } else if (StartsWith("<![CDATA[")) {
        pos_ += 9;
        size_t end = doc_.find("]]>", pos_);
        if (end == std::string_view::npos) return Error("unterminated CDATA section");
        out->text.append(doc_.substr(pos_, end - pos_));
        pos_ = end + 3;
      } else if (StartsWith("<?")) {
        SLUICE_RETURN_IF_ERROR(SkipPast("?>", "processing instruction"));
      } else {
        out->children.emplace_back();
        SLUICE_RETURN_IF_ERROR(ParseElement(&out->children.back(), depth + 1));
      }
    }
  }

  std::string_view doc_;
  size_t pos_ = 0;
};

// Days since 1970-01-01 of a proleptic Gregorian date (month 1-12).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;                                   // [0, 399]
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;  // [0, 365]
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           // [0, 146096]
  return era * 146097 + doe - 719468;
}

bool ParseDigits(std::string_view s, size_t pos, size_t n, int64_t* out) {
  if (pos + n > s.size()) return false;
  int64_t v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

Result<int64_t> ParseInt64(std::string_view text, const char* what) {
  text = Trim(text);
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size()) {
    return Status::DataError(std::string("bad ") + what + " '" + std::string(text) + "'");
  }
  return v;
}

std::string StripQuotes(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') return s.substr(1, s.size() - 2);
  return s;
}

}  // namespace

const XmlElement* XmlElement::Child(std::string_view child_name) const {
  for (const XmlElement& child : children) {
    if (child.name == child_name) return &child;
  }
  return nullptr;
}

std::string XmlElement::ChildText(std::string_view child_name) const {
  const XmlElement* child = Child(child_name);
  return child ? child->text : std::string();
}

Result<XmlElement> ParseXml(std::string_view document) { return XmlParser(document).ParseDocument(); }

std::string XmlDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '&') {
      out += text[i++];
      continue;
    }
    size_t semi = text.find(';', i);
    if (semi == std::string_view::npos || semi - i > 12) {
      out += text[i++];
      continue;
    }
    std::string_view entity = text.substr(i + 1, semi - i - 1);
    bool decoded = true;
    if (entity == "amp") {
      out += '&';
    } else if (entity == "lt") {
      out += '<';
    } else if (entity == "gt") {
      out += '>';
    } else if (entity == "quot") {
      out += '"';
    } else if (entity == "apos") {
      out += '\'';
    } else if (entity.size() >= 2 && entity[0] == '#') {
      uint32_t cp = 0;
      bool hex = entity[1] == 'x' || entity[1] == 'X';
      std::string_view digits = entity.substr(hex ? 2 : 1);
      decoded = !digits.empty();
      for (char c : digits) {
        int v = hex ? HexValue(c) : (c >= '0' && c <= '9' ? c - '0' : -1);
        if (v < 0 || cp > 0x10FFFF) {
          decoded = false;
          break;
        }
        cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(v);
      }
      if (decoded && cp <= 0x10FFFF) {
        AppendUtf8(cp, &out);
      } else {
        decoded = false;
      }
    } else {
      decoded = false;
    }
    if (decoded) {
      i = semi + 1;
    } else {
      out += text[i++];
    }
  }
  return out;
}

std::string XmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string UrlDecode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
      i += 2;
    } else if (s[i] == '+' && plus_as_space) {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

Result<int64_t> ParseIso8601Ms(std::string_view text) {
  std::string_view s = Trim(text);
  auto bad = [&]() { return Status::DataError("bad ISO 8601 time '" + std::string(text) + "'"); };
  int64_t year, month, day, hour, minute, second;
  if (!ParseDigits(s, 0, 4, &year) || s.size() < 19 || s[4] != '-' || !ParseDigits(s, 5, 2, &month) ||
      s[7] != '-' || !ParseDigits(s, 8, 2, &day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !ParseDigits(s, 11, 2, &hour) || s[13] != ':' || !ParseDigits(s, 14, 2, &minute) || s[16] != ':' ||
      !ParseDigits(s, 17, 2, &second)) {
    return bad();
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return bad();
  size_t pos = 19;
  int64_t millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 3) millis = millis * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return bad();
    for (size_t d = digits; d < 3; ++d) millis *= 10;
  }
  int64_t offset_minutes = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int64_t oh, om;
    int sign = s[pos] == '-' ? -1 : 1;
    if (!ParseDigits(s, pos + 1, 2, &oh)) return bad();
    size_t mpos = pos + 3;
    if (mpos < s.size() && s[mpos] == ':') ++mpos;
    if (!ParseDigits(s, mpos, 2, &om)) return bad();
    offset_minutes = sign * (oh * 60 + om);
    pos = mpos + 2;
  }
  if (pos != s.size()) return bad();
  int64_t secs =
      DaysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
  return secs * 1000 + millis;
}

Result<ListObjectsPage> ParseListObjectsV2(std::string_view document) {
  SLUICE_ASSIGN_OR_RETURN(XmlElement root, ParseXml(document));
  if (root.name != "ListBucketResult") {
    return Status::DataError("expected a ListBucketResult document, got <" + root.name + ">");
  }
  bool url_encoded = Trim(root.ChildText("EncodingType")) == "url";
  ListObjectsPage page;
  std::string truncated(Trim(root.ChildText("IsTruncated")));
  page.is_truncated = truncated == "true";
  page.next_continuation_token = root.ChildText("NextContinuationToken");
  for (const XmlElement& child : root.children) {
    if (child.name != "Contents") continue;
    S3Object object;
    const XmlElement* key = child.Child("Key");
    if (key == nullptr) return Status::DataError("a <Contents> entry without <Key>");
    object.key = url_encoded ? UrlDecode(key->text, /*plus_as_space=*/true) : key->text;
    object.etag = StripQuotes(std::string(Trim(child.ChildText("ETag"))));
    if (const XmlElement* size = child.Child("Size")) {
      SLUICE_ASSIGN_OR_RETURN(object.size, ParseInt64(size->text, "Size"));
    }
    if (const XmlElement* modified = child.Child("LastModified")) {
      SLUICE_ASSIGN_OR_RETURN(object.last_modified_unix_ms, ParseIso8601Ms(modified->text));
    }
    page.objects.push_back(std::move(object));
  }
  return page;
}

S3ErrorInfo ParseS3Error(std::string_view document) {
  S3ErrorInfo info;
  auto root = ParseXml(document);
  if (!root.ok() || root->name != "Error") return info;
  info.code = std::string(Trim(root->ChildText("Code")));
  info.message = std::string(Trim(root->ChildText("Message")));
  return info;
}

Result<std::string> ParseInitiateMultipartUpload(std::string_view document) {
  SLUICE_ASSIGN_OR_RETURN(XmlElement root, ParseXml(document));
  std::string upload_id(Trim(root.ChildText("UploadId")));
  if (root.name != "InitiateMultipartUploadResult" || upload_id.empty()) {
    return Status::DataError("expected an InitiateMultipartUploadResult with an UploadId, got <" + root.name +
                             ">");
  }
  return upload_id;
}

std::string CompleteMultipartUploadXml(const std::vector<std::pair<int, std::string>>& parts) {
  std::string xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
  for (const auto& [number, etag] : parts) {
    xml += "<Part><PartNumber>" + std::to_string(number) + "</PartNumber><ETag>\"" + XmlEscape(etag) +
           "\"</ETag></Part>";
  }
  xml += "</CompleteMultipartUpload>";
  return xml;
}

}  // namespace sluice::io
