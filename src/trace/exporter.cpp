#include "trace/exporter.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace tern::trace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

Expected<HttpEndpoint, std::string> parse_http_endpoint(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return make_unexpected(fmt::format("\"{}\" must start with http:// (https is not supported)", url));
  }
  std::string_view rest = url.substr(kScheme.size());
  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  HttpEndpoint out;
  out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return make_unexpected(fmt::format("\"{}\": unclosed '[' in the host", url));
    out.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return make_unexpected(fmt::format("\"{}\": expected ':' after ']'", url));
      port_text = after.substr(1);
      has_port = true;
    }
  } else {
    const std::size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      has_port = true;
    }
    if (out.host.find(':') != std::string::npos) {
      return make_unexpected(fmt::format("\"{}\": an IPv6 host must be written in brackets, e.g. http://[::1]:4318", url));
    }
  }
  if (out.host.empty()) return make_unexpected(fmt::format("\"{}\" has no host", url));
  if (std::any_of(out.host.begin(), out.host.end(), [](char c) { return c <= ' ' || c == '@' || c == '/' || c == 0x7F; })) {
    return make_unexpected(fmt::format("\"{}\": the host contains characters a host name cannot have", url));
  }
  if (has_port) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 || value > 65535) {
      return make_unexpected(fmt::format("\"{}\": the port must be a number between 1 and 65535", url));
    }
    out.port = static_cast<std::uint16_t>(value);
  }
  if (std::any_of(out.target.begin(), out.target.end(), [](char c) { return c <= ' ' || c == 0x7F; })) {
    return make_unexpected(fmt::format("\"{}\": the path must not contain spaces or control characters", url));
  }
  return out;
}

struct OtlpHttpExporter::Impl {
  ExporterOptions options;
  HttpEndpoint endpoint;

  // Shared with callers on any thread.
  mutable std::mutex mutex;
  std::deque<Span> queue;
  ExporterStats counters;  // queue_depth is filled in by stats()
  std::condition_variable finished_cv;
  bool finished = false;

  // The exporter's own thread and everything only it touches.
  asio::io_context io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work{io.get_executor()};
  asio::steady_timer flush_timer{io};
  bool timer_armed = false;
  bool in_flight = false;
  bool stopping = false;
  std::thread thread;

  struct Request {
    tcp::resolver resolver;
    beast::tcp_stream stream;
    http::request<http::string_body> request;
    http::response<http::string_body> response;
    beast::flat_buffer buffer;
    std::size_t spans = 0;
    explicit Request(asio::io_context& context) : resolver(context), stream(context) {}
  };

  std::size_t queued() const {
    std::lock_guard lock(mutex);
    return queue.size();
  }

  void arm_timer() {
    if (timer_armed || in_flight || stopping) return;
    if (queued() == 0) return;
    timer_armed = true;
    flush_timer.expires_after(options.flush_delay);
    flush_timer.async_wait([this](const boost::system::error_code& ec) {
      timer_armed = false;
      if (!ec) send_batch();
    });
  }

  void send_now() {
    if (timer_armed) flush_timer.cancel();  // its handler sees operation_aborted
    send_batch();
  }

  // Runs when a request ends or when the timer or a full batch asks for one.
  void send_batch() {
    if (in_flight) return;
    std::vector<Span> batch;
    {
      std::lock_guard lock(mutex);
      const std::size_t n = std::min(queue.size(), options.max_batch_spans);
      batch.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue.front()));
        queue.pop_front();
      }
    }
    if (batch.empty()) {
      if (stopping) finish();
      return;
    }
    in_flight = true;
    auto r = std::make_shared<Request>(io);
    r->spans = batch.size();
    r->request.method(http::verb::post);
    r->request.target(endpoint.target);
    r->request.version(11);
    r->request.set(http::field::host, endpoint.host.find(':') != std::string::npos
                                          ? fmt::format("[{}]:{}", endpoint.host, endpoint.port)
                                          : fmt::format("{}:{}", endpoint.host, endpoint.port));
    r->request.set(http::field::content_type, "application/json");
    r->request.set(http::field::user_agent, "tern-otlp");
    r->request.set(http::field::connection, "close");
    r->request.body() = encode_otlp_json(options.resource, batch, "tern", options.scope_version);
    r->request.prepare_payload();
    batch.clear();
    r->stream.expires_after(options.request_timeout);
    r->resolver.async_resolve(endpoint.host, std::to_string(endpoint.port),
                              [this, r](const boost::system::error_code& ec, const tcp::resolver::results_type& results) {
                                if (ec) return done(*r, false);
                                r->stream.async_connect(results, [this, r](const boost::system::error_code& cec,
                                                                           const tcp::endpoint&) {
                                  if (cec) return done(*r, false);
                                  http::async_write(r->stream, r->request,
                                                    [this, r](const boost::system::error_code& wec, std::size_t) {
                                                      if (wec) return done(*r, false);
                                                      read_response(r);
                                                    });
                                });
                              });
  }

  void read_response(const std::shared_ptr<Request>& r) {
    http::async_read(r->stream, r->buffer, r->response, [this, r](const boost::system::error_code& ec, std::size_t) {
      const unsigned status = r->response.result_int();
      done(*r, !ec && status >= 200 && status < 300);
    });
  }

  void done(Request& r, bool ok) {
    boost::system::error_code ignored;
    r.stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    r.stream.close();
    in_flight = false;
    std::size_t remaining = 0;
    {
      std::lock_guard lock(mutex);
      ++counters.requests;
      if (ok) {
        counters.spans_exported += r.spans;
      } else {
        ++counters.request_failures;
        counters.spans_failed += r.spans;
        // A collector that is down at shutdown must not delay it batch after batch.
        if (stopping) {
          counters.spans_failed += queue.size();
          queue.clear();
        }
      }
      remaining = queue.size();
    }
    if (stopping || remaining >= options.max_batch_spans) {
      send_batch();
    } else {
      arm_timer();
    }
  }

  void finish() {
    work.reset();
    std::lock_guard lock(mutex);
    finished = true;
    finished_cv.notify_all();
  }
};

OtlpHttpExporter::OtlpHttpExporter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Expected<std::unique_ptr<OtlpHttpExporter>, std::string> OtlpHttpExporter::start(ExporterOptions options) {
  auto endpoint = parse_http_endpoint(options.endpoint);
  if (!endpoint) return make_unexpected(endpoint.error());
  if (options.max_queue_spans == 0 || options.max_batch_spans == 0) {
    return make_unexpected(std::string("the span queue and the batch must hold at least one span"));
  }
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->endpoint = std::move(*endpoint);
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->io.run(); });
  return std::unique_ptr<OtlpHttpExporter>(new OtlpHttpExporter(std::move(impl)));
}

OtlpHttpExporter::~OtlpHttpExporter() {
  Impl& i = *impl_;
  asio::post(i.io, [&i] {
    i.stopping = true;
    if (i.timer_armed) i.flush_timer.cancel();
    if (!i.in_flight) i.send_batch();  // sends the rest or finishes
  });
  {
    // Every request is bounded by its timeout; the margin covers a name lookup that
    // ignores it. After that the loop is stopped with whatever is still pending.
    std::unique_lock lock(i.mutex);
    const auto batches = i.queue.size() / i.options.max_batch_spans + 2;
    i.finished_cv.wait_for(lock, i.options.request_timeout * static_cast<long>(batches) + std::chrono::seconds(1),
                           [&i] { return i.finished; });
  }
  i.io.stop();
  i.thread.join();
}

bool OtlpHttpExporter::export_span(Span span) {
  Impl& i = *impl_;
  std::size_t depth = 0;
  {
    std::lock_guard lock(i.mutex);
    if (i.queue.size() >= i.options.max_queue_spans) {
      ++i.counters.spans_dropped_queue_full;
      return false;
    }
    i.queue.push_back(std::move(span));
    ++i.counters.spans_queued;
    depth = i.queue.size();
  }
  // Only two transitions need the exporter's thread: the first span (arm the flush
  // timer) and a full batch (send now). Other spans wake nobody.
  if (depth == 1) {
    asio::post(i.io, [&i] { i.arm_timer(); });
  } else if (depth == i.options.max_batch_spans) {
    asio::post(i.io, [&i] { i.send_now(); });
  }
  return true;
}

void OtlpHttpExporter::flush() {
  Impl& i = *impl_;
  asio::post(i.io, [&i] { i.send_now(); });
}

ExporterStats OtlpHttpExporter::stats() const {
  const Impl& i = *impl_;
  std::lock_guard lock(i.mutex);
  ExporterStats s = i.counters;
  s.queue_depth = i.queue.size();
  return s;
}

const ExporterOptions& OtlpHttpExporter::options() const noexcept { return impl_->options; }

}  // namespace tern::trace
