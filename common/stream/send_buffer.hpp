// The bytes of one stream's sending direction that the peer has not acknowledged yet: written by
// the application, sent (maybe more than once), released when acked. Data frames refer to ranges
// of it by offset, so a retransmission copies from here and nothing is copied twice to keep it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>

#include "common/util/bytes.hpp"

namespace airlock::stream {

class SendBuffer {
 public:
  // Chunks are fixed-size so appends never move what is buffered, and freed as soon as acked, so
  // an idle stream holds no memory at all.
  static constexpr size_t kChunkSize = 16 * 1024;

  uint64_t begin_offset() const { return begin_; }  // first byte still held (= acked offset)
  uint64_t end_offset() const { return end_; }      // one past the last byte written
  uint64_t size() const { return end_ - begin_; }

  void append(ByteView data);
  // Copies [offset, offset + length) to dst; the range must be inside [begin, end).
  void copy_out(uint64_t offset, size_t length, uint8_t* dst) const;
  // Forgets everything before offset (clamped to [begin, end]).
  void release_until(uint64_t offset);

 private:
  std::deque<std::unique_ptr<uint8_t[]>> chunks_;
  size_t head_ = 0;  // where begin_ sits in chunks_.front()
  uint64_t begin_ = 0;
  uint64_t end_ = 0;
};

}  // namespace airlock::stream
