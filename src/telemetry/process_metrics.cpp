#include "telemetry/process_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <thread>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

namespace llmq::telemetry {
namespace {

void gauge_line(std::string& out, const char* name, const char* help, const char* type,
                double v) {
  expo::header(out, name, help, type);
  out += std::string(name) + ' ' + expo::format_value(v) + '\n';
}

// Fields of /proc/self/stat after the command name (which may hold spaces), so fields[0] is
// field 3 (state) of proc(5).
std::vector<std::string> self_stat_fields() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  const auto close = line.rfind(')');
  std::vector<std::string> fields;
  if (close == std::string::npos) return fields;
  std::istringstream rest(line.substr(close + 1));
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;
}

// A number from /proc/stat or /proc/meminfo: the first value on the line starting with `key`.
std::optional<double> proc_value(const char* path, const std::string& key) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.compare(0, key.size(), key) != 0) continue;
    std::istringstream fields(line.substr(key.size()));
    double v = 0;
    if (fields >> v) return v;
  }
  return std::nullopt;
}

std::int64_t open_fds() {
  std::error_code ec;
  std::int64_t n = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++n;
  }
  return n - 1;  // the directory iterator's own descriptor
}

// (b - a) / span for two optional counters; nullopt when either is missing or span is empty.
std::optional<double> rate(const std::optional<double>& a, const std::optional<double>& b,
                           double span) {
  if (!a || !b || span <= 0) return std::nullopt;
  return (*b - *a) / span;
}

}  // namespace

ResourceSampler::ResourceSampler() : prev_at_(std::chrono::steady_clock::now()), prev_(read_proc()) {}

ResourceUse ResourceSampler::sample() {
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - prev_at_).count();
  const ProcReading proc = read_proc();
  ResourceUse use;
  if (proc.rss_bytes) use.process_rss_bytes = std::llround(*proc.rss_bytes);
  if (proc.host_memory_used_bytes) use.host_memory_used_bytes = std::llround(*proc.host_memory_used_bytes);
  if (seconds < kMinCpuSpanSeconds) return use;  // the next sample measures from prev_ still

  const double cores = static_cast<double>(std::max(1u, std::thread::hardware_concurrency()));
  if (auto cpu = rate(prev_.cpu_seconds, proc.cpu_seconds, seconds))
    use.process_cpu_pct = std::clamp(*cpu / cores, 0.0, 1.0);  // a tick of rounding past 100 %
  const auto busy = rate(prev_.host_busy_jiffies, proc.host_busy_jiffies, 1);
  const auto total = rate(prev_.host_total_jiffies, proc.host_total_jiffies, 1);
  if (busy && total && *total > 0) use.host_cpu_pct = std::clamp(*busy / *total, 0.0, 1.0);
  prev_at_ = now;
  prev_ = proc;
  return use;
}

ProcReading read_proc() {
  ProcReading r;
  const std::vector<std::string> f = self_stat_fields();
  if (f.size() > 21) {  // field numbers as in collect_process
    r.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
    r.rss_bytes = std::stod(f[21]) * static_cast<double>(sysconf(_SC_PAGESIZE));
  }
  std::ifstream in("/proc/stat");
  std::string cpu;
  double v[8] = {};  // user nice system idle iowait irq softirq steal
  if (in >> cpu && cpu == "cpu") {
    double total = 0;
    for (auto& x : v) {
      in >> x;
      total += x;
    }
    r.host_total_jiffies = total;
    r.host_busy_jiffies = total - v[3] - v[4];
  }
  const auto total_kb = proc_value("/proc/meminfo", "MemTotal:");
  const auto avail_kb = proc_value("/proc/meminfo", "MemAvailable:");
  if (total_kb && avail_kb) r.host_memory_used_bytes = (*total_kb - *avail_kb) * 1024;
  return r;
}

void ProcessCollector::collect(std::string& out) const {
  collect_process(out);
  collect_host(out);
}

void ProcessCollector::collect_process(std::string& out) const {
  const std::vector<std::string> f = self_stat_fields();
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  // proc(5) numbers: utime 14, stime 15, starttime 22, vsize 23, rss 24; f[0] is field 3.
  if (f.size() > 21) {
    gauge_line(out, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
               "counter", (std::stod(f[11]) + std::stod(f[12])) / tick);
    gauge_line(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge",
               std::stod(f[20]));
    gauge_line(out, "process_resident_memory_bytes", "Resident memory size in bytes.", "gauge",
               std::stod(f[21]) * page);
    if (const auto btime = proc_value("/proc/stat", "btime")) {
      gauge_line(out, "process_start_time_seconds",
                 "Start time of the process since unix epoch in seconds.", "gauge",
                 *btime + std::stod(f[19]) / tick);
    }
  }
  gauge_line(out, "process_open_fds", "Number of open file descriptors.", "gauge",
             static_cast<double>(open_fds()));
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    gauge_line(out, "process_max_fds", "Maximum number of open file descriptors.", "gauge",
               static_cast<double>(lim.rlim_cur));
  }
}

void ProcessCollector::collect_host(std::string& out) const {
  std::ifstream in("/proc/stat");
  std::string cpu;
  std::uint64_t v[8] = {};  // user nice system idle iowait irq softirq steal
  if (in >> cpu && cpu == "cpu") {
    for (auto& x : v) in >> x;
    std::uint64_t total = 0;
    for (auto x : v) total += x;
    const std::uint64_t busy = total - v[3] - v[4];
    std::lock_guard lock(mu_);
    const std::uint64_t d_total = total - prev_total_;
    const std::uint64_t d_busy = busy - prev_busy_;
    // Two scrapes within one jiffy: no new information, report the since-boot share.
    const double ratio = d_total > 0 ? static_cast<double>(d_busy) / static_cast<double>(d_total)
                         : total > 0 ? static_cast<double>(busy) / static_cast<double>(total)
                                     : 0.0;
    prev_total_ = total;
    prev_busy_ = busy;
    gauge_line(out, "llmq_host_cpu_usage_ratio",
               "Busy share of all host CPUs (0..1) since the previous scrape.", "gauge", ratio);
  }
  const auto total_kb = proc_value("/proc/meminfo", "MemTotal:");
  const auto avail_kb = proc_value("/proc/meminfo", "MemAvailable:");
  if (total_kb && avail_kb) {
    gauge_line(out, "llmq_host_memory_used_bytes",
               "Host memory in use (MemTotal - MemAvailable) in bytes.", "gauge",
               (*total_kb - *avail_kb) * 1024);
    gauge_line(out, "llmq_host_memory_total_bytes", "Host memory in bytes.", "gauge",
               *total_kb * 1024);
  }
}

}  // namespace llmq::telemetry
