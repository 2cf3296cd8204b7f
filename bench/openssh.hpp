// The reference OpenSSH server of the benches: sshd -D on a loopback port of its own, with a host
// key, a user key, authorized_keys and a config in a scratch directory, for the user running the
// bench. Each bench starts the returned command line with its own process helper.
#pragma once

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "tests/support/ssh_client.hpp"

namespace airlock::bench {

struct LoopbackSshd {
  std::string error;                // empty when the files are ready and sshd can start
  int port = 0;                     // where sshd will listen (127.0.0.1)
  std::string user;                 // who logs in: the user running the bench
  std::filesystem::path user_key;   // ssh -i
  std::filesystem::path log;        // for sshd's stderr
  std::vector<std::string> argv;    // /usr/sbin/sshd -D -e -f <config>
};

// Writes everything sshd needs into dir; the server allows TCP forwarding and sftp.
inline LoopbackSshd prepare_loopback_sshd(const std::filesystem::path& dir, int port) {
  namespace fs = std::filesystem;
  using test::shell_quote;
  LoopbackSshd s;
  fs::create_directories(dir);
  const std::string d = dir.string();
  auto keygen = [&](const std::string& name) {
    return std::system(("ssh-keygen -q -t ed25519 -N '' -f " + shell_quote(d + "/" + name) + " >/dev/null 2>&1").c_str());
  };
  if (keygen("host_key") != 0 || keygen("user_key") != 0) {
    s.error = "ssh-keygen failed (is openssh-client installed?)";
    return s;
  }
  std::error_code ec;
  fs::copy_file(dir / "user_key.pub", dir / "authorized_keys", fs::copy_options::overwrite_existing, ec);
  if (ec) {
    s.error = "cannot write authorized_keys: " + ec.message();
    return s;
  }
  ::chmod((dir / "authorized_keys").c_str(), 0600);
  // sshd as root wants its privilege separation directory, which a service manager usually makes.
  if (::geteuid() == 0 && !fs::exists("/run/sshd")) {
    fs::create_directories("/run/sshd", ec);
    ::chmod("/run/sshd", 0755);
  }
  std::ofstream(dir / "sshd_config") << "Port " << port << "\nListenAddress 127.0.0.1\nHostKey " << d
                                     << "/host_key\nAuthorizedKeysFile " << d
                                     << "/authorized_keys\nPidFile none\nUsePAM no\nStrictModes no\n"
                                        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                                        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
                                        "AllowTcpForwarding yes\nPrintMotd no\nPrintLastLog no\n"
                                        "Subsystem sftp internal-sftp\nLogLevel ERROR\n";
  const passwd* pw = ::getpwuid(::geteuid());
  s.user = pw ? pw->pw_name : "root";
  s.port = port;
  s.user_key = dir / "user_key";
  s.log = dir / "sshd.log";
  s.argv = {"/usr/sbin/sshd", "-D", "-e", "-f", d + "/sshd_config"};
  return s;
}

}  // namespace airlock::bench
