// Terminal modes a program sets and a repaint must set again: cursor-key and keypad modes, mouse
// reporting, bracketed paste, focus events, autowrap, insert, origin, scroll margins, character
// sets. libvterm follows most of them but does not expose them, so this tracker runs a second,
// parser-only libvterm over the same output (as TerminalScreen filters it) and records the
// sequences that change them.
//
// It is also where the output's OSC strings pass by: the seam for shell integration (OSC 133/633
// command marks, OSC 7 working directory) that a later audit parser hooks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <vterm.h>

#include "common/util/bytes.hpp"

namespace airlock::pty {

class TerminalModes {
 public:
  explicit TerminalModes(int rows);
  TerminalModes(const TerminalModes&) = delete;
  TerminalModes& operator=(const TerminalModes&) = delete;

  void feed(ByteView output);
  void resize(int rows);

  // Appends sequences that bring a terminal from its power-on modes to these modes. Set-only
  // sequences: never a query, so a repaint cannot make the viewer's terminal answer anything.
  void restore(std::string& out) const;

  bool origin_mode() const { return dec_[kOrigin]; }
  int margin_top() const { return top_; }        // first row of the scroll region, 0-based
  int margin_bottom() const { return bottom_; }  // one past the last row; -1: the screen's last row

  // DEC private modes followed (CSI ? n h / l), by index.
  enum DecMode {
    kCursorKeys,       // 1     DECCKM
    kOrigin,           // 6     DECOM
    kAutowrap,         // 7     DECAWM
    kMouseX10,         // 9
    kMouseClick,       // 1000
    kMouseDrag,        // 1002
    kMouseMove,        // 1003
    kFocusEvents,      // 1004
    kMouseUtf8,        // 1005
    kMouseSgr,         // 1006
    kMouseUrxvt,       // 1015
    kBracketedPaste,   // 2004
    kDecModeCount
  };
  bool dec_mode(DecMode mode) const { return dec_[mode]; }
  bool keypad_application() const { return keypad_; }
  bool insert_mode() const { return insert_; }

 private:
  struct VTermDeleter {
    void operator()(VTerm* vt) const { vterm_free(vt); }
  };

  static int on_text(const char* bytes, size_t len, void* user);
  static int on_control(unsigned char control, void* user);
  static int on_escape(const char* bytes, size_t len, void* user);
  static int on_csi(const char* leader, const long args[], int argcount, const char* intermed, char command,
                    void* user);
  static int on_osc(const char* command, size_t len, void* user);
  static int on_dcs(const char* command, size_t len, void* user);

  void reset();
  void set_margins(long top_arg, long bottom_arg);

  std::unique_ptr<VTerm, VTermDeleter> parser_;
  int rows_;
  bool dec_[kDecModeCount] = {};
  bool keypad_ = false;
  bool insert_ = false;
  bool newline_ = false;  // LNM
  int top_ = 0;
  int bottom_ = -1;
  char g0_ = 'B';   // designation final byte: 'B' ASCII, '0' DEC line drawing, ...
  char g1_ = 'B';
  bool shifted_ = false;  // SO: G1 is in GL
};

}  // namespace airlock::pty
