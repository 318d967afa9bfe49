// Routing traces: which experts every MoE layer chose at every forward step, with the gate
// weights and what the predictor had guessed for that layer-step. The engine records them
// (TraceWriter, one JSON line per layer-step); `moe trace-sim` replays them against cache
// policies (prefetch/cache_sim.h). The format is in docs/trace-format.md.
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "storage/output_file.h"

namespace moe {

// Line 1 of a trace. Per-layer vectors have one entry per decoder layer, dense ones included.
struct TraceHeader {
  std::string model;                   // path of the model that was run
  int n_layers = 0;                    // decoder layers
  std::vector<int> n_experts;          // [n_layers] routed experts; 0 for a dense layer
  int top_k = 0;                       // experts chosen per token
  std::vector<uint64_t> expert_bytes;  // [n_layers] bytes of one expert in the RAM tier; 0: dense or unknown
  int lookahead = 0;                   // prediction distances recorded in TraceRecord::predicted
  std::string predictor = "none";      // gate | history | blend | none
};

// One (forward step, MoE layer).
struct TraceRecord {
  int64_t step = 0;
  int layer = 0;                  // decoder layer index (a MoE layer)
  std::vector<int32_t> seq, pos;  // [n_tokens] sequence id and position of each token
  std::vector<int32_t> experts;   // [n_tokens, top_k] chosen ids, best first
  std::vector<float> weights;     // [n_tokens, top_k] their gate weights
  // [<= lookahead][ranked ids] predicted[d-1]: the ranking for this layer-step made d MoE
  // layers earlier; empty lists mean no prediction at that distance.
  std::vector<std::vector<int32_t>> predicted;
  int n_tokens() const { return int(seq.size()); }
};

// Appends JSON lines to a new file. Used from one thread. Weights are written with 5
// significant digits: traces stay small and nothing downstream needs more.
// The trace is streamed into a temporary beside `path` (storage/output_file.h) that flush()
// renames to `path`; later records append to the renamed file. So `path` only ever holds a
// whole trace of the run up to a flush, a run killed before its first flush (SIGINT) leaves
// nothing, and a device, directory or FIFO at `path` is refused before the run starts.
class TraceWriter {
 public:
  // Throws std::invalid_argument for an inconsistent header, std::runtime_error naming the
  // path when the file cannot be created (or `path` is not a regular file, or is one of
  // `inputs`: the model files).
  TraceWriter(const std::filesystem::path& path, const TraceHeader& h,
              std::span<const std::filesystem::path> inputs = {});
  // Throws std::invalid_argument when the record does not fit the header (layer, expert ids,
  // row lengths, token counts, non-finite weights), std::runtime_error on a write failure.
  void write(const TraceRecord& r);
  void flush();  // writes what is buffered and publishes the file at `path`
  ~TraceWriter();  // flushes; errors there are lost, call flush() to see them
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

 private:
  void drain();  // writes buf_ to the file
  std::filesystem::path path_;
  TraceHeader header_;
  OutputFile out_;
  std::string buf_;  // lines not yet written (up to about 1 MiB)
};

struct Trace {
  TraceHeader header;
  std::vector<TraceRecord> records;  // in execution order
};

// Reads and validates a whole trace. Throws std::runtime_error "PATH:LINE: what is wrong"
// (bad JSON, missing or unknown header, layer out of range or dense, expert id out of range,
// row length != top_k, token counts that disagree, steps decreasing, layers not ascending
// within a step).
Trace read_trace(const std::filesystem::path& path);

}  // namespace moe
