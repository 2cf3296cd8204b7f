#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/workspace/script_output.hpp"

using namespace airlock::workspace;

TEST_CASE("lines are cut at \\n and \\r\\n, across chunk boundaries") {
  LineSplitter s;
  std::vector<std::string> lines;
  auto add = [&](std::string_view l) { lines.emplace_back(l); };
  s.feed("one\ntw", add);
  s.feed("o\r\nthr", add);
  s.feed("ee", add);
  CHECK(lines == std::vector<std::string>{"one", "two"});
  s.finish(add);
  CHECK(lines == std::vector<std::string>{"one", "two", "three"});
  s.feed("\n\n", add);
  CHECK(lines.size() == 5);
  CHECK(lines[3].empty());
}

TEST_CASE("a line without end is cut into max_line pieces") {
  LineSplitter s(4);
  std::vector<std::string> lines;
  auto add = [&](std::string_view l) { lines.emplace_back(l); };
  s.feed("abcdefghij", add);
  CHECK(lines == std::vector<std::string>{"abcd", "efgh"});
  s.feed("\nxyzw\n", add);
  CHECK(lines == std::vector<std::string>{"abcd", "efgh", "ij", "xyzw"});
}

TEST_CASE("the tail keeps the last lines and counts all") {
  LogTail t(3);
  for (int i = 0; i < 5; ++i) t.add("line " + std::to_string(i));
  CHECK(t.total_lines() == 5);
  CHECK(t.size() == 3);
  CHECK(t.last(2) == std::vector<std::string>{"line 3", "line 4"});
  CHECK(t.last(10) == std::vector<std::string>{"line 2", "line 3", "line 4"});
  CHECK(t.last(0).empty());
}

TEST_CASE("metadata values are trimmed and cut without breaking UTF-8") {
  CHECK(trim_output("  42\n\n") == "42");
  CHECK(trim_output("\t\r\n") == "");
  CHECK(trim_output("a b", 3) == "a b");
  std::string long_text(5000, 'x');
  auto cut = trim_output(long_text);
  CHECK(cut.size() == kMetadataValueLimit);
  CHECK(cut.substr(cut.size() - 3) == "\xE2\x80\xA6");
  // "é" is two bytes: a cut landing inside it backs up to before it.
  std::string accents = "aéééé";  // 1 + 8 bytes
  auto c = trim_output(accents, 6);  // room for 3 bytes before the ellipsis: "a" + "é"
  CHECK(c == "aé\xE2\x80\xA6");
}
