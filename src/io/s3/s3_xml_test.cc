#include "io/s3/s3_xml.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::io {
namespace {

// Shaped like the ListObjectsV2 example of the S3 API reference.
constexpr const char* kPage = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name>
  <Prefix/>
  <KeyCount>2</KeyCount>
  <MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <Contents>
    <Key>ExampleObject.txt</Key>
    <LastModified>2013-09-17T18:07:53.000Z</LastModified>
    <ETag>&quot;599bab3ed2c697f1d26842727561fd94&quot;</ETag>
    <Size>857</Size>
    <StorageClass>REDUCED_REDUNDANCY</StorageClass>
  </Contents>
  <Contents>
    <Key>a &amp; b &lt;c&gt; &#x41;&#66;.csv</Key>
    <LastModified>2009-10-12T17:50:30.5Z</LastModified>
    <ETag>"9b2cf535f27731c974343645a3985328-12"</ETag>
    <Size>4294967297</Size>
  </Contents>
</ListBucketResult>)";

TEST(S3Xml, ListPageGivesKeysEtagsSizesAndTimes) {
  auto page = ParseListObjectsV2(kPage);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_TRUE(page->is_truncated);
  EXPECT_EQ(page->next_continuation_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
  ASSERT_EQ(page->objects.size(), 2u);
  EXPECT_EQ(page->objects[0].key, "ExampleObject.txt");
  EXPECT_EQ(page->objects[0].etag, "599bab3ed2c697f1d26842727561fd94");
  EXPECT_EQ(page->objects[0].size, 857);
  EXPECT_EQ(page->objects[0].last_modified_unix_ms, 1379441273000);
  EXPECT_EQ(page->objects[1].key, "a & b <c> AB.csv");
  EXPECT_EQ(page->objects[1].etag, "9b2cf535f27731c974343645a3985328-12");
  EXPECT_EQ(page->objects[1].size, 4294967297);
  EXPECT_EQ(page->objects[1].last_modified_unix_ms, 1255369830500);
}

TEST(S3Xml, LastPageIsNotTruncated) {
  auto page = ParseListObjectsV2(
      "<ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount></ListBucketResult>");
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_FALSE(page->is_truncated);
  EXPECT_TRUE(page->next_continuation_token.empty());
  EXPECT_TRUE(page->objects.empty());
}

TEST(S3Xml, UrlEncodedKeysAreDecodedOnlyWhenTheAnswerSaysSo) {
  const char* encoded =
      "<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>"
      "<Contents><Key>dir%2Fa+b%2Bc%25d%01.txt</Key><Size>1</Size></Contents></ListBucketResult>";
  auto page = ParseListObjectsV2(encoded);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->objects.size(), 1u);
  EXPECT_EQ(page->objects[0].key, std::string("dir/a b+c%d\x01.txt"));

  // A server that ignores encoding-type=url (s3rver) sends keys as they are.
  auto raw = ParseListObjectsV2(
      "<ListBucketResult><IsTruncated>false</IsTruncated>"
      "<Contents><Key>a+b%2B.txt</Key></Contents></ListBucketResult>");
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->objects[0].key, "a+b%2B.txt");
}

TEST(S3Xml, TruncatedDocumentIsADataError) {
  std::string doc(kPage);
  for (size_t cut : {doc.size() - 1, doc.size() / 2, size_t{60}, size_t{3}}) {
    auto page = ParseListObjectsV2(doc.substr(0, cut));
    ASSERT_FALSE(page.ok()) << "cut at " << cut;
    EXPECT_EQ(page.status().code(), StatusCode::kDataError);
  }
}

TEST(S3Xml, MalformedDocumentsAreDataErrors) {
  for (const char* doc : {"", "not xml", "<a><b></a></b>", "<a x=unquoted></a>", "<ListBucketResult>"}) {
    auto page = ParseListObjectsV2(doc);
    ASSERT_FALSE(page.ok()) << doc;
    EXPECT_EQ(page.status().code(), StatusCode::kDataError) << doc;
  }
  auto wrong_root = ParseListObjectsV2("<Error><Code>x</Code></Error>");
  ASSERT_FALSE(wrong_root.ok());
  EXPECT_NE(wrong_root.status().message().find("ListBucketResult"), std::string::npos);
  auto bad_size = ParseListObjectsV2(
      "<ListBucketResult><Contents><Key>k</Key><Size>12x</Size></Contents></ListBucketResult>");
  ASSERT_FALSE(bad_size.ok());
  EXPECT_NE(bad_size.status().message().find("Size"), std::string::npos);
}

TEST(S3Xml, ReaderHandlesCdataCommentsAttributesAndPrefixes) {
  auto root = ParseXml(
      "<?xml version=\"1.0\"?><!-- hi --><!DOCTYPE x [<!ENTITY a \"b\">]>"
      "<s3:Root xmlns:s3=\"urn:x\" attr='a > b'><s3:Key><![CDATA[<raw & text>]]></s3:Key>"
      "<!-- inside --><Empty/><Empty attr=\"/\" /></s3:Root>");
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  EXPECT_EQ(root->name, "Root");
  EXPECT_EQ(root->ChildText("Key"), "<raw & text>");
  ASSERT_EQ(root->children.size(), 3u);
  EXPECT_EQ(root->children[1].name, "Empty");
  EXPECT_EQ(root->Child("Missing"), nullptr);
  EXPECT_EQ(root->ChildText("Missing"), "");
}

TEST(S3Xml, EntitiesDecodeToUtf8) {
  EXPECT_EQ(XmlDecode("&amp;&lt;&gt;&quot;&apos;"), "&<>\"'");
  EXPECT_EQ(XmlDecode("&#233;&#xE9;&#x1F600;"), "\xc3\xa9\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(XmlDecode("AT&T &unknown; & &#xZZ; &#;"), "AT&T &unknown; & &#xZZ; &#;");
  EXPECT_EQ(XmlEscape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
  EXPECT_EQ(XmlDecode(XmlEscape("x & <y>")), "x & <y>");
}

TEST(S3Xml, ErrorDocumentGivesCodeAndMessage) {
  S3ErrorInfo info = ParseS3Error(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>"
      "<Message>The specified key does not exist.</Message><Key>a/b</Key>"
      "<RequestId>4442587FB7D0A2F9</RequestId></Error>");
  EXPECT_EQ(info.code, "NoSuchKey");
  EXPECT_EQ(info.message, "The specified key does not exist.");
  EXPECT_TRUE(ParseS3Error("").code.empty());
  EXPECT_TRUE(ParseS3Error("<html><body>Bad Gateway</body></html>").code.empty());
  EXPECT_TRUE(ParseS3Error("<Error><Code>Trunc").code.empty());
}

TEST(S3Xml, MultipartDocuments) {
  auto id = ParseInitiateMultipartUpload(
      "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2FkIElE</UploadId></InitiateMultipartUploadResult>");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, "VXBsb2FkIElE");
  EXPECT_FALSE(ParseInitiateMultipartUpload("<InitiateMultipartUploadResult/>").ok());

  std::string xml = CompleteMultipartUploadXml({{1, "a54357aff0632cce46d942af68356b38"}, {2, "0c78aef8"}});
  auto root = ParseXml(xml);
  ASSERT_TRUE(root.ok()) << xml;
  EXPECT_EQ(root->name, "CompleteMultipartUpload");
  ASSERT_EQ(root->children.size(), 2u);
  EXPECT_EQ(root->children[1].ChildText("PartNumber"), "2");
  EXPECT_EQ(root->children[0].ChildText("ETag"), "\"a54357aff0632cce46d942af68356b38\"");
}

TEST(S3Xml, Iso8601Times) {
  EXPECT_EQ(*ParseIso8601Ms("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*ParseIso8601Ms("2009-10-12T17:50:30.000Z"), 1255369830000);
  EXPECT_EQ(*ParseIso8601Ms("2009-10-12T17:50:30.123456Z"), 1255369830123);
  EXPECT_EQ(*ParseIso8601Ms("2009-10-12T17:50:30.5Z"), 1255369830500);
  EXPECT_EQ(*ParseIso8601Ms("2024-02-29T12:00:00Z"), 1709208000000);
  EXPECT_EQ(*ParseIso8601Ms("2024-02-29T14:00:00+02:00"), 1709208000000);
  EXPECT_EQ(*ParseIso8601Ms("2024-02-29T11:30:00-0030"), 1709208000000);
  EXPECT_EQ(*ParseIso8601Ms("1969-12-31T23:59:59Z"), -1000);
  for (const char* bad : {"", "2009-10-12", "2009-13-12T00:00:00Z", "2009-10-12T17:50:30.Z", "yesterday",
                          "2009-10-12T17:50:30Zjunk"}) {
    auto r = ParseIso8601Ms(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kDataError);
  }
}

TEST(S3Xml, UrlDecoding) {
  EXPECT_EQ(UrlDecode("a+b%20c%2Fd", true), "a b c/d");
  EXPECT_EQ(UrlDecode("a+b", false), "a+b");
  EXPECT_EQ(UrlDecode("100%", true), "100%");
  EXPECT_EQ(UrlDecode("%zz%4", true), "%zz%4");
}

}  // namespace
}  // namespace sluice::io
