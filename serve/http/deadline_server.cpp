#include "serve/http/deadline_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

namespace moe::serve::http {
namespace {

using Clock = std::chrono::steady_clock;

thread_local int tl_socket = -1;
thread_local bool tl_deadline_passed = false;

// poll() for `events` up to `ms` (0: just look). >0 ready, 0 timed out, <0 failed; `hup`: the
// peer hung up.
int wait_for(int fd, short events, int64_t ms, bool* hup = nullptr) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int r = ::poll(&p, 1, int(std::clamp<int64_t>(ms, 0, INT_MAX)));
    if (r < 0 && errno == EINTR) continue;
    if (r > 0 && (p.revents & (POLLERR | POLLNVAL))) return -1;
    if (hup) *hup = r > 0 && (p.revents & POLLHUP);
    return r;
  }
}

std::string address(int fd, int& port, bool local) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  port = -1;
  if ((local ? ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len)
             : ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)) != 0)
    return {};
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    port = ntohs(a->sin_port);
    ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    port = ntohs(a->sin6_port);
    ::inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
  }
  return buf;
}

// Bytes read from a connection and not yet consumed: kept from one request to the next, since a
// client may send its next request (pipelined) before the answer to this one.
struct InputBuffer {
  char data[4096];
  size_t pos = 0, len = 0;
  bool empty() const { return pos == len; }
};

// One request on a connection: buffered reads that fail after the request's deadline, or after
// a read timeout of silence; writes with a timeout each.
class DeadlineStream final : public httplib::Stream {
 public:
  DeadlineStream(int fd, InputBuffer& in, Clock::time_point deadline, int64_t read_ms, int64_t write_ms)
      : fd_(fd), in_(in), deadline_(deadline), read_ms_(read_ms), write_ms_(write_ms) {}

  bool is_readable() const override { return !in_.empty() || wait_readable() > 0; }
  bool is_writable() const override {
    bool hup = false;
    return wait_for(fd_, POLLOUT, write_ms_, &hup) > 0 && !hup;
  }
  ssize_t read(char* ptr, size_t size) override {
    if (in_.empty()) {
      if (wait_readable() <= 0) return -1;
      ssize_t n;
      do n = ::recv(fd_, in_.data, sizeof in_.data, 0);
      while (n < 0 && errno == EINTR);
      if (n <= 0) return n;
      in_.pos = 0;
      in_.len = size_t(n);
    }
    const size_t k = std::min(size, in_.len - in_.pos);
    std::memcpy(ptr, in_.data + in_.pos, k);
    in_.pos += k;
    return ssize_t(k);
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (wait_for(fd_, POLLOUT, write_ms_) <= 0) return -1;
    ssize_t n;
    do n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { ip = address(fd_, port, false); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { ip = address(fd_, port, true); }
  socket_t socket() const override { return fd_; }

 private:
  // Waits for input up to the read timeout, never past the deadline.
  int wait_readable() const {
    const int64_t left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
    if (left <= 0) {
      tl_deadline_passed = true;
      return 0;
    }
    const int r = wait_for(fd_, POLLIN, std::min(left, read_ms_));
    if (r == 0 && read_ms_ >= left) tl_deadline_passed = true;
    return r;
  }

  int fd_;
  InputBuffer& in_;
  Clock::time_point deadline_;
  int64_t read_ms_, write_ms_;
};

}  // namespace

int DeadlineServer::current_socket() { return tl_socket; }
bool DeadlineServer::deadline_passed() { return tl_deadline_passed; }

// httplib's own loop, with our stream: up to keep_alive_max_count requests per connection, each
// waited for at most keep_alive_timeout, while the server runs.
bool DeadlineServer::process_and_close_socket(socket_t sock) {
  tl_socket = sock;
  const int64_t read_ms = int64_t(read_timeout_sec_) * 1000 + int64_t(read_timeout_usec_) / 1000;
  const int64_t write_ms = int64_t(write_timeout_sec_) * 1000 + int64_t(write_timeout_usec_) / 1000;
  bool ok = false;
  InputBuffer in;
  for (size_t left = keep_alive_max_count_; left > 0 && svr_sock_ != INVALID_SOCKET; --left) {
    if (in.empty() && wait_for(sock, POLLIN, int64_t(keep_alive_timeout_sec_) * 1000) <= 0) break;
    tl_deadline_passed = false;
    DeadlineStream strm(sock, in, Clock::now() + deadline_, read_ms, write_ms);
    bool closed = false;
    ok = process_request(strm, left == 1, closed, nullptr);
    if (!ok || closed || tl_deadline_passed) break;  // after a 408 the rest of that request may still come
  }
  tl_socket = -1;
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ok;
}

}  // namespace moe::serve::http
