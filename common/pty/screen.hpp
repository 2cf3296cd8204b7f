// The screen a terminal session shows, kept by libvterm so a viewer who attaches later sees it as it
// is: cells with attributes and colours, bounded scrollback, cursor, alternate screen, modes.
//
// repaint() turns the model into bytes that draw it on a terminal of the same size — a fresh one, or
// one showing anything else — built from the cells, never by replaying old output: replayed output
// would carry queries (DA, DSR, ...) that the new viewer's terminal would answer into the shell.
//
// Pure: bytes in, bytes out. libvterm's own replies to queries are discarded; live viewers answer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <vterm.h>

#include "common/pty/modes.hpp"
#include "common/util/bytes.hpp"

namespace airlock::pty {

// Finds where each switch to the alternate screen (CSI ? 47/1047/1049 h) begins in the output, so
// the primary screen can be copied just before libvterm hides it (libvterm keeps it but offers no
// way to read it back while the alternate screen is shown).
class AltScreenEntryScanner {
 public:
  // Appends to `splits` the offsets in `chunk` at which such sequences begin (0 for one that began
  // in an earlier chunk), in increasing order.
  void scan(ByteView chunk, std::vector<size_t>& splits);

 private:
  enum class State { ground, escape, csi_entry, private_params };
  State state_ = State::ground;
  size_t start_ = 0;
  long param_ = 0;
  bool matched_ = false;
};

// What libvterm 0.1.4 must not see, taken out of the output before it does:
//  - REP (CSI n b) loops forever when the glyph it repeats has width 0 (nothing printed yet, or a
//    zero-width character that combined with nothing). The filter repeats the last printed
//    character itself, so libvterm never gets a REP.
//  - Malformed UTF-8: a C1 control (C2 80..C2 9F) it takes for a character of width -1, putting
//    the cursor left of column 0, is dropped as terminals ignore it; any other invalid or
//    incomplete sequence becomes U+FFFD, so libvterm only ever decodes whole, valid characters.
//  - A cut between two writes: libvterm forgets a UTF-8 character and an OSC string that a write
//    ends inside. The filter holds them until the next chunk completes them, so the same output
//    cut anywhere draws the same screen (the pty hands over output in arbitrary chunks).
//  - DCS strings, whose handling in libvterm has overrun its buffer: nothing the model shows
//    depends on one, so they are dropped whole.
//  - More than 16 CSI parameters, which libvterm writes past its array: the rest are dropped.
// TerminalModes' parser gets the same filtered bytes as the screen.
// It hands libvterm whole units in slices of about kSliceBytes: libvterm decodes a run of text into
// a stack array sized by the run, and megabytes without a control byte would overflow the stack.
class VtermInputFilter {
 public:
  static constexpr size_t kSliceBytes = 4096;
  using Sink = std::function<void(ByteView)>;

  explicit VtermInputFilter(Sink sink) : sink_(std::move(sink)) {}

  // Passes what libvterm gets for `chunk` to the sink; one REP repeats at most `max_repeat` times.
  void filter(ByteView chunk, size_t max_repeat);

 private:
  enum class State { ground, escape, csi, csi_other, string, string_escape };
  void step(uint8_t byte, size_t max_repeat);
  void ground(uint8_t byte);
  void utf8(uint8_t byte);
  void flush_held();
  void abandon(uint8_t byte);
  bool keep_parameter(uint8_t byte);
  void end_string(uint8_t byte);
  void slice_if_full();
  void hand_out();

  Sink sink_;
  Bytes out_;            // for the sink, cut only between whole units
  State state_ = State::ground;
  Bytes held_;           // an escape sequence that may yet be a REP, or a string until it ends
  long count_ = 0;       // REP's first parameter
  int separators_ = 0;   // ';' and ':' in the current CSI
  bool skipping_ = false;  // a string too long to hold, dropped to its end
  Bytes current_;        // a UTF-8 character not yet complete
  size_t needed_ = 0;    // continuation bytes it still needs
  Bytes last_;           // the last character printed, as UTF-8
};

class TerminalScreen {
 public:
  static constexpr size_t kDefaultScrollbackLines = 1000;

  TerminalScreen(int cols, int rows, size_t scrollback_lines = kDefaultScrollbackLines);
  ~TerminalScreen();
  TerminalScreen(const TerminalScreen&) = delete;
  TerminalScreen& operator=(const TerminalScreen&) = delete;

  void feed(ByteView output);
  void resize(int cols, int rows);

  // Bytes that make a terminal of cols() x rows() show this screen: reset, clear, scrollback, the
  // primary screen, the alternate screen over it when active, then modes, title, cursor and pen.
  std::string repaint() const;

  int cols() const { return cols_; }
  int rows() const { return rows_; }

  // Inspection, for tests and diagnostics.
  VTermScreenCell cell(int row, int col) const;
  std::string row_text(int row) const;  // UTF-8, trailing blanks trimmed
  std::string text() const;             // every row, joined by '\n'
  VTermPos cursor() const;
  bool cursor_visible() const { return cursor_visible_; }
  bool alt_screen() const { return alt_screen_; }
  bool primary_saved() const { return primary_.valid; }  // primary known while the alternate is up
  const std::string& title() const { return title_; }
  size_t scrollback_size() const { return scrollback_.size(); }
  std::span<const VTermScreenCell> scrollback_line(size_t index) const { return scrollback_[index]; }  // 0: oldest
  const TerminalModes& modes() const { return modes_; }

 private:
  struct VTermDeleter {
    void operator()(VTerm* vt) const { vterm_free(vt); }
  };
  // The primary screen as it was when the alternate screen came up.
  struct PrimaryCopy {
    bool valid = false;
    int cols = 0;
    int rows = 0;
    VTermPos cursor{0, 0};
    std::vector<VTermScreenCell> cells;
  };

  static int on_sb_pushline(int cols, const VTermScreenCell* cells, void* user);
  static int on_sb_popline(int cols, VTermScreenCell* cells, void* user);
  static int on_settermprop(VTermProp prop, VTermValue* value, void* user);

  void write(ByteView bytes);
  std::vector<VTermScreenCell> live_row(int row) const;
  void copy_primary();
  void keep_cursor_inside();
  void resize_primary_copy();
  void append_cursor_style(std::string& out) const;
  void append_pen(std::string& out) const;

  std::unique_ptr<VTerm, VTermDeleter> vt_;
  VTermScreen* screen_ = nullptr;
  VTermState* state_ = nullptr;
  int cols_;
  int rows_;
  size_t scrollback_limit_;
  std::deque<std::vector<VTermScreenCell>> scrollback_;
  VTermScreenCell blank_{};
  TerminalModes modes_;
  AltScreenEntryScanner alt_scanner_;
  std::vector<size_t> splits_;
  PrimaryCopy primary_;
  bool armed_ = false;  // the primary was copied just before this output segment
  VtermInputFilter filter_;

  bool cursor_visible_ = true;
  bool alt_screen_ = false;
  bool reverse_ = false;
  int cursor_shape_ = VTERM_PROP_CURSORSHAPE_BLOCK;
  bool cursor_blink_ = true;
  int initial_cursor_shape_ = VTERM_PROP_CURSORSHAPE_BLOCK;
  bool initial_cursor_blink_ = true;
  std::string title_;
  std::string icon_name_;
};

}  // namespace airlock::pty
