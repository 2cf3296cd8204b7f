#include "agent/ssh/host_key.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/util/log.hpp"
#include "common/util/unique_fd.hpp"

namespace airlock::agent::ssh {
namespace {

Status write_private_file(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) return errno_error("ssh host key: cannot create " + tmp);
  ::fchmod(fd.get(), 0600);  // O_CREAT's mode is masked by umask; a reused tmp keeps its old mode
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd.get(), text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errno_error("ssh host key: cannot write " + tmp);
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return errno_error("ssh host key: cannot fsync " + tmp);
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return errno_error("ssh host key: cannot rename to " + path);
  return Ok{};
}

}  // namespace

Result<UniqueKey> load_or_create_host_key(const std::string& path) {
  if (path.empty()) return make_error("ssh host key: no path configured");
  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty() && !std::filesystem::exists(parent, ec)) {
    std::filesystem::create_directories(parent, ec);
    if (ec) return make_error("ssh host key: cannot create " + parent.string() + ": " + ec.message());
    ::chmod(parent.c_str(), 0700);
  }

  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if ((st.st_mode & 077) != 0) {
      LOG_WARN("ssh", "host key %s was readable by others (mode %03o): tightening to 0600", path.c_str(),
               static_cast<unsigned>(st.st_mode & 0777));
      if (::chmod(path.c_str(), 0600) != 0) return errno_error("ssh host key: cannot chmod " + path);
    }
    ssh_key raw = nullptr;
    if (ssh_pki_import_privkey_file(path.c_str(), nullptr, nullptr, nullptr, &raw) != SSH_OK || raw == nullptr)
      return make_error("ssh host key: " + path + " is not a readable OpenSSH private key");
    UniqueKey key(raw);
    if (ssh_key_type(key.get()) != SSH_KEYTYPE_ED25519)
      return make_error("ssh host key: " + path + " is not an Ed25519 key");
    return key;
  }
  if (errno != ENOENT) return errno_error("ssh host key: cannot stat " + path);

  ssh_key raw = nullptr;
  if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &raw) != SSH_OK || raw == nullptr)
    return make_error("ssh host key: Ed25519 key generation failed");
  UniqueKey key(raw);
  char* pem = nullptr;
  if (ssh_pki_export_privkey_base64(key.get(), nullptr, nullptr, nullptr, &pem) != SSH_OK || pem == nullptr)
    return make_error("ssh host key: cannot encode the new key");
  std::string text(pem);
  std::memset(pem, 0, text.size());  // private key material: wipe the library's copy
  ssh_string_free_char(pem);
  Status written = write_private_file(path, text);
  std::fill(text.begin(), text.end(), '\0');
  if (!written) return written.error();
  LOG_INFO("ssh", "created host key %s (%s)", path.c_str(), key_fingerprint(key.get()).c_str());
  return key;
}

std::string key_fingerprint(ssh_key key) {
  unsigned char* hash = nullptr;
  size_t len = 0;
  if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &len) != SSH_OK) return "?";
  char* text = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, len);
  ssh_clean_pubkey_hash(&hash);
  if (text == nullptr) return "?";
  std::string out(text);
  ssh_string_free_char(text);
  return out;
}

}  // namespace airlock::agent::ssh
