// Each link's WebSocket receive buffer, on pages of its own.
//
// libwebsockets 4.1 reads a link's socket at most its protocol's rx_buffer_size at a time, so the
// buffer's size sets how many recv() calls and callbacks a bulk transfer costs: 2 KiB makes 32 of
// each per 64 KiB tunnel packet, and the relay spent more CPU on that than on everything else it
// does with the bytes. A buffer big enough for a whole packet, though, costs idle links dearly when
// it comes from malloc's heap: the allocator touches the chunk's first and last page and the
// chunks around it share pages, so every link pays for memory it never reads into.
//
// So lws's allocator is routed through here (lws_set_allocator) and the receive buffers, which lws
// tags when it allocates them, become page-aligned slots in large anonymous mappings. A link
// commits only the pages its frames reach: an idle one the first, a bulk one the whole slot. When
// a link closes its slot's pages go back to the kernel (MADV_DONTNEED) before another link reuses
// it. Every other lws allocation goes to malloc as before.
//
// The relay runs lws on one thread; this pool is not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <vector>

namespace airlock::relayd {

class ReceiveBufferPool {
 public:
  ReceiveBufferPool() = default;
  ~ReceiveBufferPool();
  ReceiveBufferPool(const ReceiveBufferPool&) = delete;
  ReceiveBufferPool& operator=(const ReceiveBufferPool&) = delete;

  // lws's allocator contract: realloc(ptr, size); size 0 frees. `reason` is lws's tag.
  void* reallocate(void* ptr, size_t size, const char* reason);

  // Routes every lws allocation in this process through the process-wide pool. Call before the
  // first lws context is created.
  static void install_for_lws();
  static ReceiveBufferPool& process_pool();

  size_t slots_in_use() const { return in_use_; }
  size_t slot_bytes() const { return slot_bytes_; }
  bool owns(const void* p) const;

 private:
  void* take_slot(size_t size);
  void give_back(void* p);
  size_t arena_bytes() const { return slot_bytes_ * kSlotsPerArena; }

  static constexpr size_t kSlotsPerArena = 256;
  size_t slot_bytes_ = 0;  // set by the first receive buffer; one size per process (one protocol)
  std::set<uintptr_t> arenas_;  // base addresses of the mappings, each arena_bytes() long
  std::vector<void*> free_;
  size_t in_use_ = 0;
};

}  // namespace airlock::relayd
