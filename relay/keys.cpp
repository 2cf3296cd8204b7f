#include "relay/keys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace airlock::relayd {
namespace {

bool exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

std::string errno_text() { return std::strerror(errno); }


std::string parent_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

struct EvpPkeyFree { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
struct X509Free { void operator()(X509* p) const { X509_free(p); } };
struct X509ExtFree { void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); } };
struct BioFree { void operator()(BIO* p) const { BIO_free(p); } };

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

Status add_extension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, X509ExtFree> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) return make_error(std::string("cannot add extension ") + value);
  return Ok{};
}

}  // namespace

// Writes a whole file with mode 0600 from birth, via a temporary name renamed into place.
Status write_private_file(const std::string& path, std::string_view text) {
  std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return make_error("cannot create " + tmp + ": " + errno_text());
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::string e = errno_text();
      ::close(fd);
      ::unlink(tmp.c_str());
      return make_error("cannot write " + tmp + ": " + e);
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) return make_error("cannot write " + tmp + ": " + errno_text());
  if (::rename(tmp.c_str(), path.c_str()) != 0) return make_error("cannot rename " + tmp + ": " + errno_text());
  return Ok{};
}

Status make_directory(const std::string& path) {
  if (path.empty() || exists(path)) return Ok{};
  if (auto parent = make_directory(parent_of(path)); !parent) return parent;
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
    return make_error("cannot create directory " + path + ": " + errno_text());
  return Ok{};
}

Result<crypto::SecretKey> load_or_create_relay_key(const std::string& path) {
  if (exists(path)) {
    std::ifstream in(path);
    if (!in) return make_error("cannot read relay key " + path);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("private: ", 0) != 0) continue;
      auto key = crypto::key_from_base64(line.substr(9));
      if (!key) return make_error("relay key " + path + ": " + key.error().message);
      crypto::SecretKey secret(*key);
      crypto::wipe(*key);
      crypto::wipe(line.data(), line.size());
      return secret;
    }
    return make_error("relay key " + path + " has no \"private: <base64>\" line");
  }
  if (auto dir = make_directory(parent_of(path)); !dir) return dir.error();
  crypto::SecretKey key = crypto::x25519_generate();
  std::string text = "# Airlock relay key (X25519); keep this file secret\nprivate: " + crypto::key_to_base64(key) +
                     "\npublic: " + crypto::key_to_base64(crypto::x25519_public(key)) + "\n";
  Status written = write_private_file(path, text);
  crypto::wipe(text.data(), text.size());
  if (!written) return written.error();
  return key;
}

Status ensure_dev_certificate(const std::string& cert_path, const std::string& key_path) {
  if (exists(cert_path) && exists(key_path)) return Ok{};
  if (auto dir = make_directory(parent_of(cert_path)); !dir) return dir;
  std::unique_ptr<EVP_PKEY, EvpPkeyFree> pkey(EVP_EC_gen("P-256"));
  if (!pkey) return make_error("cannot generate a P-256 key for the development certificate");
  std::unique_ptr<X509, X509Free> cert(X509_new());
  if (!cert) return make_error("cannot allocate a certificate");
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert.get()), crypto::random_u64() >> 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 825L * 24 * 3600);
  X509_set_pubkey(cert.get(), pkey.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("Airlock development"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  for (auto [nid, value] : {std::pair{NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1"},
                            std::pair{NID_basic_constraints, "critical,CA:FALSE"},
                            std::pair{NID_key_usage, "critical,digitalSignature"},
                            std::pair{NID_ext_key_usage, "serverAuth"}}) {
    if (auto s = add_extension(cert.get(), nid, value); !s) return s;
  }
  if (X509_sign(cert.get(), pkey.get(), EVP_sha256()) <= 0) return make_error("cannot sign the development certificate");

  std::unique_ptr<BIO, BioFree> key_bio(BIO_new(BIO_s_mem()));
  std::unique_ptr<BIO, BioFree> cert_bio(BIO_new(BIO_s_mem()));
  if (!key_bio || !cert_bio || PEM_write_bio_PrivateKey(key_bio.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1 ||
      PEM_write_bio_X509(cert_bio.get(), cert.get()) != 1)
    return make_error("cannot encode the development certificate");
  std::string key_pem = bio_text(key_bio.get());
  Status k = write_private_file(key_path, key_pem);
  crypto::wipe(key_pem.data(), key_pem.size());
  if (!k) return k;
  return write_private_file(cert_path, bio_text(cert_bio.get()));
}

Result<token::IssuerKey> load_or_create_issuer_key(const std::string& path) {
  if (exists(path)) return token::load_issuer_key(path);
  if (auto dir = make_directory(parent_of(path)); !dir) return dir.error();
  token::IssuerKey key = token::IssuerKey::generate();
  if (auto s = token::save_issuer_key(path, key); !s) return s.error();
  return key;
}

DevTokens mint_dev_tokens(const token::IssuerKey& issuer, std::chrono::seconds ttl) {
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  token::Claims owner;
  owner.sub = "admin";
  owner.email = "admin@localhost";
  owner.role = token::Role::owner;
  owner.iat = now;
  owner.exp = now + ttl.count();
  token::Claims agent;
  agent.sub = "agent-demo";
  agent.role = token::Role::agent;
  agent.workspace_id = "ws-demo";
  agent.workspace_name = "demo";
  agent.owner = "admin";
  agent.iat = now;
  agent.exp = now + ttl.count();
  return {token::mint(issuer, owner), token::mint(issuer, agent)};
}

}  // namespace airlock::relayd
