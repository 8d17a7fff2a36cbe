#include "io/s3/s3_options.h"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

namespace sluice::io {
namespace {

constexpr const char* kDefaultRegion = "us-east-1";

using IniSection = std::map<std::string, std::string>;
using IniFile = std::map<std::string, IniSection>;

std::string Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The AWS shared files are INI: "[section]", "key = value", '#' and ';'
// comments. Nested sub-sections (indented "s3 =" blocks) are not needed.
std::optional<IniFile> ReadIni(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  IniFile file;
  std::string section;
  std::string line;
  while (std::getline(in, line)) {
    std::string t = Trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[' && t.back() == ']') {
      section = Trim(std::string_view(t).substr(1, t.size() - 2));
      file[section];
      continue;
    }
    size_t eq = t.find('=');
    if (eq == std::string::npos || section.empty()) continue;
    file[section][Lower(Trim(std::string_view(t).substr(0, eq)))] = Trim(std::string_view(t).substr(eq + 1));
  }
  return file;
}

std::string NonEmpty(const EnvLookup& env, const std::string& name) {
  std::optional<std::string> v = env(name);
  return v ? *v : std::string();
}

// The profile's section: "[name]" in the credentials file; "[profile name]"
// in the config file, except "[default]".
const IniSection* FindProfile(const std::optional<IniFile>& file, const std::string& profile,
                              bool config_file) {
  if (!file) return nullptr;
  auto it = file->find(profile);
  if (config_file && profile != "default") it = file->find("profile " + profile);
  if (config_file && it == file->end()) it = file->find(profile);
  return it == file->end() ? nullptr : &it->second;
}

std::string Get(const IniSection* section, const std::string& key) {
  if (section == nullptr) return "";
  auto it = section->find(key);
  return it == section->end() ? "" : it->second;
}

// Fills key/secret/token from one source when it has a key or a secret.
// Returns true when it did.
Result<bool> TakeCredentials(const std::string& key, const std::string& secret, const std::string& token,
                             const std::string& source, S3Options* options) {
  if (key.empty() && secret.empty()) return false;
  if (key.empty() || secret.empty()) {
    return Status::InvalidArgument(source + " has " +
                                   (key.empty() ? "a secret access key but no access key id"
                                                : "an access key id but no secret access key"));
  }
  options->access_key_id = key;
  options->secret_access_key = secret;
  options->session_token = token;
  return true;
}

bool ValidBucketChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

}  // namespace

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

Result<S3Options> ResolveS3Options(S3Options options, const EnvLookup& env) {
  std::string home = NonEmpty(env, "HOME");
  std::string profile_env = NonEmpty(env, "AWS_PROFILE");
  std::string profile = profile_env.empty() ? "default" : profile_env;
  std::string credentials_path = NonEmpty(env, "AWS_SHARED_CREDENTIALS_FILE");
  if (credentials_path.empty() && !home.empty()) credentials_path = home + "/.aws/credentials";
  std::string config_path = NonEmpty(env, "AWS_CONFIG_FILE");
  if (config_path.empty() && !home.empty()) config_path = home + "/.aws/config";

  // Read lazily: most runs with credentials in the config or environment
  // never touch the files.
  std::optional<std::optional<IniFile>> credentials_file;
  std::optional<std::optional<IniFile>> config_file;
  auto credentials_section = [&]() -> const IniSection* {
    if (!credentials_file) {
      credentials_file.emplace(credentials_path.empty() ? std::nullopt : ReadIni(credentials_path));
    }
    return FindProfile(*credentials_file, profile, false);
  };
  auto config_section = [&]() -> const IniSection* {
    if (!config_file) config_file.emplace(config_path.empty() ? std::nullopt : ReadIni(config_path));
    return FindProfile(*config_file, profile, true);
  };

  // Credentials: one source supplies all of key, secret and token.
  SLUICE_ASSIGN_OR_RETURN(bool have, TakeCredentials(options.access_key_id, options.secret_access_key,
                                                     options.session_token, "the S3 config", &options));
  if (!have) {
    SLUICE_ASSIGN_OR_RETURN(
        have, TakeCredentials(NonEmpty(env, "AWS_ACCESS_KEY_ID"), NonEmpty(env, "AWS_SECRET_ACCESS_KEY"),
                              NonEmpty(env, "AWS_SESSION_TOKEN"),
                              "the environment (AWS_ACCESS_KEY_ID, "
                              "AWS_SECRET_ACCESS_KEY)",
                              &options));
  }
  if (!have) {
    const IniSection* s = credentials_section();
    SLUICE_ASSIGN_OR_RETURN(
        have, TakeCredentials(Get(s, "aws_access_key_id"), Get(s, "aws_secret_access_key"),
                              Get(s, "aws_session_token"), "profile '" + profile + "' of " + credentials_path,
                              &options));
  }
  if (!have) {
    const IniSection* s = config_section();
    SLUICE_ASSIGN_OR_RETURN(
        have, TakeCredentials(Get(s, "aws_access_key_id"), Get(s, "aws_secret_access_key"),
                              Get(s, "aws_session_token"), "profile '" + profile + "' of " + config_path,
                              &options));
  }
  if (!profile_env.empty() && credentials_section() == nullptr && config_section() == nullptr) {
    return Status::InvalidArgument("AWS_PROFILE names profile '" + profile + "', which is in neither " +
                                   (credentials_path.empty() ? "~/.aws/credentials" : credentials_path) +
                                   " nor " + (config_path.empty() ? "~/.aws/config" : config_path));
  }

  if (options.region.empty()) options.region = NonEmpty(env, "AWS_REGION");
  if (options.region.empty()) options.region = NonEmpty(env, "AWS_DEFAULT_REGION");
  if (options.region.empty()) options.region = Get(config_section(), "region");
  if (options.region.empty()) options.region = kDefaultRegion;

  if (options.endpoint.empty()) options.endpoint = NonEmpty(env, "AWS_ENDPOINT_URL_S3");
  if (options.endpoint.empty()) options.endpoint = NonEmpty(env, "AWS_ENDPOINT_URL");
  if (!options.path_style.has_value()) options.path_style = !options.endpoint.empty();
  return options;
}

Result<S3Url> ParseS3Url(std::string_view url) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("bad S3 URL '" + std::string(url) + "': " + why +
                                   " (expected s3://bucket/key or s3://bucket/prefix*)");
  };
  if (url.size() < 5 || Lower(std::string(url.substr(0, 5))) != "s3://")
    return bad("it does not start with s3://");
  std::string_view rest = url.substr(5);
  size_t slash = rest.find('/');
  S3Url out;
  out.bucket = std::string(rest.substr(0, slash));
  if (slash != std::string_view::npos) out.key = std::string(rest.substr(slash + 1));
  if (out.bucket.empty()) return bad("no bucket name");
  if (out.bucket.size() > 255) return bad("the bucket name is too long");
  for (char c : out.bucket) {
    if (!ValidBucketChar(c)) return bad(std::string("the bucket name contains '") + c + "'");
  }
  return out;
}

std::string S3UrlString(std::string_view bucket, std::string_view key) {
  std::string out = "s3://";
  out += bucket;
  if (!key.empty()) {
    out += '/';
    out += key;
  }
  return out;
}

S3Options ReadS3Section(const ConfigTable& s3) {
  S3Options o;
  o.endpoint = s3.GetString("endpoint");
  o.region = s3.GetString("region");
  o.access_key_id = s3.GetString("access_key_id");
  o.secret_access_key = s3.GetString("secret_access_key");
  o.session_token = s3.GetString("session_token");
  std::string addressing = s3.GetString("addressing");
  if (addressing == "path" || addressing == "virtual") {
    o.path_style = addressing == "path";
  } else if (!addressing.empty()) {
    s3.Fail("addressing", "must be \"path\" or \"virtual\"");
  }
  o.stall_timeout_ms = s3.GetMillis("stall_timeout", o.stall_timeout_ms);
  if (o.stall_timeout_ms < 1000) s3.Fail("stall_timeout", "must be a duration of at least 1s");
  o.retry.max_elapsed = std::chrono::milliseconds(
      s3.GetMillis("retry_max_elapsed", std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::minutes(5)).count()));
  return o;
}

Result<S3Options> ResolveS3OptionsForUse(S3Options written, const CancellationSource* cancel) {
  written.cancel = cancel;
  auto resolved = ResolveS3Options(std::move(written), ProcessEnv());
  if (!resolved.ok()) return resolved.status().WithContext("[s3]");
  return resolved;
}

}  // namespace sluice::io
