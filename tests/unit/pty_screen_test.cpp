// The screen model's repaint, fed into a fresh libvterm, must reproduce the model: every cell's
// text, attributes and colours, the cursor, the alternate screen, the scrollback, and the modes
// (checked by feeding both the same continuation and comparing again). And never a query.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include <vterm.h>

#include "common/pty/cell_writer.hpp"
#include "common/pty/screen.hpp"

using namespace airlock;
using namespace airlock::pty;

namespace {

// A terminal as a new viewer has it: plain libvterm, recording what a viewer would notice.
class FreshTerminal {
 public:
  FreshTerminal(int cols, int rows) : vt_(vterm_new(rows, cols)) {
    vterm_set_utf8(vt_, 1);
    vterm_output_set_callback(
        vt_, [](const char* s, size_t n, void* user) { static_cast<FreshTerminal*>(user)->replies.append(s, n); },
        this);
    screen_ = vterm_obtain_screen(vt_);
    static const VTermScreenCallbacks callbacks = {
        .damage = nullptr,
        .moverect = nullptr,
        .movecursor = nullptr,
        .settermprop = &FreshTerminal::on_prop,
        .bell = nullptr,
        .resize = nullptr,
        .sb_pushline = &FreshTerminal::on_push,
        .sb_popline = nullptr,
    };
    vterm_screen_set_callbacks(screen_, &callbacks, this);
    vterm_screen_enable_altscreen(screen_, 1);
    vterm_screen_reset(screen_, 1);
  }
  ~FreshTerminal() { vterm_free(vt_); }

  void feed(std::string_view bytes) { vterm_input_write(vt_, bytes.data(), bytes.size()); }
  VTermScreenCell cell(int row, int col) const {
    VTermScreenCell c{};
    vterm_screen_get_cell(screen_, VTermPos{row, col}, &c);
    return c;
  }
  VTermPos cursor() const {
    VTermPos pos;
    vterm_state_get_cursorpos(vterm_obtain_state(vt_), &pos);
    return pos;
  }
  VTerm* vt() { return vt_; }

  std::string replies;
  bool cursor_visible = true;
  bool alt = false;
  std::string title;
  std::vector<std::vector<VTermScreenCell>> scrollback;

 private:
  static int on_prop(VTermProp prop, VTermValue* v, void* user) {
    auto* self = static_cast<FreshTerminal*>(user);
    if (prop == VTERM_PROP_CURSORVISIBLE) self->cursor_visible = v->boolean;
    if (prop == VTERM_PROP_ALTSCREEN) self->alt = v->boolean;
    if (prop == VTERM_PROP_TITLE) self->title = v->string ? v->string : "";
    return 1;
  }
  static int on_push(int cols, const VTermScreenCell* cells, void* user) {
    static_cast<FreshTerminal*>(user)->scrollback.emplace_back(cells, cells + cols);
    return 1;
  }

  VTerm* vt_;
  VTermScreen* screen_;
};

std::string describe(const VTermScreenCell& c) {
  std::string s = "U+" + std::to_string(c.chars[0]) + " w" + std::to_string(c.width) + " b" +
                  std::to_string(c.attrs.bold) + " u" + std::to_string(c.attrs.underline) + " i" +
                  std::to_string(c.attrs.italic) + " r" + std::to_string(c.attrs.reverse) + " fg" +
                  std::to_string(c.fg.type) + ":" + std::to_string(c.fg.indexed.idx) + " bg" +
                  std::to_string(c.bg.type) + ":" + std::to_string(c.bg.indexed.idx);
  return s;
}

constexpr uint32_t kContinuation = 0xffffffffu;

// `a` from the model, `b` from the fresh terminal.
bool same_cell(const VTermScreenCell& a, const VTermScreenCell& b) {
  // The right half of a wide character is covered by it: only where characters start is seen.
  // (libvterm also leaves halves of overwritten wide characters behind with stale pens, and
  // derives `width` from them, so neither the halves' pens nor `width` is compared; positions of
  // every character still are.)
  if (a.chars[0] == kContinuation || b.chars[0] == kContinuation) {
    auto hidden = [](const VTermScreenCell& c) {
      return c.chars[0] == kContinuation || (c.chars[0] == 0 && Pen::of(c).is_default());
    };
    return hidden(a) && hidden(b);
  }
  for (int i = 0; i < VTERM_MAX_CHARS_PER_CELL; ++i) {
    if (a.chars[i] != b.chars[i]) return false;
    if (a.chars[i] == 0) break;
  }
  return Pen::of(a) == Pen::of(b);
}

// Compares every cell, the cursor and the visible modes of the model with the fresh terminal.
void check_same(const TerminalScreen& model, const FreshTerminal& fresh) {
  int mismatches = 0;
  for (int row = 0; row < model.rows(); ++row) {
    for (int col = 0; col < model.cols(); ++col) {
      auto a = model.cell(row, col);
      auto b = fresh.cell(row, col);
      if (!same_cell(a, b) && ++mismatches <= 5) {
        FAIL_CHECK("cell " << row << "," << col << ": model " << describe(a) << " / fresh " << describe(b));
      }
    }
  }
  CHECK(mismatches == 0);
  CHECK(model.cursor().row == fresh.cursor().row);
  CHECK(model.cursor().col == fresh.cursor().col);
  CHECK(model.cursor_visible() == fresh.cursor_visible);
  CHECK(model.alt_screen() == fresh.alt);
}

void check_scrollback(const TerminalScreen& model, const FreshTerminal& fresh) {
  REQUIRE(fresh.scrollback.size() == model.scrollback_size());
  VTermScreenCell blank{};
  FreshTerminal empty(1, 1);
  blank = empty.cell(0, 0);
  for (size_t i = 0; i < model.scrollback_size(); ++i) {
    auto line = model.scrollback_line(i);
    const auto& got = fresh.scrollback[i];
    for (size_t col = 0; col < got.size(); ++col) {
      const VTermScreenCell& want = col < line.size() ? line[col] : blank;
      if (!same_cell(want, got[col])) {
        FAIL_CHECK("scrollback line " << i << " col " << col << ": " << describe(want) << " / " << describe(got[col]));
        return;
      }
    }
  }
}

// Repaints `model` into a fresh terminal of its size and checks they agree.
std::string round_trip(const TerminalScreen& model, FreshTerminal& fresh) {
  std::string repaint = model.repaint();
  fresh.feed(repaint);
  check_same(model, fresh);
  CHECK(fresh.replies.empty());
  return repaint;
}

void feed(TerminalScreen& model, std::string_view bytes) { model.feed(as_bytes(bytes)); }

}  // namespace

TEST_CASE("plain text, attributes and colours survive a repaint") {
  TerminalScreen model(40, 8);
  feed(model,
       "plain \x1b[1mbold\x1b[0m \x1b[3mitalic\x1b[23m \x1b[4munder\x1b[21mdouble\x1b[4:3mcurly\x1b[24m\r\n"
       "\x1b[5mblink\x1b[25m \x1b[7mreverse\x1b[27m \x1b[9mstrike\x1b[29m \x1b[11mfont\x1b[10m\r\n"
       "\x1b[31mred\x1b[92mbright\x1b[38;5;208morange\x1b[38;2;1;2;3mrgb\x1b[39m\r\n"
       "\x1b[44mblue bg\x1b[48;5;100mbg100\x1b[48;2;200;100;50mbgrgb\x1b[49m\r\n"
       "\x1b[1;4;31;43mall at once\x1b[m");
  FreshTerminal fresh(40, 8);
  round_trip(model, fresh);
  CHECK(model.row_text(0) == "plain bold italic underdoublecurly");
}

TEST_CASE("coloured blanks, erased lines and gaps keep their pens") {
  TerminalScreen model(30, 6);
  feed(model, "a\x1b[10Cb\r\n");                         // a gap of default blanks inside a row
  feed(model, "\x1b[41mred line\x1b[K\x1b[m\r\n");          // erase to end of line with a colour
  feed(model, "\x1b[1;42m\x1b[5X\x1b[m\x1b[6Cx\r\n");      // ECH with a bold coloured pen, then text
  feed(model, "\x1b[44m\x1b[2K\x1b[m");                     // a whole row erased blue
  FreshTerminal fresh(30, 6);
  round_trip(model, fresh);
}

TEST_CASE("wide and combining characters") {
  TerminalScreen model(20, 4);
  feed(model, "\xe4\xb8\xad\xe6\x96\x87 e\xcc\x81 \xf0\x9f\x98\x80!\r\n\xe2\x94\x80\xe2\x94\x82");
  FreshTerminal fresh(20, 4);
  round_trip(model, fresh);
  CHECK(model.row_text(0) == "\xe4\xb8\xad\xe6\x96\x87 e\xcc\x81 \xf0\x9f\x98\x80!");
}

TEST_CASE("scrollback lines come back in order, with their colours") {
  TerminalScreen model(20, 5, 100);
  for (int i = 0; i < 30; ++i) {
    feed(model, "\x1b[3" + std::to_string(i % 8) + "mline " + std::to_string(i) + "\x1b[m\r\n");
  }
  feed(model, "$ ");
  CHECK(model.scrollback_size() == 26);
  FreshTerminal fresh(20, 5);
  round_trip(model, fresh);
  check_scrollback(model, fresh);
  CHECK(model.row_text(4) == "$");
}

TEST_CASE("a wide character on the narrowest screen") {
  TerminalScreen model(1, 3);  // kept at two columns: libvterm crashes placing it in one
  CHECK(model.cols() == 2);
  feed(model, "\xe4\xa4\x8d\xe4\xa4\x8dx");
  FreshTerminal fresh(2, 3);
  round_trip(model, fresh);
}

TEST_CASE("UTF-8 encoded C1 controls are ignored, whole or split across writes and a resize") {
  // libvterm would take U+009C for a character of width -1 and put the cursor at column -1.
  TerminalScreen model(56, 12, 50);
  feed(model, "ab\xc2\x9c");
  CHECK(model.cursor().col == 2);
  feed(model, "\xc2");
  model.resize(33, 37);
  feed(model, "\x9c" "c\xc2\xa0" "d");  // a C1 completed after the resize; then a no-break space
  CHECK(model.cursor().row == 0);
  CHECK(model.cursor().col == 5);
  FreshTerminal fresh(33, 37);
  round_trip(model, fresh);
  CHECK(model.row_text(0) == "abc\u00a0d");
}

TEST_CASE("REP before any character repeats nothing, and REP after one repeats it") {
  TerminalScreen model(56, 34);
  feed(model, "\x1b[b\x1b[3b");  // libvterm 0.1.4 alone loops forever here
  CHECK(model.row_text(0).find_first_not_of(' ') == std::string::npos);
  CHECK(model.cursor().col == 0);
  feed(model, "\rx\x1b[2b");
  CHECK(model.row_text(0).rfind("xxx", 0) == 0);
  FreshTerminal fresh(56, 34);
  round_trip(model, fresh);
}

TEST_CASE("REP of a zero-width character returns (libvterm alone never does)") {
  TerminalScreen first(20, 5);
  feed(first, "\xe2\x80\x8b\x1b[3b");  // U+200B, nothing to combine with
  CHECK(first.cursor().row == 0);
  TerminalScreen moved(20, 5);
  feed(moved, "ab\x1b[H\xcc\x81\x1b[2bc");  // U+0301 after a cursor move
  CHECK(moved.row_text(0).rfind("c", 0) == 0);
  CHECK(moved.cursor().col == 1);
}

TEST_CASE("REP behind bytes libvterm skips inside a sequence is still caught") {
  // libvterm carries out a C0 control and ignores DEL and bytes >= 0x80 after an ESC or inside a
  // CSI, and still begins a CSI at '[' after intermediates: each of these reaches it as a REP of
  // nothing, which libvterm alone never returns from. What follows the REP is text.
  struct Case {
    std::string output;
    std::string shown;
  };
  for (const Case& c : {Case{std::string("\x1b\0[9;b", 6), ""}, Case{"\x1b\n[3b", ""}, Case{"\x1b\x7f[3b", ""},
                        Case{"\x1b\xc3\xa9[3b", ""}, Case{"\x1b[3\x7f" "b", ""}, Case{"\x1b[\r3b", ""},
                        Case{"\x1b))[3b", ""}, Case{"\x1b\x03!\x1b[b\x1b)))))[b", ""},
                        Case{std::string("\0\x1b[1\0\x1b[40bb", 11), "b"}, Case{"\x1b)\x1b[b[b", "[b"},
                        Case{"\x1b[?1\x1b[b3b", "3b"}}) {
    CAPTURE(c.output);
    TerminalScreen model(30, 4);
    feed(model, c.output);
    CHECK(model.text().find_first_not_of(" \n") == (c.shown.empty() ? std::string::npos : 0));
    CHECK(model.row_text(model.cursor().row) == c.shown);
  }
}

TEST_CASE("a CSI with more than 16 parameters keeps the first 16") {
  TerminalScreen model(20, 4);
  std::string many = "\x1b[1";
  for (int i = 0; i < 40; ++i) many += ";1";
  feed(model, many + ";4mu");  // libvterm 0.1.4 alone writes past its parameter array here
  feed(model, "\x1b[0;1;1;1;1;1;1;1;1;1;1;1;1;1;1;4mv");  // 16: all count
  CHECK(model.row_text(0) == "uv");
  CHECK(model.cell(0, 0).attrs.bold);
  CHECK_FALSE(model.cell(0, 0).attrs.underline);
  CHECK(model.cell(0, 1).attrs.bold);
  CHECK(model.cell(0, 1).attrs.underline);
}

TEST_CASE("REP repeats the last printed character, never a sequence's final byte") {
  TerminalScreen model(30, 4);
  feed(model, "x\x1b[1m\x1b" "7\x1b(B\x1b[2b");
  CHECK(model.row_text(0) == "xxx");
}

TEST_CASE("the same output cut at any offset draws the same screen") {
  // UTF-8 text, a C1 control, REP with parameters, SGR, a cursor move and a title, in one run.
  const std::string output =
      "h\xc3\xa9llo \xe4\xb8\xad\xc2\x9c!\x1b[31mx\x1b[4b\x1b[m\x1b[2;3H\xc2\xa0y\x1b[2;1b"
      "\x1b]2;t\x07\xc2\x1b[1mz\xf0\x9f\x98\x80\x1b[b";
  TerminalScreen whole(30, 6);
  feed(whole, output);
  const std::string expected = whole.repaint();
  CHECK(whole.row_text(0).rfind("h\u00e9llo \u4e2d!xxxxx", 0) == 0);
  CHECK(whole.row_text(1) == "  \u00a0yyy\ufffdz\U0001f600\U0001f600");  // the lone C2 is U+FFFD
  CHECK(whole.title() == "t");
  for (size_t cut = 1; cut < output.size(); ++cut) {
    CAPTURE(cut);
    TerminalScreen parts(30, 6);
    feed(parts, output.substr(0, cut));
    feed(parts, output.substr(cut));
    CHECK(parts.repaint() == expected);
  }
}

TEST_CASE("malformed UTF-8 shows U+FFFD, one for each broken piece") {
  TerminalScreen model(40, 4);
  // A stray continuation byte, a byte never in UTF-8, an overlong form, a surrogate, past U+10FFFF,
  // and a character cut short by a control.
  feed(model, "a\x80" "b\xff" "c\xe0\x80" "d\xed\xa0\x80" "e\xf4\x90\x80\x80" "f\xe4\xb8\ng");
  CHECK(model.row_text(0) ==
        "a\ufffdb\ufffdc\ufffd\ufffdd\ufffd\ufffd\ufffde\ufffd\ufffd\ufffd\ufffdf\ufffd");
  CHECK(model.row_text(1).find('g') != std::string::npos);
  CHECK(model.cursor().col >= 0);
}

TEST_CASE("titles: one cut between writes is kept, an abandoned or overlong one is not") {
  TerminalScreen model(20, 4);
  feed(model, "\x1b]2;bui");
  feed(model, "ld\x1b");
  feed(model, "\\ok");
  CHECK(model.title() == "build");
  CHECK(model.row_text(0) == "ok");
  feed(model, "\x1b]2;never\x1b[1mX");  // a new sequence abandons the string
  CHECK(model.title() == "build");
  CHECK(model.row_text(0) == "okX");
  feed(model, "\x1b]2;" + std::string(100000, 'y') + "\x07Z");
  CHECK(model.title() == "build");
  CHECK(model.row_text(0) == "okXZ");
}

TEST_CASE("megabytes of text without a control byte") {
  // libvterm decodes a run into a stack array as long as the run: the filter keeps runs short.
  TerminalScreen model(80, 24);
  std::string run;
  for (int i = 0; i < (4 << 20) / 2; ++i) run += "\xc3\xa9";
  feed(model, run);
  std::string row;
  for (int i = 0; i < 80; ++i) row += "\u00e9";
  CHECK(model.row_text(22) == row);
  CHECK(model.row_text(23) == row.substr(0, (2 << 20) % 80 * 2));  // 2 bytes a character
}

TEST_CASE("a resize forgets the scroll region, so one past a shrunken screen cannot scroll") {
  TerminalScreen model(68, 34);
  feed(model, "\x1b[7r@");  // rows 7 to 34 scroll
  CHECK(model.modes().margin_top() == 6);
  model.resize(117, 3);
  CHECK(model.modes().margin_bottom() == -1);
  CHECK(model.cursor().col == 1);
  feed(model, std::string(400, '@'));  // wraps past the last row: the screen scrolls
  CHECK(model.row_text(1) == std::string(117, '@'));
  CHECK(model.row_text(2) == std::string(401 - 3 * 117, '@'));
  FreshTerminal fresh(117, 3);
  round_trip(model, fresh);
}

TEST_CASE("a cursor saved before the screen shrinks comes back inside it") {
  // DECSC/DECRC, and the same through mode 1048.
  for (auto [save, restore] : {std::pair{"\x1b" "7", "\x1b" "8"}, std::pair{"\x1b[?1048h", "\x1b[?1048l"}}) {
    CAPTURE(restore);
    TerminalScreen model(49, 18);
    feed(model, std::string("\x1b[18;40H") + save);
    model.resize(10, 5);
    feed(model, std::string(restore) + "x");
    CHECK(model.cursor().row == 4);
    CHECK(model.row_text(4) == "         x");
    FreshTerminal fresh(10, 5);
    round_trip(model, fresh);
  }
}

TEST_CASE("scrollback is bounded") {
  TerminalScreen model(10, 3, 50);
  for (int i = 0; i < 5000; ++i) feed(model, "y\r\n");
  CHECK(model.scrollback_size() == 50);
}

TEST_CASE("cursor position, hidden cursor and cursor shape") {
  TerminalScreen model(30, 10);
  feed(model, "hello\x1b[6;12H\x1b[?25l\x1b[5 q");
  FreshTerminal fresh(30, 10);
  std::string repaint = round_trip(model, fresh);
  CHECK(model.cursor().row == 5);
  CHECK(model.cursor().col == 11);
  CHECK_FALSE(fresh.cursor_visible);
  CHECK(repaint.find("\x1b[5 q") != std::string::npos);
}

TEST_CASE("queries in the original output never appear in the repaint") {
  TerminalScreen model(40, 6);
  // DA1, DA2, DSR status and cursor report, DECRQM, XTVERSION, OSC colour query.
  feed(model, "before\x1b[c\x1b[>c\x1b[5n\x1b[6n\x1b[?2004$p\x1b[>0q\x1b]11;?\x07 after\r\n$ ");
  FreshTerminal fresh(40, 6);
  std::string repaint = round_trip(model, fresh);
  for (std::string_view query : {"\x1b[c", "\x1b[>c", "\x1b[5n", "\x1b[6n", "$p", "\x1b[>0q", "]11;?"}) {
    CHECK_MESSAGE(repaint.find(query) == std::string::npos, "query in repaint: " << query.substr(1));
  }
  CHECK(fresh.replies.empty());
  CHECK(model.row_text(0) == "before after");
  CHECK(model.text().find("1;2c") == std::string::npos);
}

TEST_CASE("the alternate screen comes back over the primary it hides") {
  TerminalScreen model(30, 8);
  feed(model, "$ ls\r\n\x1b[32mfile-a\x1b[m  file-b\r\n$ less file-a");
  feed(model, "\r\n\x1b[?1049h\x1b[22;0;0t\x1b[H\x1b[2J\x1b[7mfile-a contents\x1b[m\x1b[8;1H:");
  CHECK(model.alt_screen());
  CHECK(model.primary_saved());

  FreshTerminal fresh(30, 8);
  round_trip(model, fresh);
  CHECK(fresh.alt);

  // Leaving the alternate screen shows the same primary on both, cursor restored.
  feed(model, "\r\x1b[K\x1b[?1049l\x1b[23;0;0t\r\n$ ");
  fresh.feed("\r\x1b[K\x1b[?1049l\x1b[23;0;0t\r\n$ ");
  check_same(model, fresh);
  CHECK(model.row_text(1) == "file-a  file-b");
}

TEST_CASE("an alternate-screen switch split across reads is still caught") {
  TerminalScreen model(20, 4);
  feed(model, "prompt$ vim\r\n\x1b[?10");
  feed(model, "49h\x1b[Hvim screen");
  CHECK(model.alt_screen());
  CHECK(model.primary_saved());
  FreshTerminal fresh(20, 4);
  round_trip(model, fresh);
  feed(model, "\x1b[?1049l");
  fresh.feed("\x1b[?1049l");
  check_same(model, fresh);
  CHECK(model.row_text(0) == "prompt$ vim");
}

TEST_CASE("modes come back: cursor keys, keypad, bracketed paste, mouse") {
  TerminalScreen model(20, 4);
  feed(model, "\x1b[?1h\x1b=\x1b[?2004h\x1b[?1002h\x1b[?1006hx");
  FreshTerminal fresh(20, 4);
  std::string repaint = round_trip(model, fresh);
  for (std::string_view mode : {"\x1b[?1h", "\x1b=", "\x1b[?2004h", "\x1b[?1002h", "\x1b[?1006h", "\x1b[?1000l"}) {
    CHECK(repaint.find(mode) != std::string::npos);
  }
  // The fresh terminal behaves as the program asked: application cursor keys, bracketed paste.
  fresh.replies.clear();
  vterm_keyboard_key(fresh.vt(), VTERM_KEY_UP, VTERM_MOD_NONE);
  CHECK(fresh.replies == "\x1bOA");
  fresh.replies.clear();
  vterm_keyboard_start_paste(fresh.vt());
  CHECK(fresh.replies == "\x1b[200~");
}

TEST_CASE("margins, origin mode, charset, insert mode and pen carry on after the repaint") {
  TerminalScreen model(20, 8);
  feed(model, "top\r\n\x1b[3;6r\x1b[?6h\x1b[2;3H\x1b(0lqqk\x1b[4h\x1b[1;35m");
  FreshTerminal fresh(20, 8);
  round_trip(model, fresh);
  // The same continuation must land the same way on both.
  std::string more = "xy\x1b[Hinsert\r\n\n\n\n\n\nscrolls in region\x1b(Bq\x1b[m plain";
  feed(model, more);
  fresh.feed(more);
  check_same(model, fresh);
}

TEST_CASE("the title comes back; control bytes in it do not") {
  TerminalScreen model(20, 4);
  feed(model, "\x1b]2;build \xe2\x9c\x93\x07x");
  FreshTerminal fresh(20, 4);
  round_trip(model, fresh);
  CHECK(fresh.title == "build \xe2\x9c\x93");
}

TEST_CASE("reverse video screen") {
  TerminalScreen model(20, 4);
  feed(model, "\x1b[?5hab\x1b[7mcd\x1b[m");
  FreshTerminal fresh(20, 4);
  round_trip(model, fresh);
}

TEST_CASE("a resized model repaints at its new size") {
  TerminalScreen model(40, 10);
  for (int i = 0; i < 15; ++i) feed(model, "row " + std::to_string(i) + " \x1b[33mwith colour\x1b[m\r\n");
  model.resize(25, 6);
  CHECK(model.cols() == 25);
  FreshTerminal fresh(25, 6);
  round_trip(model, fresh);
  model.resize(30, 12);  // taller: lines come back from scrollback
  FreshTerminal taller(30, 12);
  round_trip(model, taller);
  check_scrollback(model, taller);
}

TEST_CASE("the alternate-screen scanner finds each entry and its start") {
  AltScreenEntryScanner scanner;
  std::vector<size_t> splits;
  std::string text = "ab\x1b[?1049hcd\x1b[?25l\x1b[?1;47h\x1b[?1047l";
  scanner.scan(as_bytes(text), splits);
  REQUIRE(splits.size() == 2);
  CHECK(splits[0] == 2);
  CHECK(splits[1] == text.find("\x1b[?1;47h"));

  splits.clear();
  scanner.scan(as_bytes("x\x1b[?10"), splits);
  CHECK(splits.empty());
  scanner.scan(as_bytes("49h"), splits);
  REQUIRE(splits.size() == 1);
  CHECK(splits[0] == 0);

  splits.clear();
  scanner.scan(as_bytes("\x1b[1049h\x1b[?1049\x18h"), splits);  // not private; cancelled
  CHECK(splits.empty());
}

TEST_CASE("random drawing round-trips") {
  std::mt19937 rng(20240601);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  const char* words[] = {"alpha", "\xe4\xb8\xad", "x", "  ", "\xe2\x94\x80\xe2\x94\x80", "e\xcc\x81", "tail"};
  for (int round = 0; round < 300; ++round) {
    int cols = 10 + pick(70);
    int rows = 3 + pick(30);
    TerminalScreen model(cols, rows, 200);
    std::string out;
    for (int step = 0; step < 300; ++step) {
      switch (pick(12)) {
        case 0: out += "\x1b[" + std::to_string(1 + pick(rows)) + ";" + std::to_string(1 + pick(cols)) + "H"; break;
        case 1: out += "\x1b[" + std::to_string(pick(108)) + "m"; break;
        case 2: out += "\x1b[38;5;" + std::to_string(pick(256)) + "m"; break;
        case 3: out += "\x1b[48;2;" + std::to_string(pick(256)) + ";9;" + std::to_string(pick(256)) + "m"; break;
        case 4: out += "\x1b[" + std::to_string(pick(3)) + "K"; break;
        case 5: out += "\x1b[" + std::to_string(1 + pick(5)) + "X"; break;
        case 6: out += "\r\n"; break;
        case 7: out += "\x1b[" + std::to_string(1 + pick(3)) + (pick(2) ? "L" : "M"); break;
        case 8: out += pick(4) == 0 ? "\x1b[?1049h" : (pick(4) == 0 ? "\x1b[?1049l" : "\x1b[?25l"); break;
        case 9: out += pick(3) == 0 ? "\x1b[J" : "\x1b[?25h"; break;
        default: out += words[pick(7)]; break;
      }
    }
    out += "\x1b[?1049l\x1b[r";  // end on the primary so scrollback is comparable too
    // Feed in random pieces, as reads would split it.
    for (size_t at = 0; at < out.size();) {
      size_t n = 1 + static_cast<size_t>(pick(64));
      feed(model, std::string_view(out).substr(at, n));
      at += n;
    }
    FreshTerminal fresh(cols, rows);
    CAPTURE(round);
    round_trip(model, fresh);
    check_scrollback(model, fresh);
  }
}
