// httplib's server bounds each read of a request, not the request: a client that sends a byte
// every few seconds keeps its worker thread as long as it likes, and enough such clients take every
// thread, so the server stops answering (slowloris). This server gives each request a deadline to
// arrive whole (request line, headers and body): a read past it fails, the connection is closed and
// the thread is free again. It also tells a handler its connection's socket, which httplib does not.
#pragma once
#include <httplib.h>

#include <chrono>

namespace moe::serve::http {

class DeadlineServer : public httplib::Server {
 public:
  // deadline: from the first byte of a request to its last (reads also time out one by one,
  // after set_read_timeout of silence).
  explicit DeadlineServer(std::chrono::milliseconds deadline) : deadline_(deadline) {}
  // The socket of the connection this thread is serving, -1 outside one: what a handler polls to
  // see its client hang up.
  static int current_socket();
  // Whether this thread's last request ran past its deadline while being read (the error
  // handler's 408).
  static bool deadline_passed();

 private:
  bool process_and_close_socket(socket_t sock) override;
  std::chrono::milliseconds deadline_;
};

}  // namespace moe::serve::http
