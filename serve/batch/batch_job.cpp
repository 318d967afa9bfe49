#include "serve/batch/batch_job.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>

namespace moe::serve::batch {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

std::string read_all(const fs::path& p, const std::string& what) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::invalid_argument(fmt::format("{} {}: cannot open ({})", what, p.string(), std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string line_id(size_t line) { return "batch_req_" + std::to_string(line); }

}  // namespace

BatchInput read_input(const fs::path& input) {
  std::error_code ec;
  if (fs::is_directory(input, ec)) throw std::invalid_argument(fmt::format("--input {}: is a directory", input.string()));
  const std::string text = read_all(input, "--input");
  std::vector<BatchLine> out;
  std::unordered_map<std::string, size_t> seen;
  size_t pos = 0, n = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view raw(text.data() + pos, end - pos);
    pos = end + 1;
    ++n;
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    if (raw.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank lines separate nothing
    BatchLine l;
    l.line = n;
    const json j = json::parse(raw, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      l.error = fmt::format("line {}: not a JSON object (each line is one request: custom_id, method, url, body)", n);
      out.push_back(std::move(l));
      continue;
    }
    auto str = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string(); };
    l.custom_id = str("custom_id");
    l.url = str("url");
    if (l.custom_id.empty()) {
      l.error = fmt::format("line {}: 'custom_id' is missing or not a non-empty string", n);
    } else if (j.contains("method") && str("method") != "POST") {
      l.error = fmt::format("line {}: 'method' must be \"POST\"", n);
    } else if (l.url != "/v1/chat/completions" && l.url != "/v1/completions") {
      l.error = fmt::format("line {}: 'url' must be \"/v1/chat/completions\" or \"/v1/completions\", got {}", n,
                            j.contains("url") ? j["url"].dump().substr(0, 64) : "none");
    } else if (!j.contains("body") || !j["body"].is_object()) {
      l.error = fmt::format("line {}: 'body' must be an object (the request)", n);
    } else {
      const json& body = j["body"];
      l.body = body.dump();
      for (const char* k : {"max_tokens", "max_completion_tokens"})  // a bad value fails the request later
        if (body.contains(k) && body[k].is_number_integer() && body[k].get<int64_t>() > 0) l.max_tokens = body[k].get<int64_t>();
    }
    if (!l.custom_id.empty()) {
      auto [it, fresh] = seen.emplace(l.custom_id, n);
      if (!fresh)
        throw std::invalid_argument(fmt::format("--input {}: custom_id '{}' is on lines {} and {}; each must be unique",
                                                input.string(), l.custom_id.substr(0, 64), it->second, n));
    }
    out.push_back(std::move(l));
  }
  if (out.empty()) throw std::invalid_argument(fmt::format("--input {}: no requests (the file is empty)", input.string()));
  return {std::move(out), fmt::format("{:016x}", XXH64(text.data(), text.size(), 0))};
}

std::string model_fingerprint(const fs::path& model) {
  std::error_code ec;
  XXH64_hash_t h = 0;
  auto mix = [&](const void* p, size_t n) { h = XXH64(p, n, h); };
  if (fs::is_directory(model, ec)) {
    const std::string cfg = read_all(model / "config.json", "--model");
    mix(cfg.data(), cfg.size());
    std::vector<std::pair<std::string, uint64_t>> files;
    for (const auto& e : fs::directory_iterator(model, ec))
      if (e.path().extension() == ".safetensors") files.emplace_back(e.path().filename().string(), e.file_size(ec));
    std::sort(files.begin(), files.end());
    for (const auto& [name, size] : files) {
      mix(name.data(), name.size());
      mix(&size, sizeof size);
    }
  } else {
    const uint64_t size = fs::file_size(model, ec);
    mix(&size, sizeof size);
    std::ifstream in(model, std::ios::binary);
    std::string head(64 << 10, '\0');
    in.read(head.data(), std::streamsize(head.size()));
    mix(head.data(), size_t(in.gcount()));
  }
  return fmt::format("{:016x}", h);
}

namespace {

json identity_json(const JobIdentity& id) {
  return {{"input", id.input}, {"input_xxh64", id.input_hash}, {"model", id.model}, {"model_id", id.model_id}};
}

void write_state(const fs::path& state, const JobIdentity& id) {
  const fs::path tmp = state.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << identity_json(id).dump(2) << "\n";
    if (!f) throw std::runtime_error(fmt::format("cannot write {}", tmp.string()));
  }
  fs::rename(tmp, state);
}

// Resume: checks the state, drops a torn last line, returns the line numbers already done.
std::set<size_t> prepare_resume(const fs::path& output, const fs::path& state, const JobIdentity& id) {
  std::error_code ec;
  if (!fs::exists(state, ec))
    throw std::invalid_argument(fmt::format("--resume: {} is missing: this output was not written by moe batch, or "
                                            "the job never started; run without --resume",
                                            state.string()));
  const json s = json::parse(read_all(state, "--resume"), nullptr, false);
  if (s.is_discarded() || !s.is_object()) throw std::invalid_argument(fmt::format("--resume: {} is not valid JSON", state.string()));
  const json want = identity_json(id);
  for (const char* k : {"input_xxh64", "model_id"})
    if (s.value(k, std::string()) != want[k].get<std::string>())
      throw std::invalid_argument(fmt::format(
          "--resume: the {} differs from the one this output was started with ({} was {}, now {}); use a new --output",
          std::string(k) == "model_id" ? "model" : "input", k, s.value(k, std::string("?")), want[k].get<std::string>()));
  std::set<size_t> done;
  if (!fs::exists(output, ec)) return done;
  std::string text = read_all(output, "--output");
  const size_t keep = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  if (keep < text.size()) fs::resize_file(output, keep);  // a torn line from the killed run
  text.resize(keep);
  std::istringstream in(text);
  std::string l;
  for (size_t n = 1; std::getline(in, l); ++n) {
    const json j = json::parse(l, nullptr, false);
    const std::string rid = j.is_object() ? j.value("id", std::string()) : std::string();
    if (rid.rfind("batch_req_", 0) != 0)
      throw std::invalid_argument(fmt::format("--resume: {} line {} is not a moe batch result", output.string(), n));
    done.insert(size_t(std::stoull(rid.substr(10))));
  }
  return done;
}

void write_line(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t w = ::write(fd, s.data() + off, s.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw std::runtime_error(fmt::format("writing the output: {}", std::strerror(errno)));
    off += size_t(w);
  }
}

}  // namespace

double eta_seconds(const Progress& p, double secs, const TokenCounts& t) {
  const int64_t total = p.total - p.skipped;
  double f = total > 0 ? double(p.done) / double(total) : 0.0;
  if (p.max_tokens_left > 0 && t.admitted > 0) {
    const double prompts = double(t.admitted_prompt) * double(total) / double(std::min(t.admitted, total));
    f = std::max(f, std::min(1.0, double(t.prefilled + t.generated) / (prompts + double(p.max_tokens_left))));
  }
  return f > 0 && secs > 0 ? secs * (1.0 - f) / f : -1.0;
}

void run_job(const std::vector<BatchLine>& lines, const JobIdentity& id, const JobOptions& o, const Handler& handle,
             Progress& progress) {
  const fs::path state = o.output.string() + ".state.json";
  std::error_code ec;
  std::set<size_t> done;
  if (o.resume) {
    done = prepare_resume(o.output, state, id);
  } else {
    if (fs::exists(o.output, ec) && fs::file_size(o.output, ec) > 0)
      throw std::invalid_argument(fmt::format("--output {} exists: add --resume to continue that job, or choose another file",
                                              o.output.string()));
    write_state(state, id);
  }
  const int fd = ::open(o.output.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (o.resume ? 0 : O_TRUNC), 0644);
  if (fd < 0) throw std::invalid_argument(fmt::format("--output {}: {}", o.output.string(), std::strerror(errno)));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  std::vector<const BatchLine*> todo;
  for (const auto& l : lines)
    if (!done.count(l.line)) todo.push_back(&l);
  progress.total = int64_t(lines.size());
  progress.skipped = int64_t(lines.size() - todo.size());
  progress.max_tokens_left = 0;
  for (const BatchLine* l : todo) {
    if (!l->error.empty()) continue;  // answered at once with its error
    const int64_t cap = l->max_tokens == 0 ? o.max_tokens_cap
                        : o.max_tokens_cap > 0 ? std::min(l->max_tokens, o.max_tokens_cap) : l->max_tokens;
    if (cap == 0) {  // one request without a cap: the tokens say nothing about the end
      progress.max_tokens_left = 0;
      break;
    }
    progress.max_tokens_left += cap;
  }
  std::atomic<size_t> next{0};
  std::mutex write_m;
  std::string failure;  // an I/O error stops the job (guarded by write_m)
  auto worker = [&] {
    for (;;) {
      const size_t i = next.fetch_add(1);
      if (i >= todo.size()) return;
      const BatchLine& l = *todo[i];
      json out = {{"id", line_id(l.line)},
                  {"custom_id", l.custom_id.empty() ? json(nullptr) : json(l.custom_id)},
                  {"response", nullptr},
                  {"error", nullptr}};
      bool error = false;
      if (!l.error.empty()) {
        out["error"] = {{"code", "invalid_request"}, {"message", l.error}};
        error = true;
      } else {
        auto [status, body] = handle(l.url, l.body);
        json b = json::parse(body, nullptr, false);
        if (b.is_discarded()) b = body;
        const std::string rid = b.is_object() ? b.value("id", std::string()) : std::string();
        if (b.is_object() && b.contains("usage") && b["usage"].is_object()) {
          progress.prompt_tokens += b["usage"].value("prompt_tokens", int64_t(0));
          progress.completion_tokens += b["usage"].value("completion_tokens", int64_t(0));
        }
        out["response"] = {{"status_code", status}, {"request_id", rid}, {"body", std::move(b)}};
        error = status != 200;
      }
      const std::string text = out.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
      {
        std::lock_guard lk(write_m);
        if (!failure.empty()) return;
        try {
          write_line(fd, text);  // one write: a kill leaves whole lines (and at most one torn last)
        } catch (const std::exception& e) {
          failure = e.what();
          return;
        }
      }
      progress.errors += error;
      ++progress.done;
    }
  };
  std::vector<std::thread> threads;
  const size_t n = std::min<size_t>(size_t(std::max(o.workers, 1)), std::max<size_t>(todo.size(), 1));
  for (size_t t = 0; t < n; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  if (!failure.empty()) throw std::runtime_error(failure);
  ::fdatasync(fd);
}

}  // namespace moe::serve::batch
