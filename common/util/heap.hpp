// How the process's heap behaves under bulk traffic.
#pragma once

namespace airlock::heap {

// Bulk data crosses the relay, the agent and the CLI in 16-64 KiB buffers that are freed as soon
// as they are written. With glibc's default trim threshold (128 KiB, adjusted on the fly) the heap
// top went back to the kernel after every burst and was faulted in again on the next: on a
// port-forward download ~0.8 ns of the CLI's ~2.3 ns per byte, and in the relay a brk() pair and
// 16 zero-filled page faults per 64 KiB packet (perf, strace). Freed heap up to 8 MiB is kept.
// Safe to call more than once; a no-op where the C library is not glibc.
void keep_freed_memory_between_bursts();

}  // namespace airlock::heap
