#include "storage/vram/placement.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "storage/tier/budget.h"

namespace moe {

namespace {

constexpr uint64_t kMiB = 1ull << 20, kGiB = 1ull << 30;

std::string pct(uint64_t part, uint64_t whole) {
  return whole ? fmt::format("{:.0f}%", 100.0 * double(std::min(part, whole)) / double(whole)) : "-";
}

}  // namespace

uint64_t parse_vram_budget(std::string_view text, uint64_t total) { return parse_budget(text, total, "--vram-budget"); }

Placement plan_placement(const MachineInfo& machine, const ModelBytes& b, const PlacementFlags& f) {
  if (f.context < 1 || f.batch < 1) throw std::invalid_argument("placement: context and sequences must be at least 1");
  Placement p;
  p.gpu = machine.vram_free > 0 && !f.cpu_only;
  MachineInfo m = machine;  // with --vram-limit, the card it stands for
  if (f.vram_limit && p.gpu) {
    p.vram_limit = parse_size(*f.vram_limit, "--vram-limit");  // the card to stand for: never a percentage
    if (p.vram_limit > machine.vram_total)
      p.warnings.push_back(fmt::format("--vram-limit {} is more than the GPU's {}: the GPU's own size applies",
                                       format_bytes(p.vram_limit), format_bytes(machine.vram_total)));
    m.vram_total = std::min(m.vram_total, p.vram_limit);
    m.vram_free = std::min(m.vram_free, p.vram_limit);
  }
  p.kv_bytes = b.kv_bytes_per_token * uint64_t(f.context) * uint64_t(f.batch);
  const uint64_t step = uint64_t(std::max(b.top_k, 1)) * b.largest_expert;  // one step's pins
  p.ram_headroom = f.ram_headroom ? f.ram_headroom : std::max(2 * kGiB, m.ram_total / 10);

  if (p.gpu) {
    p.vram_headroom = f.vram_headroom ? f.vram_headroom : std::max(512 * kMiB, m.vram_total / 20);
    p.staging_bytes = f.staging_bytes ? f.staging_bytes : 4 * b.largest_expert;
    const uint64_t fixed = b.dense_bytes + p.kv_bytes + p.vram_headroom;
    if (m.vram_free < fixed + step)
      throw std::invalid_argument(fmt::format(
          "model does not fit the GPU: it needs {} (dense {} + KV {} for context {} x {} sequence(s) + headroom {} "
          "+ {} experts of one step), {} is free{}; free GPU memory{}, or run on the CPU with --device cpu",
          format_bytes(fixed + step), format_bytes(b.dense_bytes), format_bytes(p.kv_bytes), f.context, f.batch,
          format_bytes(p.vram_headroom), std::max(b.top_k, 1), format_bytes(m.vram_free),
          p.vram_limit ? fmt::format(" under --vram-limit {}", format_bytes(p.vram_limit)) : "",
          p.vram_limit ? ", raise --vram-limit" : ""));
    const uint64_t room = std::min(m.vram_free - fixed, b.expert_bytes);
    if (f.vram_budget) {
      p.vram_budget = parse_vram_budget(*f.vram_budget, b.expert_bytes);
      p.vram_from_flag = true;
      if (p.vram_limit && p.vram_budget > m.vram_free - fixed)  // an explicit cap is a promise
        throw std::invalid_argument(fmt::format(
            "--vram-budget {} does not fit under --vram-limit {}: {} are left after dense {}, KV {} and headroom {}; "
            "lower --vram-budget (or leave it out to plan it) or raise --vram-limit",
            format_bytes(p.vram_budget), format_bytes(p.vram_limit), format_bytes(m.vram_free - fixed),
            format_bytes(b.dense_bytes), format_bytes(p.kv_bytes), format_bytes(p.vram_headroom)));
      if (p.vram_budget > m.vram_free - fixed)
        p.warnings.push_back(fmt::format("--vram-budget {} is more than the {} free after dense weights, KV and "
                                         "headroom: allocating it may fail",
                                         format_bytes(p.vram_budget), format_bytes(m.vram_free - fixed)));
    } else {
      p.vram_budget = room;
    }
    p.all_in_vram = p.vram_budget >= b.expert_bytes;
  }

  // RAM: what the host must hold besides the RAM tier.
  const uint64_t host_fixed = p.ram_headroom + p.staging_bytes + (p.gpu ? 0 : b.dense_bytes + p.kv_bytes);
  if (m.ram_available < host_fixed + step)
    throw std::invalid_argument(fmt::format(
        "model does not fit in RAM: it needs {} ({}headroom {} + {} experts of one step{}), {} is available; "
        "{}",
        format_bytes(host_fixed + step),
        p.gpu ? "" : fmt::format("dense {} + KV {} for context {} x {} sequence(s) + ", format_bytes(b.dense_bytes),
                                 format_bytes(p.kv_bytes), f.context, f.batch),
        format_bytes(p.ram_headroom), std::max(b.top_k, 1),
        p.gpu ? fmt::format(" + pinned staging {}", format_bytes(p.staging_bytes)) : "", format_bytes(m.ram_available),
        "free memory"));
  const uint64_t ram_room = std::min(m.ram_available - host_fixed, b.expert_bytes);
  if (f.ram_budget) {
    p.ram_budget = parse_budget(*f.ram_budget, b.expert_bytes, "--ram-budget");
    p.ram_from_flag = true;
    if (p.ram_budget > m.ram_available - host_fixed)
      p.warnings.push_back(fmt::format("--ram-budget {} is more than the {} available after headroom{}: the system "
                                       "may swap",
                                       format_bytes(p.ram_budget), format_bytes(m.ram_available - host_fixed),
                                       p.gpu ? " and staging" : ", dense weights and KV"));
  } else if (p.all_in_vram) {
    // Every expert lives on the GPU: RAM only passes them through while loading.
    p.ram_budget = std::min(ram_room, step);
  } else {
    p.ram_budget = ram_room;
  }
  p.all_in_ram = p.ram_budget >= b.expert_bytes;
  return p;
}

std::string format_plan(const Placement& p, const MachineInfo& m, const ModelBytes& b, const PlacementFlags& f) {
  auto src = [](bool flag, const char* name) { return flag ? fmt::format("[{}]", name) : std::string("[auto]"); };
  const std::string limit = p.vram_limit ? fmt::format(", capped at {} [--vram-limit]", format_bytes(p.vram_limit)) : "";
  std::string s = fmt::format("placement: {}, RAM {} available of {}\n",
                              p.gpu ? fmt::format("GPU {} free of {}{}", format_bytes(m.vram_free), format_bytes(m.vram_total),
                                                  limit)
                                    : std::string(m.vram_free && f.cpu_only ? "GPU not used (--device cpu)" : "no GPU"),
                              format_bytes(m.ram_available), format_bytes(m.ram_total));
  const std::string dense_kv = fmt::format("dense {} + KV {} (context {} x batch {})", format_bytes(b.dense_bytes),
                                           format_bytes(p.kv_bytes), f.context, f.batch);
  if (p.gpu)
    s += fmt::format("  VRAM: {} + headroom {}; experts {} of {} ({}) {}\n", dense_kv, format_bytes(p.vram_headroom),
                     format_bytes(p.vram_budget), format_bytes(b.expert_bytes), pct(p.vram_budget, b.expert_bytes),
                     src(p.vram_from_flag, "--vram-budget"));
  s += fmt::format("  RAM:  {}experts {} of {} ({}){} + headroom {} {}\n", p.gpu ? "" : dense_kv + "; ",
                   format_bytes(p.ram_budget), format_bytes(b.expert_bytes), pct(p.ram_budget, b.expert_bytes),
                   p.gpu ? fmt::format(" + pinned staging {}", format_bytes(p.staging_bytes)) : "",
                   format_bytes(p.ram_headroom), src(p.ram_from_flag, "--ram-budget"));
  const char* where = p.all_in_vram  ? "all experts in VRAM: no cache machinery runs"
                      : p.all_in_ram ? (p.gpu ? "experts spill from VRAM to RAM" : "all experts in RAM")
                                     : (p.gpu ? "experts spill from VRAM to RAM and disk" : "experts spill from RAM to disk");
  s += fmt::format("  {}\n", where);
  for (const std::string& w : p.warnings) s += fmt::format("  warning: {}\n", w);
  return s;
}

MachineInfo parse_meminfo(std::string_view text) {
  MachineInfo m;
  bool total = false, avail = false;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    auto field = [&](std::string_view name, uint64_t& out) {
      if (line.rfind(name, 0) != 0) return false;
      const char* p = line.data() + name.size();
      const char* end = line.data() + line.size();
      while (p < end && *p == ' ') ++p;
      uint64_t kib = 0;
      if (std::from_chars(p, end, kib).ec != std::errc()) return false;
      out = kib * 1024;
      return true;
    };
    total = field("MemTotal:", m.ram_total) || total;
    avail = field("MemAvailable:", m.ram_available) || avail;
  }
  if (!total || !avail)
    throw std::runtime_error(
        "/proc/meminfo: no MemTotal or MemAvailable line to plan the GPU's budget with; pass --vram-budget "
        "(without --vram-limit) or run with --device cpu");
  return m;
}

MachineInfo probe_host_memory() {
  std::ifstream f("/proc/meminfo");
  if (!f)
    throw std::runtime_error(
        "cannot read /proc/meminfo to plan the GPU's budget with; pass --vram-budget (without --vram-limit) or run "
        "with --device cpu");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_meminfo(ss.str());
}

}  // namespace moe
