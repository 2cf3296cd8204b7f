// Turns rows of libvterm cells back into the bytes that draw them: UTF-8 text, SGR for attributes
// and colours, ECH for blank cells that carry colour, cursor-forward over plain blanks. A writer
// remembers the pen it last set so a row costs one SGR per change of attributes, not per cell.
#pragma once

#include <span>
#include <string>

#include <vterm.h>

namespace airlock::pty {

// libvterm marks a continuation cell (the right half of a wide character) this way.
inline constexpr uint32_t kWideContinuation = 0xffffffffu;

// The attributes of a cell that SGR sets; two cells with equal pens need no SGR between them.
struct Pen {
  VTermScreenCellAttrs attrs{};
  VTermColor fg{};
  VTermColor bg{};

  static Pen of(const VTermScreenCell& cell);
  bool is_default() const;
  bool operator==(const Pen& other) const;
};

void append_utf8(uint32_t code_point, std::string& out);
// "\x1b[0;...m": resets, then sets every attribute of `pen` that is not the default.
void append_sgr(const Pen& pen, std::string& out);

class CellWriter {
 public:
  explicit CellWriter(std::string& out) : out_(out) {}

  // Draws `cells` from column 0 of the cursor's row, leaving trailing default blanks untouched
  // (the row must already be clear). Cells past `max_cols` are dropped.
  void row(std::span<const VTermScreenCell> cells, int max_cols);
  // Selects `pen` unless it is already the current one.
  void pen(const Pen& pen);
  // Back to the default pen, so erasures and scrolls fill with default colours.
  void reset_pen();

 private:
  std::string& out_;
  Pen current_{};
  bool known_ = false;  // until the first SGR, the terminal's pen is not assumed
};

}  // namespace airlock::pty
