// Base64 (RFC 4648 §4, padded) for WireGuard keys and base64url (§5, unpadded) for tokens.
//
// Private keys pass through here (`wg genkey` output, issuer key files), so characters are mapped
// with arithmetic rather than table lookups or branches on their value. Decoding is strict: there
// is exactly one accepted spelling of any byte string, which keeps token and key comparisons
// meaningful and makes decode(encode(x)) == x and encode(decode(s)) == s both hold.
#include <cstdio>

#include "common/crypto/crypto.hpp"

namespace airlock::crypto {
namespace {

// 0..63 -> its character. For x > 25 etc. the shifted difference is all ones, selecting the
// adjustment; C++20 defines >> on negative ints as arithmetic.
char encode_char(unsigned value, bool url) {
  const int x = static_cast<int>(value);
  int c = x + 'A';
  c += ((25 - x) >> 8) & ('a' - 26 - 'A');         // 26..51 -> 'a'..'z'
  c += ((51 - x) >> 8) & ('0' - 52 - ('a' - 26));  // 52..61 -> '0'..'9'
  const int c62 = url ? '-' : '+';
  const int c63 = url ? '_' : '/';
  c += ((61 - x) >> 8) & (c62 - 62 - ('0' - 52));  // 62 -> '+' or '-'
  c += ((62 - x) >> 8) & (c63 - c62 - 1);          // 63 -> '/' or '_'
  return static_cast<char>(c);
}

// A character -> 0..63, or -1 when it is not in the alphabet. Each line adds (value + 1) when
// the character is in its range: ((lo - 1 - ch) & (ch - hi - 1)) is negative only inside it.
int decode_char(uint8_t byte, bool url) {
  const int ch = byte;
  int v = -1;
  v += (((64 - ch) & (ch - 91)) >> 8) & (ch - 64);   // 'A'..'Z' -> 0..25
  v += (((96 - ch) & (ch - 123)) >> 8) & (ch - 70);  // 'a'..'z' -> 26..51
  v += (((47 - ch) & (ch - 58)) >> 8) & (ch + 5);    // '0'..'9' -> 52..61
  const int c62 = url ? '-' : '+';
  const int c63 = url ? '_' : '/';
  v += (((c62 - 1 - ch) & (ch - c62 - 1)) >> 8) & 63;  // -> 62
  v += (((c63 - 1 - ch) & (ch - c63 - 1)) >> 8) & 64;  // -> 63
  return v;
}

std::string encode(ByteView data, bool url) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const uint32_t n = uint32_t{data[i]} << 16 | uint32_t{data[i + 1]} << 8 | data[i + 2];
    for (int shift = 18; shift >= 0; shift -= 6) out.push_back(encode_char((n >> shift) & 63, url));
  }
  const size_t rest = data.size() - i;
  if (rest == 1) {
    const uint32_t n = uint32_t{data[i]} << 16;
    out.push_back(encode_char((n >> 18) & 63, url));
    out.push_back(encode_char((n >> 12) & 63, url));
    if (!url) out.append("==");
  } else if (rest == 2) {
    const uint32_t n = uint32_t{data[i]} << 16 | uint32_t{data[i + 1]} << 8;
    out.push_back(encode_char((n >> 18) & 63, url));
    out.push_back(encode_char((n >> 12) & 63, url));
    out.push_back(encode_char((n >> 6) & 63, url));
    if (!url) out.push_back('=');
  }
  return out;
}

// Says precisely what is wrong, once decoding has already failed (so timing no longer matters).
Error describe_failure(std::string_view text, size_t data_len, bool url) {
  const char* name = url ? "base64url" : "base64";
  for (size_t i = 0; i < data_len; ++i) {
    const auto byte = static_cast<uint8_t>(text[i]);
    if (decode_char(byte, url) < 0) {
      char message[160];
      if (byte == '=') {
        std::snprintf(message, sizeof message, "%s: '=' at offset %zu is %s", name, i,
                      url ? "not allowed (base64url is unpadded)" : "padding in the middle of the text");
      } else if (byte > 0x20 && byte < 0x7f) {
        std::snprintf(message, sizeof message, "%s: character '%c' at offset %zu is not in the alphabet", name,
                      static_cast<char>(byte), i);
      } else {
        std::snprintf(message, sizeof message, "%s: byte 0x%02x at offset %zu is not in the alphabet", name,
                      static_cast<unsigned>(byte), i);
      }
      return make_error(message);
    }
  }
  return make_error(std::string(name) + ": non-canonical encoding (unused bits of the last character are not zero)");
}

Result<Bytes> decode(std::string_view text, bool url) {
  const char* name = url ? "base64url" : "base64";
  size_t data_len = text.size();
  if (!url) {
    if (text.size() % 4 != 0) {
      return make_error(std::string(name) + ": length " + std::to_string(text.size()) + " is not a multiple of 4");
    }
    // Up to two '=' at the end; a '=' anywhere else fails as a character outside the alphabet.
    if (data_len > 0 && text[data_len - 1] == '=') --data_len;
    if (data_len > 0 && text[data_len - 1] == '=' && data_len % 4 == 3) --data_len;
  }
  const size_t rem = data_len % 4;
  if (rem == 1) {
    return make_error(std::string(name) + ": length " + std::to_string(text.size()) +
                      " cannot be produced by an encoder");
  }
  Bytes out(data_len / 4 * 3 + (rem == 0 ? 0 : rem - 1));
  int invalid = 0;      // negative once any character is outside the alphabet
  int noncanonical = 0; // nonzero once the unused low bits of the last character are set
  auto value = [&](size_t i) {
    const int v = decode_char(static_cast<uint8_t>(text[i]), url);
    invalid |= v;
    return static_cast<uint32_t>(v & 63);
  };
  size_t o = 0, i = 0;
  for (; i + 4 <= data_len; i += 4) {
    const uint32_t n = value(i) << 18 | value(i + 1) << 12 | value(i + 2) << 6 | value(i + 3);
    out[o++] = static_cast<uint8_t>(n >> 16);
    out[o++] = static_cast<uint8_t>(n >> 8);
    out[o++] = static_cast<uint8_t>(n);
  }
  if (rem == 2) {
    const uint32_t a = value(i), b = value(i + 1);
    out[o++] = static_cast<uint8_t>(a << 2 | b >> 4);
    noncanonical |= static_cast<int>(b & 0x0f);
  } else if (rem == 3) {
    const uint32_t a = value(i), b = value(i + 1), c = value(i + 2);
    out[o++] = static_cast<uint8_t>(a << 2 | b >> 4);
    out[o++] = static_cast<uint8_t>(b << 4 | c >> 2);
    noncanonical |= static_cast<int>(c & 0x03);
  }
  if ((invalid < 0) | (noncanonical != 0)) {
    wipe(out.data(), out.size());
    return describe_failure(text, data_len, url);
  }
  return out;
}

}  // namespace

std::string base64_encode(ByteView data) { return encode(data, false); }
std::string base64url_encode(ByteView data) { return encode(data, true); }
Result<Bytes> base64_decode(std::string_view text) { return decode(text, false); }
Result<Bytes> base64url_decode(std::string_view text) { return decode(text, true); }

std::string key_to_base64(ByteView key32) { return encode(key32, false); }

Result<Key> key_from_base64(std::string_view text) {
  if (text.size() != 44) {
    return make_error("a key is 44 characters of base64 (as `wg genkey` prints), got " +
                      std::to_string(text.size()));
  }
  Result<Bytes> bytes = decode(text, false);
  if (!bytes) return make_error("key: " + bytes.error().message);
  if (bytes->size() != kKeySize) {  // "…==" at 44 characters decodes to 31 bytes
    wipe(bytes->data(), bytes->size());
    return make_error("a key is 32 bytes, this base64 holds " + std::to_string(bytes->size()));
  }
  Key key{};
  std::copy(bytes->begin(), bytes->end(), key.begin());
  wipe(bytes->data(), bytes->size());
  return key;
}

}  // namespace airlock::crypto
