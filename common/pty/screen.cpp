#include "common/pty/screen.hpp"

#include <algorithm>

#include "common/pty/cell_writer.hpp"
#include "common/pty/protocol.hpp"

namespace airlock::pty {
namespace {

constexpr unsigned char kEscape = 0x1b;
constexpr unsigned char kCancel = 0x18;
constexpr unsigned char kSubstitute = 0x1a;
constexpr long kMaxParam = 99999;
constexpr size_t kMaxTitleLength = 256;
constexpr size_t kMaxWrite = 4096;
// libvterm 0.1.4 writes through a null cell for a wide character on a one-column screen: the
// screen is never narrower than protocol.hpp's kMinCols.
constexpr int kScreenMinCols = kMinCols;

bool alt_screen_mode(long number) { return number == 47 || number == 1047 || number == 1049; }

void append_cup(int row, int col, std::string& out) {
  out += "\x1b[" + std::to_string(row + 1) + ";" + std::to_string(col + 1) + "H";
}

// Only printable text goes back into an OSC, so a stored title cannot end it early or smuggle a
// sequence into the repaint.
void append_osc(int command, const std::string& text, std::string& out) {
  out += "\x1b]" + std::to_string(command) + ";";
  size_t kept = 0;
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) continue;
    if (++kept > kMaxTitleLength) break;
    out += c;
  }
  out += '\x07';
}

void discard_output(const char*, size_t, void*) {}

}  // namespace

void AltScreenEntryScanner::scan(ByteView chunk, std::vector<size_t>& splits) {
  // A sequence still open from the previous chunk begins, for this chunk, at offset 0.
  start_ = 0;
  for (size_t i = 0; i < chunk.size(); ++i) {
    uint8_t byte = chunk[i];
    if (byte == kEscape) {
      state_ = State::escape;
      start_ = i;
      continue;
    }
    switch (state_) {
      case State::ground:
        break;
      case State::escape:
        state_ = byte == '[' ? State::csi_entry : State::ground;
        break;
      case State::csi_entry:
        if (byte == '?') {
          state_ = State::private_params;
          param_ = 0;
          matched_ = false;
        } else {
          state_ = State::ground;
        }
        break;
      case State::private_params:
        if (byte >= '0' && byte <= '9') {
          param_ = std::min(param_ * 10 + (byte - '0'), kMaxParam);
        } else if (byte == ';' || byte == ':') {
          matched_ = matched_ || alt_screen_mode(param_);
          param_ = 0;
        } else if (byte == 'h') {
          if (matched_ || alt_screen_mode(param_)) {
            if (splits.empty() || splits.back() != start_) splits.push_back(start_);
          }
          state_ = State::ground;
        } else if (byte == kCancel || byte == kSubstitute || byte >= 0x20) {
          state_ = State::ground;  // another final byte, or the sequence was cancelled
        }
        // Other C0 controls inside a CSI are executed by the terminal without ending it.
        break;
    }
  }
}

TerminalScreen::TerminalScreen(int cols, int rows, size_t scrollback_lines)
    : vt_(vterm_new(std::max(rows, 1), std::max(cols, kScreenMinCols))),
      cols_(std::max(cols, kScreenMinCols)),
      rows_(std::max(rows, 1)),
      scrollback_limit_(scrollback_lines),
      modes_(std::max(rows, 1)) {
  static const VTermScreenCallbacks callbacks = {
      .damage = nullptr,
      .moverect = nullptr,
      .movecursor = nullptr,
      .settermprop = &TerminalScreen::on_settermprop,
      .bell = nullptr,
      .resize = nullptr,
      .sb_pushline = &TerminalScreen::on_sb_pushline,
      .sb_popline = &TerminalScreen::on_sb_popline,
  };
  vterm_set_utf8(vt_.get(), 1);
  // The model must never answer a query: the live viewers' terminals do that.
  vterm_output_set_callback(vt_.get(), &discard_output, nullptr);
  screen_ = vterm_obtain_screen(vt_.get());
  state_ = vterm_obtain_state(vt_.get());
  vterm_screen_set_callbacks(screen_, &callbacks, this);
  vterm_screen_enable_altscreen(screen_, 1);
  vterm_screen_reset(screen_, 1);
  // libvterm 0.1.4 loops forever on REP (CSI b) before any character was printed: one printed
  // and erased at once gives REP something to repeat, and leaves the screen as it was.
  static constexpr char kPrime[] = " \r\x1b[K";
  vterm_input_write(vt_.get(), kPrime, sizeof kPrime - 1);
  initial_cursor_shape_ = cursor_shape_;
  initial_cursor_blink_ = cursor_blink_;
  vterm_screen_get_cell(screen_, VTermPos{0, 0}, &blank_);
}

TerminalScreen::~TerminalScreen() = default;

void TerminalScreen::feed(ByteView output) {
  if (output.empty()) return;
  modes_.feed(output);
  splits_.clear();
  alt_scanner_.scan(output, splits_);
  size_t at = 0;
  for (size_t split : splits_) {
    write(output.subspan(at, split - at));
    if (!alt_screen_) {
      copy_primary();
      armed_ = true;
    }
    at = split;
  }
  write(output.subspan(at));
}

// libvterm 0.1.4 takes a UTF-8 encoded C1 control (U+0080..U+009F, bytes C2 80..C2 9F) for a
// printable character of width -1 and moves the cursor left of column 0, where a repaint cannot
// put it back. Terminals ignore them; so does the model (a C2 split across writes included, and,
// as libvterm's decoder sees it, with C0 controls between its two bytes). A pair split by an
// escape sequence still reaches libvterm: write_vterm() puts the cursor back inside, and the
// cell writer draws such a cell as a blank.
void TerminalScreen::write(ByteView bytes) {
  if (!c2_pending_ && std::find(bytes.begin(), bytes.end(), 0xc2) == bytes.end()) return write_vterm(bytes);
  Bytes kept;
  kept.reserve(bytes.size() + 1);
  Bytes held;  // C0 controls after a pending C2: they go out in order, the C2 with them or not
  for (uint8_t b : bytes) {
    if (c2_pending_ && (b < 0x20 || b == 0x7f)) {
      held.push_back(b);
      continue;
    }
    if (c2_pending_) {
      c2_pending_ = false;
      if (!(b >= 0x80 && b <= 0x9f)) kept.push_back(0xc2);
      kept.insert(kept.end(), held.begin(), held.end());
      held.clear();
      if (b >= 0x80 && b <= 0x9f) continue;
    }
    if (b == 0xc2) {
      c2_pending_ = true;
      continue;
    }
    kept.push_back(b);
  }
  if (c2_pending_ && !held.empty()) {
    // The controls cannot wait for the next write: they go now, the C2 stays pending after them.
    kept.insert(kept.end(), held.begin(), held.end());
  }
  write_vterm(kept);
}

void TerminalScreen::write_vterm(ByteView bytes) {
  // libvterm decodes a run of text into a stack array sized by the run: a few megabytes without a
  // control byte overflow the stack. Small slices keep it to kMaxWrite * 4 bytes.
  for (size_t at = 0; at < bytes.size(); at += kMaxWrite) {
    size_t n = std::min(kMaxWrite, bytes.size() - at);
    vterm_input_write(vt_.get(), reinterpret_cast<const char*>(bytes.data() + at), n);
  }
  if (cursor().col < 0) vterm_input_write(vt_.get(), "\r", 1);  // see write()
  // A copy is only trusted for a switch inside the segment it was taken for.
  armed_ = false;
}

void TerminalScreen::copy_primary() {
  primary_.cols = cols_;
  primary_.rows = rows_;
  primary_.cursor = cursor();
  primary_.cells.clear();
  primary_.cells.reserve(static_cast<size_t>(cols_) * rows_);
  for (int row = 0; row < rows_; ++row) {
    auto cells = live_row(row);
    primary_.cells.insert(primary_.cells.end(), cells.begin(), cells.end());
  }
}

void TerminalScreen::resize(int cols, int rows) {
  cols = std::max(cols, kScreenMinCols);
  rows = std::max(rows, 1);
  if (cols == cols_ && rows == rows_) return;
  cols_ = cols;
  rows_ = rows;
  vterm_set_size(vt_.get(), rows, cols);
  // libvterm 0.1.4 can leave the cursor above the screen when it shrinks (row -1), and would write
  // through a null cell there: put it back inside, as a terminal would.
  VTermPos pos = cursor();
  if (pos.row < 0 || pos.row >= rows || pos.col < 0 || pos.col >= cols) {
    std::string home = "\x1b[" + std::to_string(std::clamp(pos.row, 0, rows - 1) + 1) + ";" +
                       std::to_string(std::clamp(pos.col, 0, cols - 1) + 1) + "H";
    vterm_input_write(vt_.get(), home.data(), home.size());
  }
  modes_.resize(rows);
  resize_primary_copy();
}

// Approximates what libvterm does to the hidden primary screen: keep the cursor's row in view by
// dropping rows from the top, cut or pad the rest.
void TerminalScreen::resize_primary_copy() {
  if (!primary_.valid) return;
  int drop = std::max(0, primary_.cursor.row + 1 - rows_);
  std::vector<VTermScreenCell> cells(static_cast<size_t>(cols_) * rows_, blank_);
  for (int row = drop; row < primary_.rows && row - drop < rows_; ++row) {
    for (int col = 0; col < std::min(cols_, primary_.cols); ++col) {
      cells[static_cast<size_t>(row - drop) * cols_ + col] = primary_.cells[static_cast<size_t>(row) * primary_.cols + col];
    }
  }
  primary_.cells = std::move(cells);
  primary_.cursor.row = std::clamp(primary_.cursor.row - drop, 0, rows_ - 1);
  primary_.cursor.col = std::clamp(primary_.cursor.col, 0, cols_ - 1);
  primary_.cols = cols_;
  primary_.rows = rows_;
}

int TerminalScreen::on_sb_pushline(int cols, const VTermScreenCell* cells, void* user) {
  auto* self = static_cast<TerminalScreen*>(user);
  if (self->scrollback_limit_ == 0) return 1;
  // Trailing default blanks are implied: most lines are short, and floods of them are common.
  int used = cols;
  while (used > 0 && cells[used - 1].chars[0] == 0 && Pen::of(cells[used - 1]).is_default()) --used;
  self->scrollback_.emplace_back(cells, cells + used);
  while (self->scrollback_.size() > self->scrollback_limit_) self->scrollback_.pop_front();
  return 1;
}

int TerminalScreen::on_sb_popline(int cols, VTermScreenCell* cells, void* user) {
  auto* self = static_cast<TerminalScreen*>(user);
  if (self->scrollback_.empty()) return 0;
  const auto& line = self->scrollback_.back();
  for (int col = 0; col < cols; ++col) {
    cells[col] = static_cast<size_t>(col) < line.size() ? line[col] : self->blank_;
  }
  self->scrollback_.pop_back();
  return 1;
}

int TerminalScreen::on_settermprop(VTermProp prop, VTermValue* value, void* user) {
  auto* self = static_cast<TerminalScreen*>(user);
  switch (prop) {
    case VTERM_PROP_CURSORVISIBLE: self->cursor_visible_ = value->boolean; break;
    case VTERM_PROP_CURSORBLINK: self->cursor_blink_ = value->boolean; break;
    case VTERM_PROP_CURSORSHAPE: self->cursor_shape_ = value->number; break;
    case VTERM_PROP_REVERSE: self->reverse_ = value->boolean; break;
    case VTERM_PROP_TITLE: self->title_ = value->string ? value->string : ""; break;
    case VTERM_PROP_ICONNAME: self->icon_name_ = value->string ? value->string : ""; break;
    case VTERM_PROP_ALTSCREEN:
      if (value->boolean && !self->alt_screen_) {
        // Trust the copy only if it was taken right before this very switch.
        self->primary_.valid = self->armed_;
        self->armed_ = false;
      }
      self->alt_screen_ = value->boolean;
      break;
    default: break;
  }
  return 1;
}

std::vector<VTermScreenCell> TerminalScreen::live_row(int row) const {
  std::vector<VTermScreenCell> cells(static_cast<size_t>(cols_));
  for (int col = 0; col < cols_; ++col) {
    vterm_screen_get_cell(screen_, VTermPos{row, col}, &cells[col]);
    // libvterm folds whole-screen reverse video (DECSCNM) into each cell; the repaint sets it once.
    if (reverse_) cells[col].attrs.reverse ^= 1;
  }
  return cells;
}

VTermScreenCell TerminalScreen::cell(int row, int col) const {
  VTermScreenCell cell{};
  vterm_screen_get_cell(screen_, VTermPos{row, col}, &cell);
  return cell;
}

std::string TerminalScreen::row_text(int row) const {
  std::string text;
  for (int col = 0; col < cols_; ++col) {
    VTermScreenCell c = cell(row, col);
    if (c.chars[0] == kWideContinuation) continue;
    if (c.chars[0] == 0) {
      text += ' ';
      continue;
    }
    for (int i = 0; i < VTERM_MAX_CHARS_PER_CELL && c.chars[i] != 0; ++i) append_utf8(c.chars[i], text);
  }
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

std::string TerminalScreen::text() const {
  std::string text;
  for (int row = 0; row < rows_; ++row) {
    if (row > 0) text += '\n';
    text += row_text(row);
  }
  return text;
}

VTermPos TerminalScreen::cursor() const {
  VTermPos pos{0, 0};
  vterm_state_get_cursorpos(state_, &pos);
  return pos;
}

void TerminalScreen::append_cursor_style(std::string& out) const {
  if (cursor_shape_ == initial_cursor_shape_ && cursor_blink_ == initial_cursor_blink_) return;
  int shape = std::clamp(cursor_shape_, 1, 3);
  // DECSCUSR: 1/2 block, 3/4 underline, 5/6 bar; the odd number blinks.
  out += "\x1b[" + std::to_string((shape - 1) * 2 + (cursor_blink_ ? 1 : 2)) + " q";
}

void TerminalScreen::append_pen(std::string& out) const {
  VTermScreenCell cell = blank_;
  VTermValue value;
  vterm_state_get_penattr(state_, VTERM_ATTR_BOLD, &value);
  cell.attrs.bold = value.boolean ? 1 : 0;
  vterm_state_get_penattr(state_, VTERM_ATTR_UNDERLINE, &value);
  cell.attrs.underline = static_cast<unsigned>(value.number) & 3;
  vterm_state_get_penattr(state_, VTERM_ATTR_ITALIC, &value);
  cell.attrs.italic = value.boolean ? 1 : 0;
  vterm_state_get_penattr(state_, VTERM_ATTR_BLINK, &value);
  cell.attrs.blink = value.boolean ? 1 : 0;
  vterm_state_get_penattr(state_, VTERM_ATTR_REVERSE, &value);
  cell.attrs.reverse = value.boolean ? 1 : 0;
  vterm_state_get_penattr(state_, VTERM_ATTR_STRIKE, &value);
  cell.attrs.strike = value.boolean ? 1 : 0;
  vterm_state_get_penattr(state_, VTERM_ATTR_FONT, &value);
  cell.attrs.font = static_cast<unsigned>(value.number) & 15;
  vterm_state_get_penattr(state_, VTERM_ATTR_FOREGROUND, &value);
  cell.fg = value.color;
  vterm_state_get_penattr(state_, VTERM_ATTR_BACKGROUND, &value);
  cell.bg = value.color;
  Pen pen = Pen::of(cell);
  if (!pen.is_default()) append_sgr(pen, out);
}

std::string TerminalScreen::repaint() const {
  std::string out;
  // A known starting point on any terminal, whatever it showed before: the primary screen, DECSTR
  // where it exists, and explicitly what DECSTR does where it does not (libvterm), then clear.
  out += "\x1b[?1049l\x1b[!p";
  // Character sets are left to DECSTR: an explicit ESC ( B makes libvterm 0.1.4 decode text in
  // two passes, and a combining mark at the right margin then lands on the next line.
  out += "\x1b[m\x1b[r\x1b[?6l\x1b[4l\x1b[20l\x1b[?7h\x1b[?25h\x0f";
  out += "\x1b[H\x1b[2J\x1b[3J";

  CellWriter writer(out);
  writer.reset_pen();

  // Scrollback and the primary screen as one column of lines from the top: the oldest scroll off
  // into the viewer's own scrollback and the last rows_ stay on screen.
  bool first = true;
  auto next_line = [&] {
    if (!first) {
      writer.reset_pen();
      out += "\r\n";
    }
    first = false;
  };
  for (const auto& line : scrollback_) {
    next_line();
    writer.row(line, cols_);
  }
  bool primary_hidden = alt_screen_;
  for (int row = 0; row < rows_; ++row) {
    next_line();
    if (!primary_hidden) {
      writer.row(live_row(row), cols_);
    } else if (primary_.valid) {
      writer.row(std::span(primary_.cells).subspan(static_cast<size_t>(row) * cols_, cols_), cols_);
    }
    // An alternate screen whose primary was never seen leaves the primary blank: better than wrong.
  }

  if (alt_screen_) {
    writer.reset_pen();
    VTermPos saved = primary_.valid ? primary_.cursor : VTermPos{0, 0};
    append_cup(saved.row, saved.col, out);
    out += "\x1b[?1049h";  // saves that cursor, as the program's own switch did
    for (int row = 0; row < rows_; ++row) {
      append_cup(row, 0, out);
      writer.row(live_row(row), cols_);
    }
  }

  writer.reset_pen();
  modes_.restore(out);
  out += reverse_ ? "\x1b[?5h" : "\x1b[?5l";
  if (!title_.empty()) append_osc(2, title_, out);
  if (!icon_name_.empty() && icon_name_ != title_) append_osc(1, icon_name_, out);
  append_cursor_style(out);

  VTermPos pos = cursor();
  if (modes_.origin_mode()) {
    // Under DECOM the cursor addresses the scroll region.
    append_cup(std::max(0, pos.row - modes_.margin_top()), pos.col, out);
  } else {
    append_cup(pos.row, pos.col, out);
  }
  if (!cursor_visible_) out += "\x1b[?25l";
  append_pen(out);
  return out;
}

}  // namespace airlock::pty
