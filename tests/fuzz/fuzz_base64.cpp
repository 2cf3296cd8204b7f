// Base64 decoders on arbitrary text: they never crash, and whatever they accept re-encodes to the
// same text (the decoders are strict, so each byte string has exactly one accepted spelling).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/crypto/crypto.hpp"

using namespace airlock;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (auto decoded = crypto::base64_decode(text)) {
    if (crypto::base64_encode(*decoded) != text) __builtin_trap();
  }
  if (auto decoded = crypto::base64url_decode(text)) {
    if (crypto::base64url_encode(*decoded) != text) __builtin_trap();
  }
  if (auto key = crypto::key_from_base64(text)) {
    if (crypto::key_to_base64(*key) != text) __builtin_trap();
  }
  return 0;
}
