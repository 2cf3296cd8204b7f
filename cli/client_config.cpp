#include "cli/client_config.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

namespace airlock::cli {

std::string config_path() {
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg) return std::string(xdg) + "/airlock/config.json";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.config/airlock/config.json";
}

Result<ClientOptions> load_client_config() {
  std::ifstream in(config_path());
  if (!in) return ClientOptions{};
  std::stringstream ss;
  ss << in.rdbuf();
  auto doc = nlohmann::json::parse(ss.str(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return make_error(config_path() + " is not valid JSON: run `airlock login URL --token TOKEN` to write it again");
  ClientOptions o;
  o.url = doc.value("url", "");
  o.token = doc.value("token", "");
  o.ca_file = doc.value("ca_file", "");
  return o;
}

Status save_client_config(const ClientOptions& options) {
  std::filesystem::path path = config_path();
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) return make_error("cannot create " + path.parent_path().string() + ": " + ec.message());
  nlohmann::json doc = {{"url", options.url}, {"token", options.token}};
  if (!options.ca_file.empty()) doc["ca_file"] = options.ca_file;
  std::string text = doc.dump(2) + "\n";
  // The token is a credential: the file is private to the user from the moment it exists.
  std::string tmp = path.string() + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return make_error("cannot write " + tmp + ": " + std::strerror(errno));
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) return make_error("cannot write " + path.string());
  return Ok{};
}

Result<ClientOptions> resolve_client_options(ClientOptions o) {
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v ? v : "";
  };
  if (o.url.empty()) o.url = env("AIRLOCK_URL");
  if (o.token.empty()) o.token = env("AIRLOCK_TOKEN");
  if (o.ca_file.empty()) o.ca_file = env("AIRLOCK_CA");
  if (o.url.empty() || o.token.empty() || o.ca_file.empty()) {
    auto saved = load_client_config();
    if (!saved) return saved.error();
    if (o.url.empty()) o.url = saved->url;
    if (o.token.empty()) o.token = saved->token;
    if (o.ca_file.empty()) o.ca_file = saved->ca_file;
  }
  if (o.url.empty())
    return make_error("no relay URL: pass --url, set AIRLOCK_URL, or run `airlock login URL --token TOKEN`");
  if (o.token.empty())
    return make_error("no token: pass --token, set AIRLOCK_TOKEN, or run `airlock login URL --token TOKEN`");
  return o;
}

}  // namespace airlock::cli
