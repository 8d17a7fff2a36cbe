#include "io/s3/s3_options.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "harness/temp_dir.h"

namespace sluice::io {
namespace {

using sluice::testing::TempDir;

EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// A HOME with ~/.aws/credentials and ~/.aws/config.
class AwsHome {
 public:
  AwsHome() {
    dir_.Write(".aws/credentials",
               "# comment\n"
               "[default]\n"
               "aws_access_key_id = FILEKEY\n"
               "aws_secret_access_key = filesecret\n"
               "\n"
               "[other]\n"
               "aws_access_key_id=OTHERKEY\n"
               "aws_secret_access_key=othersecret\n"
               "aws_session_token = othertoken\n"
               "; half a pair\n"
               "[broken]\n"
               "aws_access_key_id = BROKENKEY\n");
    dir_.Write(".aws/config",
               "[default]\n"
               "region = eu-west-1\n"
               "[profile other]\n"
               "region = ap-south-1\n"
               "[profile configonly]\n"
               "aws_access_key_id = CONFIGKEY\n"
               "aws_secret_access_key = configsecret\n");
  }
  const std::string& path() const { return dir_.path(); }

 private:
  TempDir dir_{"sluice-aws-home"};
};

TEST(S3Url, SplitsBucketAndKey) {
  auto url = ParseS3Url("s3://my-bucket/a/b*.parquet");
  ASSERT_TRUE(url.ok()) << url.status().ToString();
  EXPECT_EQ(url->bucket, "my-bucket");
  EXPECT_EQ(url->key, "a/b*.parquet");

  auto bucket_only = ParseS3Url("s3://my.bucket_1");
  ASSERT_TRUE(bucket_only.ok());
  EXPECT_EQ(bucket_only->bucket, "my.bucket_1");
  EXPECT_EQ(bucket_only->key, "");
  EXPECT_EQ(ParseS3Url("s3://b/")->key, "");
  EXPECT_EQ(ParseS3Url("S3://b/x%20y")->key, "x%20y");  // taken literally
  EXPECT_EQ(ParseS3Url("s3://b//double")->key, "/double");
  EXPECT_EQ(S3UrlString("b", "k/1"), "s3://b/k/1");
  EXPECT_EQ(S3UrlString("b", ""), "s3://b");
}

TEST(S3Url, RejectsWhatIsNotAnS3Url) {
  for (const char* bad : {"", "s3:/", "s3://", "s3:///key", "http://bucket/key", "bucket/key",
                          "s3://bu cket/k", "s3://bucket?x/k"}) {
    auto url = ParseS3Url(bad);
    ASSERT_FALSE(url.ok()) << bad;
    EXPECT_EQ(url.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(url.status().message().find(std::string("'") + bad + "'"), std::string::npos)
        << url.status().message();
  }
}

TEST(ResolveS3Options, ConfigWinsOverEnvironmentAndFiles) {
  AwsHome home;
  S3Options config;
  config.access_key_id = "CONFIGKEY";
  config.secret_access_key = "configsecret";
  config.region = "us-west-2";
  config.endpoint = "http://127.0.0.1:9000";
  auto resolved = ResolveS3Options(config, FakeEnv({{"HOME", home.path()},
                                                    {"AWS_ACCESS_KEY_ID", "ENVKEY"},
                                                    {"AWS_SECRET_ACCESS_KEY", "envsecret"},
                                                    {"AWS_SESSION_TOKEN", "envtoken"},
                                                    {"AWS_REGION", "eu-central-1"},
                                                    {"AWS_ENDPOINT_URL", "http://elsewhere:1"}}));
  ASSERT_TRUE(resolved.ok()) << resolved.status().ToString();
  EXPECT_EQ(resolved->access_key_id, "CONFIGKEY");
  EXPECT_EQ(resolved->secret_access_key, "configsecret");
  EXPECT_EQ(resolved->session_token, "");  // never mixed with the environment's keys
  EXPECT_EQ(resolved->region, "us-west-2");
  EXPECT_EQ(resolved->endpoint, "http://127.0.0.1:9000");
  EXPECT_EQ(resolved->path_style, true);
}

TEST(ResolveS3Options, EnvironmentWinsOverFiles) {
  AwsHome home;
  auto resolved = ResolveS3Options({}, FakeEnv({{"HOME", home.path()},
                                                {"AWS_ACCESS_KEY_ID", "ENVKEY"},
                                                {"AWS_SECRET_ACCESS_KEY", "envsecret"},
                                                {"AWS_SESSION_TOKEN", "envtoken"},
                                                {"AWS_DEFAULT_REGION", "eu-north-1"}}));
  ASSERT_TRUE(resolved.ok()) << resolved.status().ToString();
  EXPECT_EQ(resolved->access_key_id, "ENVKEY");
  EXPECT_EQ(resolved->secret_access_key, "envsecret");
  EXPECT_EQ(resolved->session_token, "envtoken");
  EXPECT_EQ(resolved->region, "eu-north-1");
  EXPECT_EQ(resolved->endpoint, "");
  EXPECT_EQ(resolved->path_style, false);
}

TEST(ResolveS3Options, AwsRegionWinsOverAwsDefaultRegion) {
  auto resolved = ResolveS3Options({}, FakeEnv({{"AWS_REGION", "a-1"}, {"AWS_DEFAULT_REGION", "b-2"}}));
  ASSERT_TRUE(resolved.ok());
  EXPECT_EQ(resolved->region, "a-1");
}

TEST(ResolveS3Options, DefaultProfileOfTheSharedFiles) {
  AwsHome home;
  auto resolved = ResolveS3Options({}, FakeEnv({{"HOME", home.path()}}));
  ASSERT_TRUE(resolved.ok()) << resolved.status().ToString();
  EXPECT_EQ(resolved->access_key_id, "FILEKEY");
  EXPECT_EQ(resolved->secret_access_key, "filesecret");
  EXPECT_EQ(resolved->session_token, "");
  EXPECT_EQ(resolved->region, "eu-west-1");  // from ~/.aws/config
}

TEST(ResolveS3Options, AwsProfileSelectsAProfile) {
  AwsHome home;
  auto resolved = ResolveS3Options({}, FakeEnv({{"HOME", home.path()}, {"AWS_PROFILE", "other"}}));
  ASSERT_TRUE(resolved.ok()) << resolved.status().ToString();
  EXPECT_EQ(resolved->access_key_id, "OTHERKEY");
  EXPECT_EQ(resolved->session_token, "othertoken");
  EXPECT_EQ(resolved->region, "ap-south-1");  // [profile other] in ~/.aws/config

  auto config_only = ResolveS3Options({}, FakeEnv({{"HOME", home.path()}, {"AWS_PROFILE", "configonly"}}));
  ASSERT_TRUE(config_only.ok()) << config_only.status().ToString();
  EXPECT_EQ(config_only->access_key_id, "CONFIGKEY");
  EXPECT_EQ(config_only->region, "us-east-1");
}

TEST(ResolveS3Options, SharedCredentialsFileVariableOverridesThePath) {
  AwsHome home;
  TempDir elsewhere;
  std::string path =
      elsewhere.Write("creds", "[default]\naws_access_key_id=MOVED\naws_secret_access_key=moved\n");
  auto resolved =
      ResolveS3Options({}, FakeEnv({{"HOME", home.path()}, {"AWS_SHARED_CREDENTIALS_FILE", path}}));
  ASSERT_TRUE(resolved.ok()) << resolved.status().ToString();
  EXPECT_EQ(resolved->access_key_id, "MOVED");
}

TEST(ResolveS3Options, NothingFoundMeansAnonymousInUsEast1) {
  TempDir empty_home;
  auto resolved = ResolveS3Options({}, FakeEnv({{"HOME", empty_home.path()}}));
  ASSERT_TRUE(resolved.ok()) << resolved.status().ToString();
  EXPECT_EQ(resolved->access_key_id, "");
  EXPECT_EQ(resolved->secret_access_key, "");
  EXPECT_EQ(resolved->region, "us-east-1");
}

TEST(ResolveS3Options, EndpointFromTheEnvironmentMakesPathStyleTheDefault) {
  auto resolved = ResolveS3Options({}, FakeEnv({{"AWS_ENDPOINT_URL", "http://minio:9000"}}));
  ASSERT_TRUE(resolved.ok());
  EXPECT_EQ(resolved->endpoint, "http://minio:9000");
  EXPECT_EQ(resolved->path_style, true);

  auto s3_specific = ResolveS3Options(
      {}, FakeEnv({{"AWS_ENDPOINT_URL", "http://generic:1"}, {"AWS_ENDPOINT_URL_S3", "http://s3only:2"}}));
  ASSERT_TRUE(s3_specific.ok());
  EXPECT_EQ(s3_specific->endpoint, "http://s3only:2");

  S3Options explicit_style;
  explicit_style.path_style = false;
  auto kept = ResolveS3Options(explicit_style, FakeEnv({{"AWS_ENDPOINT_URL", "http://minio:9000"}}));
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->path_style, false);
}

TEST(ResolveS3Options, HalfAKeyPairIsAnErrorThatHidesTheSecret) {
  S3Options config;
  config.secret_access_key = "topsecret";
  auto resolved = ResolveS3Options(config, FakeEnv({}));
  ASSERT_FALSE(resolved.ok());
  EXPECT_EQ(resolved.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(resolved.status().message().find("no access key id"), std::string::npos);
  EXPECT_EQ(resolved.status().message().find("topsecret"), std::string::npos);

  auto env = ResolveS3Options({}, FakeEnv({{"AWS_ACCESS_KEY_ID", "ENVKEY"}}));
  ASSERT_FALSE(env.ok());
  EXPECT_NE(env.status().message().find("AWS_SECRET_ACCESS_KEY"), std::string::npos)
      << env.status().message();

  AwsHome home;
  auto file = ResolveS3Options({}, FakeEnv({{"HOME", home.path()}, {"AWS_PROFILE", "broken"}}));
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("profile 'broken'"), std::string::npos) << file.status().message();
}

TEST(ResolveS3Options, UnknownAwsProfileIsAnError) {
  AwsHome home;
  auto resolved = ResolveS3Options({}, FakeEnv({{"HOME", home.path()}, {"AWS_PROFILE", "nope"}}));
  ASSERT_FALSE(resolved.ok());
  EXPECT_EQ(resolved.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(resolved.status().message().find("'nope'"), std::string::npos) << resolved.status().message();
}

}  // namespace
}  // namespace sluice::io
