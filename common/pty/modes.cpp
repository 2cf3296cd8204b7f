#include "common/pty/modes.hpp"

#include <algorithm>
#include <iterator>

namespace airlock::pty {
namespace {

struct DecModeNumber {
  TerminalModes::DecMode mode;
  long number;
  bool initial;
};
constexpr DecModeNumber kDecModes[] = {
    {TerminalModes::kCursorKeys, 1, false},   {TerminalModes::kOrigin, 6, false},
    {TerminalModes::kAutowrap, 7, true},      {TerminalModes::kMouseX10, 9, false},
    {TerminalModes::kMouseClick, 1000, false}, {TerminalModes::kMouseDrag, 1002, false},
    {TerminalModes::kMouseMove, 1003, false}, {TerminalModes::kFocusEvents, 1004, false},
    {TerminalModes::kMouseUtf8, 1005, false}, {TerminalModes::kMouseSgr, 1006, false},
    {TerminalModes::kMouseUrxvt, 1015, false}, {TerminalModes::kBracketedPaste, 2004, false},
};
static_assert(std::size(kDecModes) == TerminalModes::kDecModeCount);

constexpr unsigned char kShiftOut = 0x0e;
constexpr unsigned char kShiftIn = 0x0f;

bool empty(const char* s) { return s == nullptr || *s == '\0'; }

// Designations a repaint may send back; anything else falls back to ASCII.
bool known_charset(char final_byte) { return final_byte == 'B' || final_byte == '0' || final_byte == 'A'; }

}  // namespace

TerminalModes::TerminalModes(int rows) : parser_(vterm_new(std::max(rows, 1), 1)), rows_(std::max(rows, 1)) {
  static const VTermParserCallbacks callbacks = {
      .text = &TerminalModes::on_text,
      .control = &TerminalModes::on_control,
      .escape = &TerminalModes::on_escape,
      .csi = &TerminalModes::on_csi,
      .osc = &TerminalModes::on_osc,
      .dcs = &TerminalModes::on_dcs,
      .resize = nullptr,
  };
  vterm_set_utf8(parser_.get(), 1);
  // No state layer is obtained: this VTerm only parses, so it never answers queries either.
  vterm_parser_set_callbacks(parser_.get(), &callbacks, this);
  reset();
}

void TerminalModes::reset() {
  for (const auto& m : kDecModes) dec_[m.mode] = m.initial;
  keypad_ = false;
  insert_ = false;
  newline_ = false;
  top_ = 0;
  bottom_ = -1;
  g0_ = g1_ = 'B';
  shifted_ = false;
}

void TerminalModes::feed(ByteView output) {
  if (!output.empty()) vterm_input_write(parser_.get(), reinterpret_cast<const char*>(output.data()), output.size());
}

void TerminalModes::resize(int rows) {
  rows_ = std::max(rows, 1);
  // As terminals do, a resize forgets the scroll region; full-screen programs set it again.
  top_ = 0;
  bottom_ = -1;
}

void TerminalModes::set_margins(long top_arg, long bottom_arg) {
  // Same clamping as libvterm, so the model and this tracker agree.
  int top = top_arg == CSI_ARG_MISSING ? 0 : static_cast<int>(std::clamp<long>(top_arg, 1, rows_)) - 1;
  int bottom = bottom_arg == CSI_ARG_MISSING ? -1 : static_cast<int>(std::clamp<long>(bottom_arg, 0, rows_));
  if (top == 0 && bottom == rows_) bottom = -1;
  int effective_bottom = bottom == -1 ? rows_ : bottom;
  if (effective_bottom <= top) {
    top = 0;
    bottom = -1;
  }
  top_ = top;
  bottom_ = bottom;
}

int TerminalModes::on_text(const char* bytes, size_t len, void*) {
  // Printable text changes no mode. libvterm hands over the rest of the buffer and lets the
  // callback say where text ends: at the first control byte, which starts the next sequence.
  size_t n = 0;
  while (n < len && static_cast<unsigned char>(bytes[n]) >= 0x20 && static_cast<unsigned char>(bytes[n]) != 0x7f) ++n;
  return static_cast<int>(n);
}

int TerminalModes::on_control(unsigned char control, void* user) {
  auto* self = static_cast<TerminalModes*>(user);
  if (control == kShiftOut) self->shifted_ = true;
  if (control == kShiftIn) self->shifted_ = false;
  return 1;
}

int TerminalModes::on_escape(const char* bytes, size_t len, void* user) {
  auto* self = static_cast<TerminalModes*>(user);
  if (len == 1) {
    switch (bytes[0]) {
      case '=': self->keypad_ = true; break;   // DECKPAM
      case '>': self->keypad_ = false; break;  // DECKPNM
      case 'c': self->reset(); break;          // RIS
      default: break;
    }
  } else if (len == 2 && (bytes[0] == '(' || bytes[0] == ')')) {
    char designation = known_charset(bytes[1]) ? bytes[1] : 'B';
    (bytes[0] == '(' ? self->g0_ : self->g1_) = designation;
  }
  return 1;
}

int TerminalModes::on_csi(const char* leader, const long args[], int argcount, const char* intermed, char command,
                          void* user) {
  auto* self = static_cast<TerminalModes*>(user);
  bool is_private = !empty(leader) && leader[0] == '?' && leader[1] == '\0';
  if (is_private && empty(intermed) && (command == 'h' || command == 'l')) {
    for (int i = 0; i < argcount; ++i) {
      long number = CSI_ARG(args[i]);
      for (const auto& m : kDecModes) {
        if (m.number == number) self->dec_[m.mode] = command == 'h';
      }
    }
  } else if (empty(leader) && empty(intermed) && (command == 'h' || command == 'l')) {
    for (int i = 0; i < argcount; ++i) {
      if (CSI_ARG(args[i]) == 4) self->insert_ = command == 'h';    // IRM
      if (CSI_ARG(args[i]) == 20) self->newline_ = command == 'h';  // LNM
    }
  } else if (empty(leader) && empty(intermed) && command == 'r') {
    self->set_margins(argcount > 0 ? CSI_ARG(args[0]) : CSI_ARG_MISSING,
                      argcount > 1 ? CSI_ARG(args[1]) : CSI_ARG_MISSING);
  } else if (empty(leader) && !empty(intermed) && intermed[0] == '!' && command == 'p') {
    self->reset();  // DECSTR
  }
  return 1;
}

int TerminalModes::on_osc(const char*, size_t, void*) { return 1; }
int TerminalModes::on_dcs(const char*, size_t, void*) { return 1; }

void TerminalModes::restore(std::string& out) const {
  for (const auto& m : kDecModes) {
    // Mouse modes are listed explicitly either way: the viewer may have had them on before.
    out += "\x1b[?" + std::to_string(m.number) + (dec_[m.mode] ? "h" : "l");
  }
  out += keypad_ ? "\x1b=" : "\x1b>";
  out += insert_ ? "\x1b[4h" : "\x1b[4l";
  out += newline_ ? "\x1b[20h" : "\x1b[20l";
  if (top_ != 0 || bottom_ != -1) {
    out += "\x1b[" + std::to_string(top_ + 1) + ";" + std::to_string(bottom_ == -1 ? rows_ : bottom_) + "r";
  } else {
    out += "\x1b[r";
  }
  // ASCII is where a reset leaves them; naming it again is not free in libvterm (see repaint()).
  if (g0_ != 'B') out += std::string("\x1b(") + g0_;
  if (g1_ != 'B') out += std::string("\x1b)") + g1_;
  if (shifted_) out += "\x0e";
}

}  // namespace airlock::pty
