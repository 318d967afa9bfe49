// Where the VRAM tier gets an expert's bytes from: host memory. The GPU engine uses
// TierRecordSource (a pack's decoded records in the RAM tier, handed out as they are) or
// RecordSource (any ExpertSource, repacked); tests use fakes that fill each expert with a
// known pattern.
#pragma once
#include <cstdint>
#include <cstring>

#include "storage/expert_key.h"

namespace moe {

class HostExpertSource {
 public:
  virtual ~HostExpertSource() = default;
  virtual int n_layers() const = 0;
  virtual int n_experts(int layer) const = 0;  // 0 for dense layers
  virtual uint64_t bytes(ExpertKey k) const = 0;  // the expert's contiguous record
  // [bytes(k)] the expert's bytes in host memory (pageable: the tier copies them into a
  // pinned staging buffer), valid until release(k). May block on a disk read.
  virtual const uint8_t* acquire(ExpertKey k) = 0;
  virtual void release(ExpertKey k) = 0;
  // True when the copy engine may read acquire(k)'s bytes directly: the VRAM tier then copies
  // from them with no staging copy and calls release(k) only once that copy has finished.
  // Fastest (and truly asynchronous) when that memory is page-locked; from pageable memory
  // CUDA stages the bytes itself, which is still correct.
  virtual bool direct_copy() const { return false; }
  // Writes the record into dst [bytes(k)] (a pinned staging buffer). The default goes through
  // acquire/release; a source that assembles records (RecordSource) writes straight into dst,
  // saving a host copy of every expert moved.
  virtual void copy_to(ExpertKey k, uint8_t* dst) {
    const uint8_t* src = acquire(k);
    std::memcpy(dst, src, size_t(bytes(k)));
    release(k);
  }
};

}  // namespace moe
