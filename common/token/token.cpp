// Control-plane tokens: base64url(claims JSON) "." base64url(Ed25519 signature over part one).
// Nothing from a token is parsed as JSON until its signature has verified.
#include "common/token/token.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

#include "common/util/log.hpp"

namespace airlock::token {
namespace {

using nlohmann::json;

constexpr size_t kMaxKeyFileSize = 4096;
constexpr size_t kJtiBytes = 16;

struct RoleEntry {
  Role role;
  std::string_view name;
};
constexpr RoleEntry kRoles[] = {
    {Role::owner, "owner"},     {Role::template_admin, "template-admin"},
    {Role::member, "member"},   {Role::auditor, "auditor"},
    {Role::agent, "agent"},     {Role::gateway, "gateway"},
};

// Key file text holds the seed: wiped however the function returns.
struct WipeOnExit {
  std::string& text;
  ~WipeOnExit() { crypto::wipe(text.data(), text.size()); }
};

Error malformed(const std::string& why) { return make_error("token is malformed: " + why); }

// "2026-11-23T10:00:00Z", or the raw number when the year does not fit a struct tm.
std::string utc_time(int64_t unix_seconds) {
  const auto t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  char text[64];
  if (gmtime_r(&t, &tm) == nullptr || strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
    return "unix time " + std::to_string(unix_seconds);
  }
  return text;
}

// A string claim: absent is fine (stays empty), anything but a string is not.
bool optional_string(const json& object, const char* name, std::string& out, std::string& why) {
  const auto it = object.find(name);
  if (it == object.end()) return true;
  if (!it->is_string()) {
    why = std::string("claim \"") + name + "\" is not a string";
    return false;
  }
  out = it->get<std::string>();
  return true;
}

// iat and exp: JSON integers in [0, 2^53), so that arithmetic on them cannot overflow and every
// JSON implementation reads the same value.
bool required_time(const json& object, const char* name, int64_t& out, std::string& why) {
  constexpr int64_t kMax = int64_t{1} << 53;
  const auto it = object.find(name);
  if (it == object.end()) {
    why = std::string("claim \"") + name + "\" is missing";
    return false;
  }
  if (it->is_number_unsigned()) {
    const auto v = it->get<uint64_t>();
    if (v < static_cast<uint64_t>(kMax)) {
      out = static_cast<int64_t>(v);
      return true;
    }
  } else if (it->is_number_integer()) {
    const auto v = it->get<int64_t>();
    if (v >= 0 && v < kMax) {
      out = v;
      return true;
    }
  } else {
    why = std::string("claim \"") + name + "\" is not an integer number of seconds";
    return false;
  }
  why = std::string("claim \"") + name + "\" is out of range";
  return false;
}

// An open file descriptor, closed by its destructor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // close(2) reports deferred write errors, so the writer checks it.
  int close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

// Reads a key file of at most kMaxKeyFileSize bytes; mode is its permission bits.
std::string read_small_file(const std::string& path, Error& error, mode_t& mode) {
  mode = 0;
  // O_NONBLOCK so that naming a FIFO cannot hang the caller; it is refused below.
  const Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) {
    error = make_error("cannot open " + path + ": " + std::strerror(errno));
    return {};
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    error = make_error(path + " is not a regular file");
    return {};
  }
  mode = st.st_mode & 07777;
  std::string data(kMaxKeyFileSize + 1, '\0');
  const WipeOnExit wiper{data};
  size_t got = 0;
  while (got < data.size()) {
    const ssize_t n = ::read(fd.get(), data.data() + got, data.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = make_error("cannot read " + path + ": " + std::strerror(errno));
      return {};
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > kMaxKeyFileSize) {
    error = make_error(path + " is larger than " + std::to_string(kMaxKeyFileSize) + " bytes: not a key file");
    return {};
  }
  return std::string(data.data(), got);
}

// The "name: value" lines of a key file. A bare base64 line is returned under the name "".
struct KeyFileLines {
  std::optional<std::string> seed, pub, bare;
  ~KeyFileLines() {
    for (auto* s : {&seed, &pub, &bare})
      if (*s) crypto::wipe((*s)->data(), (*s)->size());
  }
};

Status parse_key_file(std::string_view text, const std::string& path, KeyFileLines& out) {
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    const auto where = path + ":" + std::to_string(line_no);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      if (out.bare) return make_error(where + ": more than one bare key line");
      out.bare = std::string(line);
      continue;
    }
    std::string_view name = line.substr(0, colon), value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    std::optional<std::string>* slot = nullptr;
    if (name == "seed") slot = &out.seed;
    else if (name == "public") slot = &out.pub;
    else return make_error(where + ": unknown field \"" + std::string(name) + "\" (expected seed or public)");
    if (*slot) return make_error(where + ": \"" + std::string(name) + "\" appears twice");
    *slot = std::string(value);
  }
  return Ok{};
}

}  // namespace

std::string_view role_name(Role role) {
  for (const auto& entry : kRoles)
    if (entry.role == role) return entry.name;
  return "unknown";
}

std::optional<Role> role_from_name(std::string_view name) {
  for (const auto& entry : kRoles)
    if (entry.name == name) return entry.role;
  return std::nullopt;
}

IssuerKey IssuerKey::generate() { return from_seed(crypto::ed25519_generate()); }

IssuerKey IssuerKey::from_seed(const crypto::SecretKey& seed) {
  IssuerKey key;
  key.seed = seed;
  key.public_key = crypto::ed25519_public(seed);
  return key;
}

std::string claims_json(const Claims& claims) {
  json j = json::object();
  auto put = [&](const char* name, const std::string& value) {
    if (!value.empty()) j[name] = value;
  };
  put("sub", claims.sub);
  put("email", claims.email);
  j["role"] = std::string(role_name(claims.role));
  put("workspace_id", claims.workspace_id);
  put("workspace_name", claims.workspace_name);
  put("owner", claims.owner);
  j["iat"] = claims.iat;
  j["exp"] = claims.exp;
  put("jti", claims.jti);
  // replace, not throw: mint() has no error path and invalid UTF-8 in a claim is the caller's slip.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<Claims> parse_claims(std::string_view text) {
  const json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return malformed("claims are not valid JSON");
  if (!j.is_object()) return malformed("claims are not a JSON object");
  Claims claims;
  std::string why;
  const auto sub = j.find("sub");
  if (sub == j.end()) return malformed("claim \"sub\" is missing");
  if (!sub->is_string() || sub->get_ref<const std::string&>().empty()) {
    return malformed("claim \"sub\" is not a non-empty string");
  }
  claims.sub = sub->get<std::string>();
  const auto role = j.find("role");
  if (role == j.end()) return malformed("claim \"role\" is missing");
  if (!role->is_string()) return malformed("claim \"role\" is not a string");
  const auto parsed_role = role_from_name(role->get_ref<const std::string&>());
  if (!parsed_role) {
    return malformed("role \"" + role->get<std::string>() +
                     "\" is unknown (owner, template-admin, member, auditor, agent, gateway)");
  }
  claims.role = *parsed_role;
  if (!required_time(j, "iat", claims.iat, why) || !required_time(j, "exp", claims.exp, why) ||
      !optional_string(j, "email", claims.email, why) ||
      !optional_string(j, "workspace_id", claims.workspace_id, why) ||
      !optional_string(j, "workspace_name", claims.workspace_name, why) ||
      !optional_string(j, "owner", claims.owner, why) || !optional_string(j, "jti", claims.jti, why)) {
    return malformed(why);
  }
  if (claims.exp < claims.iat) return malformed("it expires (exp) before it was issued (iat)");
  return claims;
}

std::string mint(const IssuerKey& issuer, Claims claims) {
  if (claims.jti.empty()) {
    ByteArray<kJtiBytes> id{};
    crypto::random_bytes(id);
    claims.jti = crypto::base64url_encode(id);
  }
  std::string token = crypto::base64url_encode(as_bytes(claims_json(claims)));
  const auto signature = crypto::ed25519_sign(issuer.seed, as_bytes(token));
  token += '.';
  token += crypto::base64url_encode(signature);
  return token;
}

Result<Claims> verify(std::string_view token, const crypto::Key& issuer_public, int64_t now, int64_t clock_skew) {
  if (token.empty()) return malformed("it is empty");
  if (token.size() > kMaxTokenSize) {
    return malformed("it is " + std::to_string(token.size()) + " bytes, longer than the " +
                     std::to_string(kMaxTokenSize) + " allowed");
  }
  const size_t dot = token.find('.');
  if (dot == std::string_view::npos) return malformed("expected two base64url parts joined by '.', found no '.'");
  if (token.find('.', dot + 1) != std::string_view::npos) return malformed("it has more than one '.'");
  const std::string_view payload_text = token.substr(0, dot), signature_text = token.substr(dot + 1);
  if (payload_text.empty()) return malformed("the claims part is empty");

  Result<Bytes> signature = crypto::base64url_decode(signature_text);
  if (!signature) return malformed("signature part: " + signature.error().message);
  if (signature->size() != crypto::kEd25519SignatureSize) {
    return malformed("the signature is " + std::to_string(signature->size()) + " bytes, not 64");
  }
  Result<Bytes> payload = crypto::base64url_decode(payload_text);
  if (!payload) return malformed("claims part: " + payload.error().message);

  if (!crypto::ed25519_verify(issuer_public, as_bytes(payload_text), *signature)) {
    return make_error("token signature does not verify (issued by another key, or altered)");
  }

  Result<Claims> claims = parse_claims(as_chars(*payload));
  if (!claims) return claims;

  // Times are in [0, 2^53) after parse_claims; clamp now and the skew so that nothing overflows.
  constexpr int64_t kLimit = int64_t{1} << 60;
  const int64_t skew = std::clamp<int64_t>(clock_skew, 0, kLimit);
  now = std::clamp<int64_t>(now, -kLimit, kLimit);
  if (now - skew > claims->exp) {
    return make_error("token expired at " + utc_time(claims->exp) + " (" + std::to_string(now - claims->exp) +
                      " s ago)");
  }
  if (claims->iat - skew > now) {
    return make_error("token is not valid yet: issued at " + utc_time(claims->iat) + ", " +
                      std::to_string(claims->iat - now) + " s in the future (check the clocks)");
  }
  return claims;
}

Status save_issuer_key(const std::string& path, const IssuerKey& key) {
  // Appended in place, so that no temporary string holds a copy of the seed.
  std::string seed = crypto::key_to_base64(key.seed);
  const WipeOnExit seed_wiper{seed};
  std::string text;
  const WipeOnExit wiper{text};
  text.reserve(256);
  text.append("# Airlock token issuer key (Ed25519); keep this file secret\nseed: ");
  text.append(seed);
  text.append("\npublic: ").append(crypto::key_to_base64(key.public_key)).append("\n");

  // A fresh file that nobody else can have opened (O_EXCL, 0600 from birth), renamed into place
  // so that a reader never sees half a key and an existing file's mode does not carry over.
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, ".tmp-%08x", crypto::random_u32());
  const std::string tmp = path + suffix;
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (fd.get() < 0) return make_error("cannot create " + tmp + ": " + std::strerror(errno));
  auto fail = [&](const char* what) {
    const int saved = errno;
    ::unlink(tmp.c_str());
    return make_error(std::string(what) + " " + path + ": " + std::strerror(saved));
  };
  if (fchmod(fd.get(), 0600) != 0) return fail("cannot set mode 0600 on");  // umask may only narrow it; be explicit
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("cannot write");
    done += static_cast<size_t>(n);
  }
  if (fsync(fd.get()) != 0) return fail("cannot sync");
  if (fd.close() != 0) return fail("cannot write");
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int saved = errno;
    ::unlink(tmp.c_str());
    return make_error("cannot rename " + tmp + " to " + path + ": " + std::strerror(saved));
  }
  return Ok{};
}

Result<IssuerKey> load_issuer_key(const std::string& path) {
  Error error;
  mode_t mode = 0;
  std::string text = read_small_file(path, error, mode);
  const WipeOnExit wiper{text};
  if (!error.message.empty()) return error;
  KeyFileLines lines;
  if (Status parsed = parse_key_file(text, path, lines); !parsed) return parsed.error();
  if (!lines.seed) return make_error(path + ": no \"seed:\" line; is this a public key file?");
  // Not refused: secret volumes (Kubernetes defaultMode 0644) are often mounted this way.
  if ((mode & 077) != 0) {
    LOG_WARN("token", "%s holds a secret key but other users may read it (mode %04o); chmod 600 it", path.c_str(),
             static_cast<unsigned>(mode));
  }
  Result<crypto::Key> seed = crypto::key_from_base64(*lines.seed);
  if (!seed) return make_error(path + ": seed: " + seed.error().message);
  IssuerKey key = IssuerKey::from_seed(crypto::SecretKey(*seed));
  crypto::wipe(*seed);
  if (lines.pub) {
    Result<crypto::Key> pub = crypto::key_from_base64(*lines.pub);
    if (!pub) return make_error(path + ": public: " + pub.error().message);
    if (*pub != key.public_key) return make_error(path + ": the public key does not belong to the seed");
  }
  return key;
}

Result<crypto::Key> load_public_key(const std::string& path_or_base64) {
  if (Result<crypto::Key> inline_key = crypto::key_from_base64(path_or_base64)) return inline_key;
  Error error;
  mode_t mode = 0;
  std::string text = read_small_file(path_or_base64, error, mode);
  const WipeOnExit wiper{text};
  if (!error.message.empty()) {
    return make_error("\"" + path_or_base64 + "\" is neither a 44-character base64 key nor a readable file (" +
                      error.message + ")");
  }
  KeyFileLines lines;
  if (Status parsed = parse_key_file(text, path_or_base64, lines); !parsed) return parsed.error();
  if (lines.pub || lines.bare) {
    if (lines.pub && lines.bare) return make_error(path_or_base64 + ": both a bare key and a \"public:\" line");
    Result<crypto::Key> pub = crypto::key_from_base64(lines.pub ? *lines.pub : *lines.bare);
    if (!pub) return make_error(path_or_base64 + ": " + pub.error().message);
    return pub;
  }
  if (lines.seed) {
    Result<crypto::Key> seed = crypto::key_from_base64(*lines.seed);
    if (!seed) return make_error(path_or_base64 + ": seed: " + seed.error().message);
    const crypto::SecretKey secret(*seed);
    crypto::wipe(*seed);
    return crypto::ed25519_public(secret);
  }
  return make_error(path_or_base64 + ": holds no key");
}

}  // namespace airlock::token
