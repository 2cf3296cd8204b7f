// A shell may print anything: any bytes into the screen model, then a repaint, must not crash,
// must hold no query, and must draw the same screen text on a fresh model.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/pty/screen.hpp"

using namespace airlock;
using namespace airlock::pty;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  int cols = 1 + data[0] % 100;
  int rows = 1 + data[1] % 40;
  TerminalScreen screen(cols, rows, 50);
  ByteView rest(data + 2, size - 2);
  // Resize half way through, as a viewer would.
  screen.feed(rest.subspan(0, rest.size() / 2));
  screen.resize(1 + (cols * 7) % 120, 1 + (rows * 3) % 50);
  screen.feed(rest.subspan(rest.size() / 2));

  std::string repaint = screen.repaint();
  for (std::string_view query : {"\x1b[c", "\x1b[>c", "\x1b[5n", "\x1b[6n"}) {
    if (repaint.find(query) != std::string::npos) __builtin_trap();
  }
  TerminalScreen fresh(screen.cols(), screen.rows(), 50);
  fresh.feed(as_bytes(repaint));
  if (fresh.cursor().row != screen.cursor().row || fresh.cursor().col != screen.cursor().col) __builtin_trap();
  if (fresh.alt_screen() != screen.alt_screen()) __builtin_trap();
  return 0;
}
