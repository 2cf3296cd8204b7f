#include "common/config/manifest.hpp"

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

namespace airlock::config {

using nlohmann::json;

bool PortPolicy::permits(uint16_t port) const {
  for (const auto& r : deny)
    if (r.contains(port)) return false;
  if (allow.empty()) return true;
  for (const auto& r : allow)
    if (r.contains(port)) return true;
  return false;
}

Result<PortRange> parse_port_range(const std::string& text) {
  static const std::regex form(R"(^(\d{1,5})(?:-(\d{1,5}))?$)");
  std::smatch m;
  if (!std::regex_match(text, m, form))
    return make_error("\"" + text + "\" is not a port or a range like \"3000-3999\"");
  unsigned long first = std::stoul(m[1].str());
  unsigned long last = m[2].matched ? std::stoul(m[2].str()) : first;
  if (first < 1 || first > 65535 || last < 1 || last > 65535)
    return make_error("\"" + text + "\": ports are 1-65535");
  if (last < first) return make_error("\"" + text + "\": the range ends before it starts");
  return PortRange{static_cast<uint16_t>(first), static_cast<uint16_t>(last)};
}

namespace {

// Walks a JSON document keeping the path of the field being read, so every error names it.
class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {}

  Error error(const std::string& field, const std::string& what) const {
    return make_error("manifest: " + join(field) + ": " + what);
  }
  std::string join(const std::string& field) const {
    if (path_.empty() || field.empty()) return path_.empty() ? field : path_;
    if (field[0] == '[') return path_ + field;
    return path_ + "." + field;
  }

  // Unknown keys are refused: a misspelt "block_file_transfer" must not leave transfers open.
  std::optional<Error> only_keys(const json& obj, std::initializer_list<const char*> keys) const {
    std::set<std::string> known(keys.begin(), keys.end());
    for (const auto& [key, _] : obj.items()) {
      if (!known.count(key)) {
        std::string list;
        for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
        return error(key, "unknown field (known fields here: " + list + ")");
      }
    }
    return std::nullopt;
  }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

#define TRY_ERR(expr)                 \
  do {                                \
    if (auto e_ = (expr)) return *e_; \
  } while (0)

std::optional<Error> read_string(const Reader& r, const json& obj, const char* key, std::string& out,
                                 bool required) {
  auto it = obj.find(key);
  if (it == obj.end()) {
    if (required) return r.error(key, "is required (a string)");
    return std::nullopt;
  }
  if (!it->is_string()) return r.error(key, "must be a string (got " + std::string(it->type_name()) + ")");
  out = it->get<std::string>();
  return std::nullopt;
}

std::optional<Error> read_bool(const Reader& r, const json& obj, const char* key, bool& out) {
  auto it = obj.find(key);
  if (it == obj.end()) return std::nullopt;
  if (!it->is_boolean()) return r.error(key, "must be true or false (got " + it->dump() + ")");
  out = it->get<bool>();
  return std::nullopt;
}

std::optional<Error> read_seconds(const Reader& r, const json& obj, const char* key, std::chrono::seconds& out,
                                  bool allow_zero) {
  auto it = obj.find(key);
  if (it == obj.end()) return std::nullopt;
  if (!it->is_number_integer() || it->get<int64_t>() < (allow_zero ? 0 : 1) || it->get<int64_t>() > 86400 * 365)
    return r.error(key, std::string("must be a ") + (allow_zero ? "non-negative" : "positive") +
                            " whole number of seconds (got " + it->dump() + ")");
  out = std::chrono::seconds(it->get<int64_t>());
  return std::nullopt;
}

std::optional<Error> read_script(const Reader& r, const json& obj, const char* key, std::optional<Script>& out,
                                 bool startup) {
  auto it = obj.find(key);
  if (it == obj.end()) return std::nullopt;
  Reader sr(r.join(key));
  Script s;
  if (it->is_string()) {
    s.script = it->get<std::string>();
  } else if (it->is_object()) {
    if (startup) TRY_ERR(sr.only_keys(*it, {"script", "timeout", "blocks_login"}));
    else TRY_ERR(sr.only_keys(*it, {"script", "timeout"}));
    TRY_ERR(read_string(sr, *it, "script", s.script, true));
    TRY_ERR(read_seconds(sr, *it, "timeout", s.timeout, true));
    if (startup) TRY_ERR(read_bool(sr, *it, "blocks_login", s.blocks_login));
  } else {
    return r.error(key, "must be a shell command string or an object {\"script\": ..., \"timeout\": seconds}");
  }
  if (s.script.empty()) return sr.error("script", "must not be empty (remove the field to run no script)");
  out = std::move(s);
  return std::nullopt;
}

bool valid_url(const std::string& url) {
  return url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0;
}

std::optional<Error> read_apps(const Reader& r, const json& doc, std::vector<App>& out) {
  auto it = doc.find("apps");
  if (it == doc.end()) return std::nullopt;
  if (!it->is_array()) return r.error("apps", "must be a list of apps");
  std::set<std::string> slugs;
  static const std::regex slug_form("^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& a = (*it)[i];
    Reader ar(r.join("apps[" + std::to_string(i) + "]"));
    if (!a.is_object()) return ar.error("", "must be an object");
    TRY_ERR(ar.only_keys(a, {"slug", "display_name", "url", "healthcheck"}));
    App app;
    TRY_ERR(read_string(ar, a, "slug", app.slug, true));
    if (!std::regex_match(app.slug, slug_form))
      return ar.error("slug", "\"" + app.slug + "\" must be lower-case letters, digits and dashes (like \"code-server\")");
    if (!slugs.insert(app.slug).second) return ar.error("slug", "\"" + app.slug + "\" is used by another app");
    TRY_ERR(read_string(ar, a, "display_name", app.display_name, false));
    if (app.display_name.empty()) app.display_name = app.slug;
    TRY_ERR(read_string(ar, a, "url", app.url, true));
    if (!valid_url(app.url)) return ar.error("url", "must start with http:// or https:// (got \"" + app.url + "\")");
    if (auto h = a.find("healthcheck"); h != a.end()) {
      Reader hr(ar.join("healthcheck"));
      if (!h->is_object()) return hr.error("", "must be an object {\"url\", \"interval\", \"threshold\"}");
      TRY_ERR(hr.only_keys(*h, {"url", "interval", "threshold"}));
      TRY_ERR(read_string(hr, *h, "url", app.healthcheck_url, true));
      if (!valid_url(app.healthcheck_url))
        return hr.error("url", "must start with http:// or https:// (got \"" + app.healthcheck_url + "\")");
      TRY_ERR(read_seconds(hr, *h, "interval", app.interval, false));
      if (auto t = h->find("threshold"); t != h->end()) {
        if (!t->is_number_integer() || t->get<int64_t>() < 1 || t->get<int64_t>() > 1000)
          return hr.error("threshold", "must be a whole number of failures from 1 to 1000 (got " + t->dump() + ")");
        app.threshold = t->get<int>();
      }
    }
    out.push_back(std::move(app));
  }
  return std::nullopt;
}

std::optional<Error> read_metadata(const Reader& r, const json& doc, std::vector<MetadataItem>& out) {
  auto it = doc.find("metadata");
  if (it == doc.end()) return std::nullopt;
  if (!it->is_array()) return r.error("metadata", "must be a list of items");
  std::set<std::string> keys;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    Reader mr(r.join("metadata[" + std::to_string(i) + "]"));
    if (!m.is_object()) return mr.error("", "must be an object");
    TRY_ERR(mr.only_keys(m, {"key", "display_name", "script", "interval", "timeout"}));
    MetadataItem item;
    TRY_ERR(read_string(mr, m, "key", item.key, true));
    if (item.key.empty()) return mr.error("key", "must not be empty");
    if (!keys.insert(item.key).second) return mr.error("key", "\"" + item.key + "\" is used by another item");
    TRY_ERR(read_string(mr, m, "display_name", item.display_name, false));
    if (item.display_name.empty()) item.display_name = item.key;
    TRY_ERR(read_string(mr, m, "script", item.script, true));
    if (item.script.empty()) return mr.error("script", "must not be empty");
    TRY_ERR(read_seconds(mr, m, "interval", item.interval, false));
    TRY_ERR(read_seconds(mr, m, "timeout", item.timeout, false));
    if (item.timeout > item.interval)
      return mr.error("timeout", "must not be longer than interval (" + std::to_string(item.interval.count()) + " s)");
    out.push_back(std::move(item));
  }
  return std::nullopt;
}

std::optional<Error> read_ports(const Reader& r, const json& obj, const char* key, std::vector<PortRange>& out) {
  auto it = obj.find(key);
  if (it == obj.end()) return std::nullopt;
  if (!it->is_array()) return r.error(key, "must be a list like [\"80\", \"3000-3999\"]");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& p = (*it)[i];
    std::string text = p.is_number_integer() ? std::to_string(p.get<int64_t>()) : p.is_string() ? p.get<std::string>() : "";
    auto range = parse_port_range(text);
    if (!range) return r.error(std::string(key) + "[" + std::to_string(i) + "]", range.error().message);
    out.push_back(*range);
  }
  return std::nullopt;
}

std::optional<Error> read_policy(const Reader& r, const json& doc, Policy& policy) {
  auto it = doc.find("policy");
  if (it == doc.end()) return std::nullopt;
  Reader pr(r.join("policy"));
  if (!it->is_object()) return pr.error("", "must be an object");
  TRY_ERR(pr.only_keys(*it, {"services", "ports", "block_file_transfer", "session_lifetime"}));
  if (auto s = it->find("services"); s != it->end()) {
    Reader sr(pr.join("services"));
    if (!s->is_object()) return sr.error("", "must be an object like {\"ssh\": true, \"pty\": true, \"tcp\": false}");
    TRY_ERR(sr.only_keys(*s, {"pty", "ssh", "tcp"}));
    TRY_ERR(read_bool(sr, *s, "pty", policy.pty));
    TRY_ERR(read_bool(sr, *s, "ssh", policy.ssh));
    TRY_ERR(read_bool(sr, *s, "tcp", policy.tcp));
  }
  if (auto p = it->find("ports"); p != it->end()) {
    Reader portr(pr.join("ports"));
    if (!p->is_object()) return portr.error("", "must be an object like {\"allow\": [\"8080\"], \"deny\": [\"22\"]}");
    TRY_ERR(portr.only_keys(*p, {"allow", "deny"}));
    TRY_ERR(read_ports(portr, *p, "allow", policy.ports.allow));
    TRY_ERR(read_ports(portr, *p, "deny", policy.ports.deny));
  }
  TRY_ERR(read_bool(pr, *it, "block_file_transfer", policy.block_file_transfer));
  TRY_ERR(read_seconds(pr, *it, "session_lifetime", policy.session_lifetime, true));
  return std::nullopt;
}

}  // namespace

Result<Manifest> parse_manifest(const json& doc) {
  Reader r("");
  if (!doc.is_object()) return make_error("manifest: must be a JSON object");
  if (auto e = r.only_keys(doc, {"directory", "env", "startup", "shutdown", "apps", "metadata", "policy"})) return *e;
  Manifest m;
  if (auto e = read_string(r, doc, "directory", m.directory, false)) return *e;
  if (!m.directory.empty() && m.directory[0] != '/')
    return r.error("directory", "must be an absolute path (got \"" + m.directory + "\")");
  if (auto env = doc.find("env"); env != doc.end()) {
    if (!env->is_object()) return r.error("env", "must be an object of NAME: \"value\" strings");
    static const std::regex name_form("^[A-Za-z_][A-Za-z0-9_]*$");
    for (const auto& [k, v] : env->items()) {
      if (!std::regex_match(k, name_form)) return r.error("env." + k, "is not a valid environment variable name");
      if (!v.is_string()) return r.error("env." + k, "must be a string (got " + v.dump() + ")");
      m.env[k] = v.get<std::string>();
    }
  }
  if (auto e = read_script(r, doc, "startup", m.startup, true)) return *e;
  if (auto e = read_script(r, doc, "shutdown", m.shutdown, false)) return *e;
  if (auto e = read_apps(r, doc, m.apps)) return *e;
  if (auto e = read_metadata(r, doc, m.metadata)) return *e;
  if (auto e = read_policy(r, doc, m.policy)) return *e;
  return m;
}

Result<Manifest> parse_manifest_text(const std::string& text) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    return make_error(std::string("manifest: not valid JSON: ") + e.what());
  }
  return parse_manifest(doc);
}

Result<Manifest> load_manifest(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error("manifest: cannot read " + path + " (set AIRLOCK_AGENT_MANIFEST to the manifest's path)");
  std::stringstream ss;
  ss << in.rdbuf();
  auto m = parse_manifest_text(ss.str());
  if (!m) return make_error(path + ": " + m.error().message);
  return m;
}

}  // namespace airlock::config
