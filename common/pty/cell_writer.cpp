#include "common/pty/cell_writer.hpp"

#include <algorithm>

namespace airlock::pty {
namespace {

// Below U+1100 (Hangul Jamo) every character is one column wide.
constexpr uint32_t kFirstWideCodePoint = 0x1100;

bool same_color(const VTermColor& a, const VTermColor& b, bool foreground) {
  bool a_default = foreground ? VTERM_COLOR_IS_DEFAULT_FG(&a) : VTERM_COLOR_IS_DEFAULT_BG(&a);
  bool b_default = foreground ? VTERM_COLOR_IS_DEFAULT_FG(&b) : VTERM_COLOR_IS_DEFAULT_BG(&b);
  if (a_default || b_default) return a_default == b_default;
  if (VTERM_COLOR_IS_INDEXED(&a) != VTERM_COLOR_IS_INDEXED(&b)) return false;
  if (VTERM_COLOR_IS_INDEXED(&a)) return a.indexed.idx == b.indexed.idx;
  return a.rgb.red == b.rgb.red && a.rgb.green == b.rgb.green && a.rgb.blue == b.rgb.blue;
}

void append_color(const VTermColor& color, bool foreground, std::string& out) {
  if (foreground ? VTERM_COLOR_IS_DEFAULT_FG(&color) : VTERM_COLOR_IS_DEFAULT_BG(&color)) return;
  if (VTERM_COLOR_IS_INDEXED(&color)) {
    int idx = color.indexed.idx;
    if (idx < 8) {
      out += ";" + std::to_string((foreground ? 30 : 40) + idx);
    } else if (idx < 16) {
      out += ";" + std::to_string((foreground ? 90 : 100) + idx - 8);
    } else {
      out += (foreground ? ";38;5;" : ";48;5;") + std::to_string(idx);
    }
  } else {
    out += (foreground ? ";38;2;" : ";48;2;") + std::to_string(color.rgb.red) + ";" + std::to_string(color.rgb.green) +
           ";" + std::to_string(color.rgb.blue);
  }
}

void append_cursor_forward(int count, std::string& out) {
  if (count == 1) {
    out += "\x1b[C";
  } else if (count > 1) {
    out += "\x1b[" + std::to_string(count) + "C";
  }
}

bool blank(const VTermScreenCell& cell) { return cell.chars[0] == 0; }

}  // namespace

Pen Pen::of(const VTermScreenCell& cell) {
  Pen pen;
  pen.attrs = cell.attrs;
  // Line attributes are per row, not SGR: keep them out of pen comparisons.
  pen.attrs.dwl = 0;
  pen.attrs.dhl = 0;
  pen.fg = cell.fg;
  pen.bg = cell.bg;
  return pen;
}

bool Pen::is_default() const {
  return !attrs.bold && !attrs.underline && !attrs.italic && !attrs.blink && !attrs.reverse && !attrs.strike &&
         !attrs.font && VTERM_COLOR_IS_DEFAULT_FG(&fg) && VTERM_COLOR_IS_DEFAULT_BG(&bg);
}

bool Pen::operator==(const Pen& other) const {
  return attrs.bold == other.attrs.bold && attrs.underline == other.attrs.underline &&
         attrs.italic == other.attrs.italic && attrs.blink == other.attrs.blink &&
         attrs.reverse == other.attrs.reverse && attrs.strike == other.attrs.strike &&
         attrs.font == other.attrs.font && same_color(fg, other.fg, true) && same_color(bg, other.bg, false);
}

void append_utf8(uint32_t cp, std::string& out) {
  if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) cp = 0xfffd;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

void append_sgr(const Pen& pen, std::string& out) {
  out += "\x1b[0";
  if (pen.attrs.bold) out += ";1";
  if (pen.attrs.italic) out += ";3";
  switch (pen.attrs.underline) {
    case VTERM_UNDERLINE_SINGLE: out += ";4"; break;
    case VTERM_UNDERLINE_DOUBLE: out += ";21"; break;  // xterm, xterm.js and libvterm read 21 as double
    case VTERM_UNDERLINE_CURLY: out += ";4:3"; break;
    default: break;
  }
  if (pen.attrs.blink) out += ";5";
  if (pen.attrs.reverse) out += ";7";
  if (pen.attrs.strike) out += ";9";
  if (pen.attrs.font) out += ";" + std::to_string(10 + pen.attrs.font);
  append_color(pen.fg, true, out);
  append_color(pen.bg, false, out);
  out += "m";
}

void CellWriter::pen(const Pen& pen) {
  if (known_ && pen == current_) return;
  if (pen.is_default()) {
    out_ += "\x1b[m";
  } else {
    append_sgr(pen, out_);
  }
  current_ = pen;
  known_ = true;
}

void CellWriter::reset_pen() {
  Pen plain;
  plain.fg.type = VTERM_COLOR_DEFAULT_FG;
  plain.bg.type = VTERM_COLOR_DEFAULT_BG;
  pen(plain);
}

void CellWriter::row(std::span<const VTermScreenCell> cells, int max_cols) {
  int width = std::min<int>(static_cast<int>(cells.size()), max_cols);
  // Everything after the last cell that is not a default blank stays as the cleared row has it.
  int end = width;
  while (end > 0 && blank(cells[end - 1]) && Pen::of(cells[end - 1]).is_default()) --end;

  int col = 0;
  while (col < end) {
    const VTermScreenCell& cell = cells[col];
    if (cell.chars[0] == kWideContinuation) {
      // A wide character skips its own right half, so this one lost its left half (overwritten
      // or erased): step over it as a terminal shows it, blank.
      ++col;
      if (col < end) append_cursor_forward(1, out_);
      continue;
    }
    if (blank(cell)) {
      // A run of blanks with one pen: skip plain ones, erase coloured ones so they keep their pen
      // (as the original erase did) without turning into printed spaces.
      Pen run_pen = Pen::of(cell);
      int run_end = col + 1;
      while (run_end < end && blank(cells[run_end]) && Pen::of(cells[run_end]) == run_pen) ++run_end;
      int count = run_end - col;
      if (!run_pen.is_default()) {
        pen(run_pen);
        out_ += count == 1 ? "\x1b[X" : "\x1b[" + std::to_string(count) + "X";
      }
      if (run_end < end) append_cursor_forward(count, out_);
      col = run_end;
      continue;
    }
    // A wide character that no longer fits (the row was cut to a narrower screen) is dropped.
    if (cell.width > 1 && col + cell.width > width) break;
    pen(Pen::of(cell));
    if (cell.chars[0] >= 0x80 && cell.chars[0] <= 0x9f) {
      out_ += ' ';  // a C1 control libvterm stored as a character: terminals show nothing there
    } else {
      for (int i = 0; i < VTERM_MAX_CHARS_PER_CELL && cell.chars[i] != 0; ++i) append_utf8(cell.chars[i], out_);
    }
    col += std::max<int>(cell.width, 1);
    if ((cell.width > 1 || cell.chars[0] >= kFirstWideCodePoint) && col < end) {
      // Put the cursor where the model has it: the viewer's idea of this character's width may
      // differ (emoji), and libvterm keeps half-overwritten wide characters with odd widths.
      out_ += "\x1b[" + std::to_string(col + 1) + "G";
    }
  }
}

}  // namespace airlock::pty
