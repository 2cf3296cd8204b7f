#include "common/util/heap.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <mutex>

namespace airlock::heap {

void keep_freed_memory_between_bursts() {
#if defined(__GLIBC__)
  static std::once_flag once;
  std::call_once(once, [] { mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024); });
#endif
}

}  // namespace airlock::heap
