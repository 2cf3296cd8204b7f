// The relay's per-link receive buffers (relay/receive_buffers.hpp): lws's receive buffers come
// from page-aligned slots that commit only the pages a link writes, and go back to the kernel when
// the link closes; everything else lws allocates is plain malloc.
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include <doctest/doctest.h>

#include "relay/receive_buffers.hpp"

using airlock::relayd::ReceiveBufferPool;

namespace {

constexpr const char* kTag = "wsi->ws->rx_ubuf";  // lws 4.1's tag for a server link's buffer
const size_t kPage = static_cast<size_t>(sysconf(_SC_PAGESIZE));
constexpr size_t kBufferBytes = 64 * 1024 + 16 + 4;  // what lws asks for with a 64 KiB rx_buffer_size

// Pages of [p, p + bytes) that are resident in RAM.
size_t resident_pages(void* p, size_t bytes) {
  std::vector<unsigned char> v((bytes + kPage - 1) / kPage);
  REQUIRE(mincore(p, bytes, v.data()) == 0);
  size_t n = 0;
  for (unsigned char c : v) n += c & 1;
  return n;
}

}  // namespace

TEST_CASE("a link's receive buffer is page-aligned and commits only the pages written") {
  ReceiveBufferPool pool;
  std::vector<void*> links;
  for (int i = 0; i < 300; ++i) {  // more than one arena
    void* p = pool.reallocate(nullptr, kBufferBytes, kTag);
    REQUIRE(p != nullptr);
    CHECK(reinterpret_cast<uintptr_t>(p) % kPage == 0);
    CHECK(pool.owns(p));
    std::memset(p, 0xab, 300);  // an idle link: its hello and a keep-alive land in the first page
    links.push_back(p);
  }
  CHECK(pool.slots_in_use() == 300);
  for (void* p : links) CHECK(resident_pages(p, pool.slot_bytes()) == 1);

  // A bulk link writes the whole buffer; it can use all of it.
  std::memset(links[7], 0xcd, kBufferBytes);
  CHECK(resident_pages(links[7], pool.slot_bytes()) == pool.slot_bytes() / kPage);

  for (void* p : links) CHECK(pool.reallocate(p, 0, "lws_free") == nullptr);
  CHECK(pool.slots_in_use() == 0);
}

TEST_CASE("a closed link's pages go back to the kernel, and the next link starts from zeroes") {
  ReceiveBufferPool pool;
  void* p = pool.reallocate(nullptr, kBufferBytes, kTag);
  std::memset(p, 0x5a, kBufferBytes);
  pool.reallocate(p, 0, "lws_free");
  CHECK(resident_pages(p, pool.slot_bytes()) == 0);

  void* q = pool.reallocate(nullptr, kBufferBytes, kTag);
  CHECK(q == p);  // the slot is reused
  std::vector<uint8_t> zero(kBufferBytes, 0);
  CHECK(std::memcmp(q, zero.data(), kBufferBytes) == 0);  // nothing of the last link's bytes
  pool.reallocate(q, 0, "lws_free");
}

TEST_CASE("every other allocation is malloc's, and realloc keeps its contract") {
  ReceiveBufferPool pool;
  void* header = pool.reallocate(nullptr, 100, "ah");
  REQUIRE(header != nullptr);
  CHECK_FALSE(pool.owns(header));
  std::memcpy(header, "GET / HTTP/1.1", 14);
  header = pool.reallocate(header, 5000, "ah grow");
  REQUIRE(header != nullptr);
  CHECK(std::memcmp(header, "GET / HTTP/1.1", 14) == 0);
  CHECK(pool.reallocate(header, 0, "lws_free") == nullptr);
  CHECK(pool.reallocate(nullptr, 0, "nothing") == nullptr);

  // A receive buffer of a second size (another protocol) is malloc's too.
  void* first = pool.reallocate(nullptr, kBufferBytes, kTag);
  void* other = pool.reallocate(nullptr, 2048 + 20, kTag);
  CHECK(pool.owns(first));
  CHECK_FALSE(pool.owns(other));
  pool.reallocate(other, 0, "lws_free");

  // Growing a slot past its size moves the bytes to malloc and frees the slot.
  std::memset(first, 0x11, kBufferBytes);
  void* grown = pool.reallocate(first, pool.slot_bytes() + 1, "grow");
  REQUIRE(grown != nullptr);
  CHECK_FALSE(pool.owns(grown));
  CHECK(static_cast<uint8_t*>(grown)[kBufferBytes - 1] == 0x11);
  CHECK(pool.slots_in_use() == 0);
  pool.reallocate(grown, 0, "lws_free");
}
