// Relay frame decoder: never crashes on any input, and whatever it accepts re-encodes to the same
// bytes (decode is exact: no field is dropped or normalised).
#include <cstdint>
#include <cstdlib>

#include "common/relay/protocol.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  airlock::ByteView input(data, size);
  auto frame = airlock::relay::decode(input);
  if (!frame) return 0;
  airlock::Bytes again = airlock::relay::encode(*frame);
  if (again.size() != size || !std::equal(again.begin(), again.end(), data)) std::abort();
  if (airlock::relay::encoded_size(*frame) != size) std::abort();
  return 0;
}
