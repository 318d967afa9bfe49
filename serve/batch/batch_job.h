// moe batch: OpenAI batch JSONL in, one result line per request out, resumable.
//
// Input lines: {"custom_id", "method": "POST", "url": "/v1/chat/completions" | "/v1/completions",
// "body": {...}}. Output lines, appended as each request finishes (any order):
// {"id": "batch_req_<line>", "custom_id", "response": {"status_code", "request_id", "body"} | null,
//  "error": {"code", "message"} | null}. A malformed line becomes an error line; duplicate
// custom_ids are refused before anything runs.
//
// Crash safety: each result line goes out in one write(); a job killed at any point leaves
// whole lines and at most one torn last line. `resume` drops the torn line and skips every line
// id already written, after checking (<output>.state.json) that the input and the model are the
// ones the job started with. No line is written twice.
#pragma once
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace moe::serve::batch {

struct BatchLine {
  size_t line = 0;         // 1-based line number in the input
  std::string custom_id;   // empty when the line has none (then it is an error line)
  std::string url;
  std::string body;        // the body's JSON text
  std::string error;       // why the line cannot run ("" when it can)
  int64_t max_tokens = 0;  // the body's max_tokens or max_completion_tokens (0: not set)
};

struct BatchInput {
  std::vector<BatchLine> lines;
  std::string xxh64;  // of the file's bytes (hex): what --resume checks
};
// Reads and checks the input. Throws std::invalid_argument for an unreadable or empty input,
// or duplicate custom_ids (naming both lines).
BatchInput read_input(const std::filesystem::path& input);

// What a resumed job must match.
struct JobIdentity {
  std::string input;       // the input path as given
  std::string input_hash;  // xxh64 of its bytes (hex)
  std::string model;       // the model path as given
  std::string model_id;    // what the model is (e.g. its config's hash): a different model refuses
};
// A model's fingerprint for JobIdentity::model_id: a directory's config.json and weight file
// sizes, or a file's size and first 64 KiB.
std::string model_fingerprint(const std::filesystem::path& model);

// One request through the server's handlers: (HTTP status, response or error body JSON).
using Handler = std::function<std::pair<int, std::string>(const std::string& url, const std::string& body)>;

struct Progress {
  std::atomic<int64_t> done{0}, errors{0}, skipped{0};  // skipped: already in the output (resume)
  std::atomic<int64_t> prompt_tokens{0}, completion_tokens{0};
  int64_t total = 0;
  // The most tokens the requests this run takes on may generate: the sum of their caps (their
  // max_tokens, or JobOptions::max_tokens_cap), 0 when one of them has none. Set by run_job.
  int64_t max_tokens_left = 0;
};

// What the scheduler has done so far, for the ETA.
struct TokenCounts {
  int64_t admitted = 0;         // requests admitted (finished ones included)
  int64_t admitted_prompt = 0;  // their prompt tokens, less those the prefix cache served
  int64_t prefilled = 0, generated = 0;
};
// Seconds left after `secs`, from the share of the work done: the larger of the requests' share
// and, when every request has a cap (Progress::max_tokens_left), the share of tokens through the
// engine, prompt and generated, of all there may be (the prompts not yet admitted counted at the
// admitted ones' mean). The requests alone say nothing when all of them run at once: none
// finishes until near the end. Negative when nothing is known yet.
double eta_seconds(const Progress& p, double secs, const TokenCounts& t);

struct JobOptions {
  std::filesystem::path output;
  bool resume = false;
  int workers = 64;           // requests in flight (the scheduler batches them)
  int64_t max_tokens_cap = 0;  // --max-tokens: the most tokens any request may generate (0: none)
};

// Runs every line not yet in the output through `handle` on `workers` threads, appending a
// result line as each finishes. Throws std::invalid_argument when the output exists without
// `resume`, or when `resume` finds a different input or model.
void run_job(const std::vector<BatchLine>& lines, const JobIdentity& id, const JobOptions& o, const Handler& handle,
             Progress& progress);

}  // namespace moe::serve::batch
