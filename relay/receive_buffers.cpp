#include "relay/receive_buffers.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iterator>

#include <libwebsockets.h>

#include "common/util/log.hpp"

namespace airlock::relayd {

namespace {

size_t page_size() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

size_t round_to_pages(size_t n) { return (n + page_size() - 1) / page_size() * page_size(); }

// lws 4.1 tags a server link's buffer "wsi->ws->rx_ubuf" (earlier releases "rx_ubuf"). Under any
// other tag the buffer simply comes from malloc, as without this pool.
bool is_receive_buffer(const char* reason) { return reason && std::strstr(reason, "rx_ubuf") != nullptr; }

void* lws_allocator(void* ptr, size_t size, const char* reason) {
  return ReceiveBufferPool::process_pool().reallocate(ptr, size, reason);
}

}  // namespace

ReceiveBufferPool::~ReceiveBufferPool() {
  for (uintptr_t base : arenas_) munmap(reinterpret_cast<void*>(base), arena_bytes());
}

ReceiveBufferPool& ReceiveBufferPool::process_pool() {
  // Never destroyed: lws may free its last buffers while the process exits.
  static auto* pool = new ReceiveBufferPool;
  return *pool;
}

void ReceiveBufferPool::install_for_lws() { lws_set_allocator(lws_allocator); }

void* ReceiveBufferPool::reallocate(void* ptr, size_t size, const char* reason) {
  if (ptr && owns(ptr)) {
    if (size == 0) {
      give_back(ptr);
      return nullptr;
    }
    if (size <= slot_bytes_) return ptr;
    void* moved = std::malloc(size);
    if (!moved) return nullptr;  // realloc's contract: the old block stays valid
    std::memcpy(moved, ptr, slot_bytes_);
    give_back(ptr);
    return moved;
  }
  if (size == 0) {
    std::free(ptr);
    return nullptr;
  }
  if (!ptr && is_receive_buffer(reason)) {
    if (void* slot = take_slot(size)) return slot;
  }
  return std::realloc(ptr, size);
}

void* ReceiveBufferPool::take_slot(size_t size) {
  const size_t bytes = round_to_pages(size);
  if (slot_bytes_ == 0) slot_bytes_ = bytes;
  if (bytes != slot_bytes_) return nullptr;  // a second size: malloc serves it
  if (free_.empty()) {
    void* base = mmap(nullptr, arena_bytes(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
      LOG_WARN("relay", "cannot map %zu bytes for link receive buffers (%s); using malloc", arena_bytes(),
               std::strerror(errno));
      return nullptr;
    }
    auto* b = static_cast<uint8_t*>(base);
    arenas_.insert(reinterpret_cast<uintptr_t>(b));
    // Lowest address last, so it is handed out first.
    for (size_t i = kSlotsPerArena; i-- > 0;) free_.push_back(b + i * slot_bytes_);
  }
  void* slot = free_.back();
  free_.pop_back();
  ++in_use_;
  return slot;
}

void ReceiveBufferPool::give_back(void* p) {
  // The pages the link touched go back to the kernel now; the next link starts from zero pages.
  madvise(p, slot_bytes_, MADV_DONTNEED);
  free_.push_back(p);
  --in_use_;
}

bool ReceiveBufferPool::owns(const void* p) const {
  const auto addr = reinterpret_cast<uintptr_t>(p);
  auto it = arenas_.upper_bound(addr);  // the first arena after p; p can only be in the one before
  return it != arenas_.begin() && addr < *std::prev(it) + arena_bytes();
}

}  // namespace airlock::relayd
