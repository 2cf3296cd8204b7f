#include "common/ssh/command_policy.hpp"

#include <csignal>
#include <vector>

namespace airlock::ssh {
namespace {

constexpr int kMaxShellNesting = 4;  // sh -c "bash -c '...'" deeper than this is not followed

// One simple command: its words with quotes removed. Shell syntax is approximated: quotes and
// backslashes group words, and ; & | newline ( ) ` end a command.
using Words = std::vector<std::string>;

std::vector<Words> split_commands(std::string_view text) {
  std::vector<Words> commands(1);
  std::string word;
  bool in_word = false;
  auto end_word = [&] {
    if (in_word) commands.back().push_back(std::move(word));
    word.clear();
    in_word = false;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\'') {
      in_word = true;
      size_t close = text.find('\'', i + 1);
      if (close == std::string_view::npos) close = text.size();
      word.append(text.substr(i + 1, close - i - 1));
      i = close;
    } else if (c == '"') {
      in_word = true;
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\' && i + 1 < text.size()) ++i;
        word.push_back(text[i]);
      }
    } else if (c == '\\') {
      in_word = true;
      if (i + 1 < text.size()) word.push_back(text[++i]);
    } else if (c == ' ' || c == '\t') {
      end_word();
    } else if (c == ';' || c == '&' || c == '|' || c == '\n' || c == '(' || c == ')' || c == '`' ||
               c == '{' || c == '}') {
      end_word();
      if (!commands.back().empty()) commands.emplace_back();
    } else {
      in_word = true;
      word.push_back(c);
    }
  }
  end_word();
  return commands;
}

std::string_view basename(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

bool is_assignment(std::string_view word) {
  size_t eq = word.find('=');
  return eq != std::string_view::npos && eq > 0 && is_valid_env_name(word.substr(0, eq));
}

bool is_prefix_command(std::string_view program) {
  return program == "exec" || program == "command" || program == "env" || program == "nice" ||
         program == "nohup" || program == "sudo" || program == "time" || program == "builtin";
}

bool is_shell(std::string_view program) {
  return program == "sh" || program == "bash" || program == "dash" || program == "zsh" ||
         program == "ksh" || program == "ash" || program == "busybox";
}

TransferTool classify(std::string_view command, int depth);

TransferTool classify_words(const Words& words, int depth) {
  size_t i = 0;
  // Skip VAR=value, the wrappers that run their arguments, and the wrappers' own options.
  while (i < words.size()) {
    std::string_view w = words[i];
    if (is_assignment(w) || is_prefix_command(basename(w)) || (i > 0 && !w.empty() && w[0] == '-' &&
                                                               is_prefix_command(basename(words[i - 1])))) {
      ++i;
      continue;
    }
    break;
  }
  if (i >= words.size()) return TransferTool::none;
  std::string_view program = basename(words[i]);
  if (program == "scp") return TransferTool::scp;
  if (program == "sftp-server" || program == "internal-sftp") return TransferTool::sftp;
  if (program == "rsync") {
    for (size_t j = i + 1; j < words.size(); ++j)
      if (words[j] == "--server") return TransferTool::rsync;
    return TransferTool::none;
  }
  if (is_shell(program) && depth < kMaxShellNesting) {
    // sh -c 'scp -t .' runs its argument as a command line of its own.
    for (size_t j = i + 1; j + 1 < words.size(); ++j) {
      std::string_view opt = words[j];
      if (opt.size() >= 2 && opt[0] == '-' && opt.find('c') != std::string_view::npos) {
        return classify(words[j + 1], depth + 1);
      }
    }
  }
  return TransferTool::none;
}

TransferTool classify(std::string_view command, int depth) {
  // sftp-server named anywhere (as an argument, behind a variable, ...) is an sftp server start.
  if (command.find("sftp-server") != std::string_view::npos) return TransferTool::sftp;
  for (const Words& words : split_commands(command)) {
    TransferTool tool = classify_words(words, depth);
    if (tool != TransferTool::none) return tool;
  }
  return TransferTool::none;
}

struct SignalName {
  const char* name;
  int number;
};
// RFC 4254 section 6.10 names, plus the POSIX ones OpenSSH also accepts.
constexpr SignalName kSignals[] = {
    {"ABRT", SIGABRT}, {"ALRM", SIGALRM}, {"FPE", SIGFPE},   {"HUP", SIGHUP},   {"ILL", SIGILL},
    {"INT", SIGINT},   {"KILL", SIGKILL}, {"PIPE", SIGPIPE}, {"QUIT", SIGQUIT}, {"SEGV", SIGSEGV},
    {"TERM", SIGTERM}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"CONT", SIGCONT}, {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP}, {"WINCH", SIGWINCH},
};

}  // namespace

TransferTool classify_command(std::string_view command) { return classify(command, 0); }

const char* transfer_tool_name(TransferTool tool) {
  switch (tool) {
    case TransferTool::scp: return "scp";
    case TransferTool::rsync: return "rsync";
    case TransferTool::sftp: return "sftp";
    case TransferTool::none: break;
  }
  return "none";
}

bool is_valid_env_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxEnvNameLength) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    bool digit = c >= '0' && c <= '9';
    if (!(alpha || (digit && i > 0))) return false;
  }
  return true;
}

std::optional<int> signal_from_name(std::string_view name) {
  if (name.starts_with("SIG")) name.remove_prefix(3);
  for (const SignalName& s : kSignals)
    if (name == s.name) return s.number;
  return std::nullopt;
}

std::optional<std::string> signal_name(int signal) {
  for (const SignalName& s : kSignals)
    if (signal == s.number) return std::string(s.name);
  return std::nullopt;
}

}  // namespace airlock::ssh
