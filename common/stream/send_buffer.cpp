#include "common/stream/send_buffer.hpp"

#include <algorithm>
#include <cstring>

namespace airlock::stream {

void SendBuffer::append(ByteView data) {
  size_t done = 0;
  while (done < data.size()) {
    size_t at = static_cast<size_t>(end_ - begin_) + head_;  // position relative to chunk 0
    size_t chunk = at / kChunkSize;
    size_t within = at % kChunkSize;
    // Not zeroed (make_unique<T[]> would): every byte is written before it is read.
    if (chunk == chunks_.size()) chunks_.push_back(std::make_unique_for_overwrite<uint8_t[]>(kChunkSize));
    size_t n = std::min(kChunkSize - within, data.size() - done);
    std::memcpy(chunks_[chunk].get() + within, data.data() + done, n);
    done += n;
    end_ += n;
  }
}

void SendBuffer::copy_out(uint64_t offset, size_t length, uint8_t* dst) const {
  size_t at = static_cast<size_t>(offset - begin_) + head_;
  while (length > 0) {
    size_t chunk = at / kChunkSize;
    size_t within = at % kChunkSize;
    size_t n = std::min(kChunkSize - within, length);
    std::memcpy(dst, chunks_[chunk].get() + within, n);
    dst += n;
    at += n;
    length -= n;
  }
}

void SendBuffer::release_until(uint64_t offset) {
  offset = std::clamp(offset, begin_, end_);
  if (offset == begin_) return;
  if (offset == end_) {
    // Empty: drop every chunk, including a partly written last one.
    chunks_.clear();
    head_ = 0;
    begin_ = end_;
    return;
  }
  size_t at = static_cast<size_t>(offset - begin_) + head_;
  size_t drop = at / kChunkSize;
  chunks_.erase(chunks_.begin(), chunks_.begin() + static_cast<std::ptrdiff_t>(drop));
  head_ = at % kChunkSize;
  begin_ = offset;
}

}  // namespace airlock::stream
