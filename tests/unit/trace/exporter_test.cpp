#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "trace/exporter.hpp"
#include "trace/span.hpp"
#include "trace/tracing.hpp"

namespace tern::trace {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

TEST(HttpEndpoint, ParsesHostPortAndPath) {
  auto e = parse_http_endpoint("http://127.0.0.1:4318/v1/traces");
  ASSERT_TRUE(e) << e.error();
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, 4318);
  EXPECT_EQ(e->target, "/v1/traces");
  auto v6 = parse_http_endpoint("http://[::1]:9/x");
  ASSERT_TRUE(v6) << v6.error();
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 9);
  auto bare = parse_http_endpoint("http://collector");
  ASSERT_TRUE(bare) << bare.error();
  EXPECT_EQ(bare->port, 80);
  EXPECT_EQ(bare->target, "/");
}

TEST(HttpEndpoint, RejectsWhatItCannotReach) {
  for (const char* bad : {"https://127.0.0.1:4318/v1/traces", "127.0.0.1:4318", "http://:4318/", "http://h:0/",
                          "http://h:70000/", "http://h:/", "http://::1:4318/", "http://[::1/", "http://h:1/a b"}) {
    EXPECT_FALSE(parse_http_endpoint(bad)) << bad;
  }
}

Span sample_span() {
  Span s;
  s.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  s.span_id = "1111111111111111";
  s.parent_span_id = "00f067aa0ba902b7";
  s.name = "publish a/\"b\"";
  s.kind = SpanKind::server;
  s.start_unix_nanos = 1700000000000000000ULL;
  s.end_unix_nanos = 1700000000000001000ULL;
  s.set("messaging.system", "mqtt");
  s.set("tern.deliveries", std::int64_t{3});
  s.set("ratio", 0.5);
  s.set("retained", true);
  s.set("bad", std::string("x\xff\ny"));
  return s;
}

TEST(OtlpJson, EncodesSpansAsTheOtlpJsonMappingAsks) {
  Resource resource;
  resource.service_name = "ternd";
  const std::string json = encode_otlp_json(resource, {sample_span()}, "tern", "0.1.0");
  EXPECT_THAT(json, HasSubstr(R"({"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"ternd"}}]})"));
  EXPECT_THAT(json, HasSubstr(R"("scope":{"name":"tern","version":"0.1.0"})"));
  EXPECT_THAT(json, HasSubstr(R"("traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"1111111111111111","parentSpanId":"00f067aa0ba902b7")"));
  EXPECT_THAT(json, HasSubstr(R"("name":"publish a/\"b\"","kind":2)"));
  EXPECT_THAT(json, HasSubstr(R"("startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000000001000")"));
  EXPECT_THAT(json, HasSubstr(R"({"key":"tern.deliveries","value":{"intValue":"3"}})"));
  EXPECT_THAT(json, HasSubstr(R"({"key":"ratio","value":{"doubleValue":0.5}})"));
  EXPECT_THAT(json, HasSubstr(R"({"key":"retained","value":{"boolValue":true}})"));
  EXPECT_THAT(json, HasSubstr(R"({"key":"bad","value":{"stringValue":"x\ufffd\ny"}})"));
  EXPECT_THAT(json, HasSubstr(R"("status":{"code":0}})"));
}

TEST(OtlpJson, RootSpanHasNoParentAndErrorsCarryTheirMessage) {
  Span s = Span::root("handle", SpanKind::consumer);
  s.fail("boom");
  s.end();
  const std::string json = encode_otlp_json(Resource{}, {s});
  EXPECT_THAT(json, Not(HasSubstr("parentSpanId")));
  EXPECT_THAT(json, HasSubstr(R"("status":{"code":2,"message":"boom"})"));
  EXPECT_THAT(json, HasSubstr(R"("stringValue":"unknown_service")"));
}

TEST(Span, ChildOfLinksToTheParentSpan) {
  const TraceContext parent{"4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1};
  const Span s = Span::child_of(parent, "process t", SpanKind::consumer);
  EXPECT_EQ(s.trace_id, parent.trace_id);
  EXPECT_EQ(s.parent_span_id, parent.span_id);
  EXPECT_TRUE(is_valid_span_id(s.span_id));
  EXPECT_NE(s.span_id, parent.span_id);
  EXPECT_EQ(s.context().span_id, s.span_id);
  EXPECT_GT(s.start_unix_nanos, 0u);
}

TEST(Span, SteadyTimesMapToWallTimesInTheirOrder) {
  const auto earlier = std::chrono::steady_clock::now() - std::chrono::seconds(2);
  const std::uint64_t wall_earlier = to_unix_nanos(earlier);
  const std::uint64_t now = unix_nanos_now();
  EXPECT_LE(wall_earlier + 2'000'000'000ULL, now + 1'000'000ULL);
  EXPECT_GE(wall_earlier + 2'000'000'000ULL + 500'000'000ULL, now);
}

// A one-connection-at-a-time HTTP server that records request bodies and answers with
// a fixed status.
class Collector {
 public:
  explicit Collector(int status) : status_(status), acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this] { serve(); });
  }
  ~Collector() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    boost::system::error_code ec;
    // Wake the blocking accept with a connection of our own.
    tcp::socket poke(io_);
    poke.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/v1/traces"; }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  // Waits for the n-th request body (1-based).
  std::vector<std::string> wait_for(std::size_t n, std::chrono::seconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return bodies_.size() >= n; });
    return bodies_;
  }
  std::vector<std::string> targets() {
    std::lock_guard lock(mutex_);
    return targets_;
  }

 private:
  void serve() {
    for (;;) {
      tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
      }
      if (ec) continue;
      asio::streambuf buffer;
      const std::size_t header_end = asio::read_until(socket, buffer, "\r\n\r\n", ec);
      if (ec) continue;
      std::string headers(asio::buffers_begin(buffer.data()), asio::buffers_begin(buffer.data()) + static_cast<long>(header_end));
      buffer.consume(header_end);
      std::size_t length = 0;
      if (const auto at = headers.find("Content-Length: "); at != std::string::npos) {
        length = std::stoul(headers.substr(at + 16));
      }
      if (buffer.size() < length) asio::read(socket, buffer, asio::transfer_exactly(length - buffer.size()), ec);
      std::string body(asio::buffers_begin(buffer.data()), asio::buffers_begin(buffer.data()) + static_cast<long>(length));
      const std::string target = headers.substr(headers.find(' ') + 1, headers.find(' ', headers.find(' ') + 1) - headers.find(' ') - 1);
      const std::string reply = "HTTP/1.1 " + std::to_string(status_) + " X\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
      asio::write(socket, asio::buffer(reply), ec);
      std::lock_guard lock(mutex_);
      bodies_.push_back(std::move(body));
      targets_.push_back(target);
      cv_.notify_all();
    }
  }

  int status_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> bodies_;
  std::vector<std::string> targets_;
  bool stopping_ = false;
};

std::size_t count(const std::string& text, std::string_view what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The exporter's counters change on its own thread with no event to wait on.
template <class Predicate>
bool wait_until(Predicate done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

ExporterOptions options_for(const std::string& url) {
  ExporterOptions o;
  o.endpoint = url;
  o.resource.service_name = "exporter-test";
  o.flush_delay = std::chrono::milliseconds(20);
  return o;
}

TEST(OtlpHttpExporter, PostsQueuedSpansAfterTheFlushDelay) {
  Collector collector(200);
  auto exporter = OtlpHttpExporter::start(options_for(collector.url()));
  ASSERT_TRUE(exporter) << exporter.error();
  ASSERT_TRUE((*exporter)->export_span(sample_span()));
  ASSERT_TRUE((*exporter)->export_span(sample_span()));
  const auto bodies = collector.wait_for(1);
  ASSERT_EQ(bodies.size(), 1u);
  EXPECT_EQ(count(bodies[0], "\"spanId\""), 2u);
  EXPECT_THAT(bodies[0], HasSubstr("\"stringValue\":\"exporter-test\""));
  EXPECT_EQ(collector.targets().at(0), "/v1/traces");
  exporter->reset();  // joins the exporter's thread, so the counters are final
}

TEST(OtlpHttpExporter, AFullBatchIsSentWithoutWaitingForTheDelay) {
  Collector collector(200);
  auto o = options_for(collector.url());
  o.flush_delay = std::chrono::hours(1);
  o.max_batch_spans = 3;
  auto exporter = OtlpHttpExporter::start(o);
  ASSERT_TRUE(exporter) << exporter.error();
  for (int i = 0; i < 3; ++i) (*exporter)->export_span(sample_span());
  const auto bodies = collector.wait_for(1);
  ASSERT_EQ(bodies.size(), 1u);
  EXPECT_EQ(count(bodies[0], "\"spanId\""), 3u);
}

TEST(OtlpHttpExporter, AFullQueueDropsNewSpansAndCountsThem) {
  Collector collector(200);
  auto o = options_for(collector.url());
  o.flush_delay = std::chrono::hours(1);
  o.max_queue_spans = 2;
  o.max_batch_spans = 100;
  auto exporter = OtlpHttpExporter::start(o);
  ASSERT_TRUE(exporter) << exporter.error();
  EXPECT_TRUE((*exporter)->export_span(sample_span()));
  EXPECT_TRUE((*exporter)->export_span(sample_span()));
  EXPECT_FALSE((*exporter)->export_span(sample_span()));
  const auto s = (*exporter)->stats();
  EXPECT_EQ(s.spans_queued, 2u);
  EXPECT_EQ(s.spans_dropped_queue_full, 1u);
  EXPECT_EQ(s.queue_depth, 2u);
  // Destruction sends what is queued.
  exporter->reset();
  const auto bodies = collector.wait_for(1);
  ASSERT_EQ(bodies.size(), 1u);
  EXPECT_EQ(count(bodies[0], "\"spanId\""), 2u);
}

TEST(OtlpHttpExporter, RefusedBatchesAreCountedAsFailed) {
  Collector collector(503);
  auto exporter = OtlpHttpExporter::start(options_for(collector.url()));
  ASSERT_TRUE(exporter) << exporter.error();
  (*exporter)->export_span(sample_span());
  collector.wait_for(1);
  ASSERT_TRUE(wait_until([&] { return (*exporter)->stats().requests == 1; }));
  const auto s = (*exporter)->stats();
  EXPECT_EQ(s.request_failures, 1u);
  EXPECT_EQ(s.spans_failed, 1u);
  EXPECT_EQ(s.spans_exported, 0u);
}

TEST(OtlpHttpExporter, AnUnreachableCollectorDoesNotBlockTheCaller) {
  std::uint16_t closed_port = 0;
  {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    closed_port = a.local_endpoint().port();
  }
  auto o = options_for("http://127.0.0.1:" + std::to_string(closed_port) + "/v1/traces");
  auto exporter = OtlpHttpExporter::start(o);
  ASSERT_TRUE(exporter) << exporter.error();
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) (*exporter)->export_span(sample_span());
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(1));
  (*exporter)->flush();
  ASSERT_TRUE(wait_until([&] { return (*exporter)->stats().request_failures >= 1; }));
  EXPECT_GE((*exporter)->stats().request_failures, 1u);
  EXPECT_EQ((*exporter)->stats().spans_exported, 0u);
}

TEST(Tracing, StartChecksItsOptions) {
  TracingOptions o;
  o.sample_ratio = 1.5;
  EXPECT_FALSE(Tracing::start(o));
  o.sample_ratio = 1.0;
  o.endpoint = "ftp://x";
  EXPECT_FALSE(Tracing::start(o));
  o.endpoint = "http://127.0.0.1:1/v1/traces";
  o.service_name = "";
  EXPECT_FALSE(Tracing::start(o));
}

}  // namespace
}  // namespace tern::trace
