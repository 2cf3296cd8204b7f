#include "common/pty/screen.hpp"

#include <algorithm>

#include "common/pty/cell_writer.hpp"
#include "common/pty/protocol.hpp"

namespace airlock::pty {
namespace {

constexpr unsigned char kEscape = 0x1b;
constexpr unsigned char kCancel = 0x18;
constexpr unsigned char kSubstitute = 0x1a;
constexpr unsigned char kBell = 0x07;
constexpr unsigned char kDelete = 0x7f;
constexpr unsigned char kReplacement[] = {0xef, 0xbf, 0xbd};  // U+FFFD
constexpr long kMaxParam = 99999;
// What the filter holds of a CSI that may be a REP; a longer one goes on with its parameters cut.
constexpr size_t kMaxHeld = 64;
constexpr int kMaxCsiArguments = 16;
// What the filter holds of an OSC string; a longer one is dropped whole (the model keeps a
// title only to kMaxTitleLength).
constexpr size_t kMaxHeldString = 4096;
constexpr size_t kMaxTitleLength = 256;
// libvterm 0.1.4 writes through a null cell for a wide character on a one-column screen: the
// screen is never narrower than protocol.hpp's kMinCols.
constexpr int kScreenMinCols = kMinCols;

// A C0 control libvterm carries out in the middle of an escape sequence without ending it.
bool executed_in_sequence(uint8_t byte) {
  return byte < 0x20 && byte != kEscape && byte != kCancel && byte != kSubstitute;
}

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

void VtermInputFilter::filter(ByteView chunk, size_t max_repeat) {
  for (uint8_t byte : chunk) step(byte, max_repeat);
  hand_out();
}

void VtermInputFilter::hand_out() {
  if (out_.empty()) return;
  sink_(out_);
  out_.clear();
}

// The escape states follow libvterm 0.1.4's parser, so that every REP it would act on is seen here:
// after an ESC it collects intermediates, carries out C0 controls and ignores DEL and bytes >= 0x80,
// and '[', ']' or 'P' still begin a CSI, an OSC or a DCS after intermediates.
void VtermInputFilter::step(uint8_t byte, size_t max_repeat) {
  switch (state_) {
    case State::ground:
      if (needed_ == 0) slice_if_full();
      ground(byte);
      break;
    case State::escape:
      if (byte == '[') {
        held_.push_back(byte);
        state_ = State::csi;
        count_ = 0;
        separators_ = 0;
      } else if (byte == ']' || byte == 'P') {
        held_.push_back(byte);
        state_ = State::string;
        // A DCS (DECRQSS queries, sixel images) changes nothing the model shows: dropped whole.
        skipping_ = byte == 'P';
      } else if (byte >= 0x20 && byte < 0x30) {
        if (held_.size() < kMaxHeld) held_.push_back(byte);  // an intermediate; past it, cut short
      } else if (byte >= kDelete) {
        // ignored here, by libvterm too
      } else if (executed_in_sequence(byte)) {
        out_.push_back(byte);
      } else if (byte >= 0x30) {
        bool restores_cursor = byte == '8' && held_.size() == 1;  // DECRC
        held_.push_back(byte);  // the final byte
        flush_held();
        if (restores_cursor) hand_out();
      } else {
        abandon(byte);
      }
      break;
    case State::csi:
      if (byte >= '0' && byte <= ';') {
        if (!keep_parameter(byte)) break;
        if (separators_ == 0) count_ = std::min(count_ * 10 + (byte - '0'), kMaxParam);  // the first
        if (held_.size() < kMaxHeld) held_.push_back(byte);  // past it, parameters are cut short
      } else if (byte == 'b') {
        // REP: the last printed character again, as a terminal repeats it (0 means once).
        held_.clear();
        state_ = State::ground;
        size_t times = std::min<size_t>(static_cast<size_t>(std::max(count_, 1L)), max_repeat);
        for (size_t i = 0; i < times && !last_.empty(); ++i) {
          slice_if_full();
          out_.insert(out_.end(), last_.begin(), last_.end());
        }
      } else if (executed_in_sequence(byte)) {
        out_.push_back(byte);
      } else if (byte == kDelete) {
        // ignored inside a CSI, by libvterm too
      } else if (byte == kEscape || byte == kCancel || byte == kSubstitute) {
        abandon(byte);
      } else {
        flush_held();  // not a REP: the rest of it goes through as it comes
        state_ = State::csi_other;
        step(byte, max_repeat);
      }
      break;
    case State::csi_other:
      if (byte >= '0' && byte <= ';') {
        if (keep_parameter(byte)) out_.push_back(byte);
      } else if (byte >= 0x20 && byte < 0x40) {
        out_.push_back(byte);  // leaders and intermediates
      } else if (byte >= 0x40 && byte < kDelete) {
        out_.push_back(byte);  // the final byte
        state_ = State::ground;
        if (byte == 'u' || byte == 'l') hand_out();  // may restore a saved cursor (SCORC, 1048/1049)
      } else if (executed_in_sequence(byte) || byte == kDelete) {
        out_.push_back(byte);
      } else if (byte == kEscape || byte == kCancel || byte == kSubstitute) {
        // libvterm has this CSI open: CAN closes it there, so that a REP the held ESC may begin
        // and the filter then takes out cannot finish it.
        out_.push_back(kCancel);
        abandon(byte);
      } else {
        state_ = State::ground;  // libvterm ends the CSI and takes a byte >= 0x80 for text
        ground(byte);
      }
      break;
    case State::string:
      if (byte == kBell || byte == kCancel || byte == kSubstitute) {
        end_string(byte);
      } else if (byte == kEscape) {
        state_ = State::string_escape;
      } else if (skipping_) {
      } else if (held_.size() < kMaxHeldString) {
        held_.push_back(byte);
      } else {
        skipping_ = true;  // libvterm has nothing to show for one this long: dropped whole
        held_.clear();
      }
      break;
    case State::string_escape:
      if (byte == '\\') {
        held_.push_back(kEscape);
        end_string(byte);
      } else {
        // Any other sequence abandons the string (libvterm shows nothing of it) and starts anew.
        held_.assign(1, kEscape);
        state_ = State::escape;
        step(byte, max_repeat);
      }
      break;
  }
}

// ESC starts a new sequence, CAN and SUB cancel: what is held of the old one goes nowhere, as
// libvterm would abandon it too.
void VtermInputFilter::abandon(uint8_t byte) {
  held_.clear();
  state_ = State::ground;
  ground(byte);
}

// libvterm 0.1.4 writes past its array of 16 CSI arguments when given more: the parameters after
// the 16th are dropped.
bool VtermInputFilter::keep_parameter(uint8_t byte) {
  if (byte == ';' || byte == ':') ++separators_;
  return separators_ < kMaxCsiArguments;
}

void VtermInputFilter::end_string(uint8_t byte) {
  if (skipping_) {
    held_.clear();
    state_ = State::ground;
    return;
  }
  held_.push_back(byte);
  flush_held();
}

void VtermInputFilter::slice_if_full() {
  if (out_.size() >= kSliceBytes) hand_out();
}

void VtermInputFilter::ground(uint8_t byte) {
  if (needed_ > 0 || byte >= 0x80) {
    utf8(byte);
    return;
  }
  if (byte == kEscape) {
    state_ = State::escape;
    held_.assign(1, byte);
    return;
  }
  out_.push_back(byte);
  if (byte >= 0x20 && byte < 0x7f) last_.assign(1, byte);  // what a REP repeats
}

// Well-formed UTF-8 as Unicode's table 3-7 has it: no overlong forms, no surrogates, nothing past
// U+10FFFF.
void VtermInputFilter::utf8(uint8_t byte) {
  if (needed_ > 0) {
    uint8_t lead = current_[0];
    bool second = current_.size() == 1;
    uint8_t low = 0x80;
    uint8_t high = 0xbf;
    if (second && lead == 0xe0) low = 0xa0;
    if (second && lead == 0xed) high = 0x9f;
    if (second && lead == 0xf0) low = 0x90;
    if (second && lead == 0xf4) high = 0x8f;
    if (byte >= low && byte <= high) {
      current_.push_back(byte);
      if (--needed_ > 0) return;
      if (lead == 0xc2 && byte <= 0x9f) return;  // a C1 control: dropped
      out_.insert(out_.end(), current_.begin(), current_.end());
      last_ = current_;
      return;
    }
    // The character ended early: one U+FFFD for what came of it, and the byte starts afresh.
    out_.insert(out_.end(), std::begin(kReplacement), std::end(kReplacement));
    needed_ = 0;
    ground(byte);
    return;
  }
  if (byte >= 0xc2 && byte <= 0xf4) {
    current_.assign(1, byte);
    needed_ = byte < 0xe0 ? 1 : byte < 0xf0 ? 2 : 3;
    return;
  }
  out_.insert(out_.end(), std::begin(kReplacement), std::end(kReplacement));  // 80..C1, F5..FF
  last_.assign(std::begin(kReplacement), std::end(kReplacement));
}

void VtermInputFilter::flush_held() {
  out_.insert(out_.end(), held_.begin(), held_.end());
  held_.clear();
  state_ = State::ground;
}

TerminalScreen::TerminalScreen(int cols, int rows, size_t scrollback_lines)
    : vt_(vterm_new(std::max(rows, 1), std::max(cols, kScreenMinCols))),
      cols_(std::max(cols, kScreenMinCols)),
      rows_(std::max(rows, 1)),
      scrollback_limit_(scrollback_lines),
      modes_(std::max(rows, 1)),
      filter_([this](ByteView bytes) {
        modes_.feed(bytes);
        vterm_input_write(vt_.get(), reinterpret_cast<const char*>(bytes.data()), bytes.size());
        keep_cursor_inside();
      }) {
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
  initial_cursor_shape_ = cursor_shape_;
  initial_cursor_blink_ = cursor_blink_;
  vterm_screen_get_cell(screen_, VTermPos{0, 0}, &blank_);
}

TerminalScreen::~TerminalScreen() = default;

void TerminalScreen::feed(ByteView output) {
  if (output.empty()) return;
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

void TerminalScreen::write(ByteView bytes) {
  filter_.filter(bytes, static_cast<size_t>(cols_) * static_cast<size_t>(rows_));
  // A copy is only trusted for a switch inside the segment it was taken for.
  armed_ = false;
}

// libvterm 0.1.4 can leave the cursor outside the screen: above it when the screen shrinks (row
// -1), where it would write through a null cell; at a position saved before a shrink and restored
// after it (it does not clamp the saved cursor); left of column 0 after a character of width -1.
// Each time, the cursor goes back inside, where a terminal would have kept it.
void TerminalScreen::keep_cursor_inside() {
  VTermPos pos = cursor();
  if (pos.row >= 0 && pos.row < rows_ && pos.col >= 0 && pos.col < cols_) return;
  int row = std::clamp(pos.row, 0, rows_ - 1);
  if (modes_.origin_mode()) {  // CUP counts from the scroll region's top, and stays inside it
    int bottom = modes_.margin_bottom() == -1 ? rows_ : modes_.margin_bottom();
    row = std::clamp(row, modes_.margin_top(), bottom - 1) - modes_.margin_top();
  }
  std::string move = "\x1b[" + std::to_string(row + 1) + ";" + std::to_string(std::clamp(pos.col, 0, cols_ - 1) + 1) + "H";
  vterm_input_write(vt_.get(), move.data(), move.size());
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
  // A resize forgets the scroll region, as terminals do (and as modes_ does). libvterm 0.1.4 keeps
  // it, and scrolling a region that lies past a shrunken screen moves a negative number of bytes.
  // Resetting it homes the cursor: it goes back where it was before the screen resizes.
  if (modes_.margin_top() != 0 || modes_.margin_bottom() != -1) {
    VTermPos pos = cursor();
    std::string reset = "\x1b[r\x1b[" + std::to_string(pos.row + 1) + ";" + std::to_string(pos.col + 1) + "H";
    vterm_input_write(vt_.get(), reset.data(), reset.size());
  }
  vterm_set_size(vt_.get(), rows, cols);
  keep_cursor_inside();
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
