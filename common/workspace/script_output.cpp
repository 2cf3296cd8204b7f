#include "common/workspace/script_output.hpp"

namespace airlock::workspace {

void LineSplitter::feed(std::string_view data, const std::function<void(std::string_view)>& on_line) {
  // Appends to the partial line, emitting it in max_line pieces when it grows past the limit.
  auto append = [&](std::string_view piece) {
    while (partial_.size() + piece.size() > max_line_) {
      size_t take = max_line_ - partial_.size();
      partial_.append(piece.substr(0, take));
      on_line(partial_);
      partial_.clear();
      piece.remove_prefix(take);
    }
    partial_.append(piece);
  };
  while (!data.empty()) {
    size_t nl = data.find('\n');
    if (nl == std::string_view::npos) {
      append(data);
      return;
    }
    append(data.substr(0, nl));
    if (!partial_.empty() && partial_.back() == '\r') partial_.pop_back();
    on_line(partial_);
    partial_.clear();
    data.remove_prefix(nl + 1);
  }
}

void LineSplitter::finish(const std::function<void(std::string_view)>& on_line) {
  if (!partial_.empty()) {
    if (partial_.back() == '\r') partial_.pop_back();
    on_line(partial_);
  }
  partial_.clear();
}

void LogTail::add(std::string_view line) {
  ++total_;
  if (capacity_ == 0) return;
  if (lines_.size() == capacity_) lines_.pop_front();
  lines_.emplace_back(line);
}

std::vector<std::string> LogTail::last(size_t n) const {
  size_t count = n < lines_.size() ? n : lines_.size();
  return {lines_.end() - static_cast<std::ptrdiff_t>(count), lines_.end()};
}

std::string trim_output(std::string_view output, size_t limit) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
  while (!output.empty() && space(output.front())) output.remove_prefix(1);
  while (!output.empty() && space(output.back())) output.remove_suffix(1);
  if (output.size() <= limit) return std::string(output);
  static constexpr std::string_view ellipsis = "\xE2\x80\xA6";  // …
  if (limit < ellipsis.size()) return std::string(output.substr(0, limit));
  size_t cut = limit - ellipsis.size();
  // Back up over UTF-8 continuation bytes so the value stays valid UTF-8.
  while (cut > 0 && (static_cast<unsigned char>(output[cut]) & 0xC0) == 0x80) --cut;
  return std::string(output.substr(0, cut)) + std::string(ellipsis);
}

}  // namespace airlock::workspace

