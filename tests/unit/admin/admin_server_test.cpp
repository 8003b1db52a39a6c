// The admin endpoint over a real socket on 127.0.0.1, with fake Sources.
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <future>
#include <optional>
#include <string>
#include <thread>

#include "admin/admin_server.hpp"
#include "core/log.hpp"

namespace tern::admin {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct Response {
  unsigned status = 0;
  std::string content_type;
  std::string www_authenticate;
  std::string body;
  bool keep_alive = false;
};

// A blocking HTTP client whose reads give up after a few seconds, so a server that never
// answers fails the test instead of hanging it.
class Client {
 public:
  explicit Client(std::uint16_t port) : socket_(io_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    timeval tv{5, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }

  Response get(const std::string& target, const std::string& authorization = "", bool keep_alive = true,
               http::verb method = http::verb::get) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (!authorization.empty()) req.set(http::field::authorization, authorization);
    req.keep_alive(keep_alive);
    req.prepare_payload();
    http::write(socket_, req);
    return read();
  }

  void send_raw(const std::string& bytes) { asio::write(socket_, asio::buffer(bytes)); }

  Response read() {
    http::response<http::string_body> res;
    http::read(socket_, buffer_, res);
    Response out;
    out.status = res.result_int();
    out.content_type = std::string(res[http::field::content_type]);
    out.www_authenticate = std::string(res[http::field::www_authenticate]);
    out.body = res.body();
    out.keep_alive = res.keep_alive();
    return out;
  }

  // True when the server closed the connection (EOF or reset) before sending anything.
  bool closed_by_server() {
    char byte = 0;
    beast::error_code ec;
    const auto n = socket_.read_some(asio::buffer(&byte, 1), ec);
    return n == 0 && (ec == asio::error::eof || ec == asio::error::connection_reset);
  }

 private:
  asio::io_context io_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

struct Fakes {
  std::atomic<bool> store_open{true};
  std::atomic<int> client_count{5};
};

class AdminServerTest : public ::testing::Test {
 protected:
  void start(AdminConfig config = {}) {
    config.listen = "127.0.0.1:0";
    config.node_name = "test-node";
    config.version = "9.9.9";
    Sources sources;
    sources.broker_stats = [] {
      broker::BrokerStats s;
      s.connections_current = 3;
      s.dropped_queue_full = 4;
      return s;
    };
    sources.clients = [this] {
      std::vector<broker::ClientInfo> clients;
      for (int i = 0; i < fakes_.client_count.load(); ++i) {
        broker::ClientInfo c;
        c.client_id = "client-" + std::to_string(i);
        c.queued_messages = static_cast<std::size_t>(i);
        clients.push_back(c);
      }
      return clients;
    };
    sources.subscriptions = [] {
      return std::vector<broker::SubscriptionInfo>{{"client-1", "a/#", 1, 0}, {"client-2", "b/+", 0, 0}};
    };
    sources.queued_messages_total = [] { return std::size_t{10}; };
    sources.inflight_messages_total = [] { return std::size_t{2}; };
    sources.readiness = {
        {"listeners", [] { return std::optional<std::string>(); }},
        {"store", [this]() -> std::optional<std::string> {
           if (fakes_.store_open) return std::nullopt;
           return "store is not open";
         }},
    };
    server_.emplace(io_, config, std::move(sources));
    auto started = server_->start();
    ASSERT_TRUE(started) << started.error();
    const auto endpoint = server_->bound_endpoint();
    port_ = static_cast<std::uint16_t>(std::stoi(endpoint.substr(endpoint.rfind(':') + 1)));
    thread_ = std::thread([this] { io_.run(); });
  }

  void stop_server() {
    std::promise<void> done;
    asio::post(io_, [&] {
      server_->stop();
      done.set_value();
    });
    done.get_future().wait();
  }

  void TearDown() override {
    if (thread_.joinable()) {
      stop_server();
      work_.reset();
      thread_.join();
    }
    server_.reset();
  }

  Fakes fakes_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::optional<AdminServer> server_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

TEST_F(AdminServerTest, HealthzAnswersOk) {
  start();
  Client client(port_);
  const auto r = client.get("/healthz");
  EXPECT_EQ(r.status, 200U);
  EXPECT_EQ(r.body, "ok\n");
}

TEST_F(AdminServerTest, MetricsServesTheTextFormatWithTheSourcesFigures) {
  start();
  Client client(port_);
  const auto r = client.get("/metrics");
  EXPECT_EQ(r.status, 200U);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(r.body.find("tern_build_info{version=\"9.9.9\",node=\"test-node\"} 1\n"), std::string::npos);
  EXPECT_NE(r.body.find("tern_connections_current 3\n"), std::string::npos);
  EXPECT_NE(r.body.find("tern_messages_dropped_total{reason=\"queue_full\"} 4\n"), std::string::npos);
  EXPECT_NE(r.body.find("tern_queued_messages 10\n"), std::string::npos);
  EXPECT_NE(r.body.find("tern_session_queued_messages{client_id=\"client-4\"} 4\n"), std::string::npos);
  EXPECT_EQ(r.body.find("client_id=\"client-0\""), std::string::npos);  // empty queues are not listed
  EXPECT_NE(r.body.find("tern_process_resident_memory_bytes "), std::string::npos);
}

TEST_F(AdminServerTest, ReadyzReportsTheFailingCheck) {
  start();
  Client client(port_);
  auto r = client.get("/readyz");
  EXPECT_EQ(r.status, 200U);
  EXPECT_EQ(boost::json::parse(r.body).at("ready"), true);
  fakes_.store_open = false;
  r = client.get("/readyz");
  EXPECT_EQ(r.status, 503U);
  const auto doc = boost::json::parse(r.body);
  EXPECT_EQ(doc.at("ready"), false);
  EXPECT_EQ(doc.at("checks").as_array()[1].at("reason"), "store is not open");
  EXPECT_EQ(boost::json::parse(client.get("/api/v1/status").body).at("ready"), false);
}

TEST_F(AdminServerTest, BearerTokenGuardsEverythingButHealthz) {
  AdminConfig config;
  config.bearer_token = "t0ken";
  start(config);
  Client client(port_);
  EXPECT_EQ(client.get("/healthz").status, 200U);
  for (const char* target : {"/metrics", "/readyz", "/api/v1/status", "/api/v1/clients", "/api/v1/logs", "/nope"}) {
    const auto r = client.get(target);
    EXPECT_EQ(r.status, 401U) << target;
    EXPECT_EQ(r.www_authenticate, "Bearer realm=\"tern\"") << target;
  }
  EXPECT_EQ(client.get("/metrics", "Bearer wrong").status, 401U);
  EXPECT_EQ(client.get("/metrics", "Bearer t0ken2").status, 401U);
  const auto ok = client.get("/metrics", "Bearer t0ken");
  EXPECT_EQ(ok.status, 200U);
  EXPECT_NE(ok.body.find("tern_admin_unauthorized_total 8\n"), std::string::npos) << ok.body;
}

TEST_F(AdminServerTest, StatusClientsAndSubscriptionsAreJson) {
  start();
  Client client(port_);
  const auto status = boost::json::parse(client.get("/api/v1/status").body);
  EXPECT_EQ(status.at("node"), "test-node");
  EXPECT_EQ(status.at("broker").at("connections_current"), 3);
  EXPECT_EQ(status.at("inflight_messages"), 2);

  const auto clients = client.get("/api/v1/clients?limit=2");
  EXPECT_EQ(clients.status, 200U);
  EXPECT_EQ(clients.content_type, "application/json");
  const auto doc = boost::json::parse(clients.body);
  EXPECT_EQ(doc.at("total"), 5);
  EXPECT_EQ(doc.at("clients").as_array().size(), 2U);
  EXPECT_EQ(boost::json::parse(client.get("/api/v1/clients").body).at("clients").as_array().size(), 5U);
  EXPECT_EQ(client.get("/api/v1/clients?limit=-1").status, 400U);

  const auto subs = boost::json::parse(client.get("/api/v1/subscriptions").body);
  EXPECT_EQ(subs.at("subscriptions").as_array()[0].at("filter"), "a/#");
}

TEST_F(AdminServerTest, ListLimitIsCappedByConfiguration) {
  AdminConfig config;
  config.max_list_items = 3;
  start(config);
  Client client(port_);
  const auto doc = boost::json::parse(client.get("/api/v1/clients?limit=100").body);
  EXPECT_EQ(doc.at("clients").as_array().size(), 3U);
}

TEST_F(AdminServerTest, LogsFilterByLevelAndLimit) {
  log::set_level(log::Level::info);
  log::set_ring_capacity(0);
  log::set_ring_capacity(50);
  log::info("t", "info one");
  log::warn("t", "warn one");
  log::error("t", "error one");
  log::warn("t", "warn two");
  start();
  Client client(port_);
  const auto r = client.get("/api/v1/logs?level=warning&limit=2");
  EXPECT_EQ(r.status, 200U);
  const auto doc = boost::json::parse(r.body);
  EXPECT_EQ(doc.at("capacity"), 50);
  const auto& lines = doc.at("lines").as_array();
  ASSERT_EQ(lines.size(), 2U);
  EXPECT_EQ(lines[0].at("msg"), "error one");
  EXPECT_EQ(lines[1].at("msg"), "warn two");
  EXPECT_EQ(boost::json::parse(client.get("/api/v1/logs?level=error").body).at("lines").as_array().size(), 1U);
  EXPECT_EQ(client.get("/api/v1/logs?level=loud").status, 400U);
  log::set_ring_capacity(log::kDefaultRingCapacity);
}

TEST_F(AdminServerTest, UnknownPathsAndMethodsAreRefused) {
  start();
  Client client(port_);
  EXPECT_EQ(client.get("/nope").status, 404U);
  EXPECT_EQ(client.get("/metrics", "", true, http::verb::delete_).status, 405U);
}

TEST_F(AdminServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  start();
  Client client(port_);
  for (int i = 0; i < 3; ++i) {
    const auto r = client.get("/healthz");
    EXPECT_EQ(r.status, 200U);
    EXPECT_TRUE(r.keep_alive);
  }
  const auto last = client.get("/healthz", "", false);
  EXPECT_FALSE(last.keep_alive);
  EXPECT_TRUE(client.closed_by_server());
}

TEST_F(AdminServerTest, OversizedHeadersAreRefused) {
  AdminConfig config;
  config.max_header_bytes = 1024;
  start(config);
  Client client(port_);
  client.send_raw("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(4096, 'a') + "\r\n\r\n");
  const auto r = client.read();
  EXPECT_EQ(r.status, 431U);
  EXPECT_TRUE(client.closed_by_server());
}

TEST_F(AdminServerTest, RequestBodiesAreRefused) {
  start();
  Client client(port_);
  client.send_raw("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_EQ(client.read().status, 413U);
}

TEST_F(AdminServerTest, ConnectionsBeyondTheLimitAreClosed) {
  AdminConfig config;
  config.max_connections = 2;
  start(config);
  Client first(port_);
  Client second(port_);
  // A response proves the server accepted the connection before the third one arrives.
  EXPECT_EQ(first.get("/healthz").status, 200U);
  EXPECT_EQ(second.get("/healthz").status, 200U);
  Client third(port_);
  EXPECT_TRUE(third.closed_by_server());
  const auto metrics = first.get("/metrics");
  EXPECT_NE(metrics.body.find("tern_admin_connections_refused_total 1\n"), std::string::npos) << metrics.body;
}

TEST_F(AdminServerTest, IdleConnectionsTimeOut) {
  AdminConfig config;
  config.idle_timeout = std::chrono::milliseconds(200);
  start(config);
  Client client(port_);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(client.closed_by_server());
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(4));
}

TEST_F(AdminServerTest, StopClosesOpenConnections) {
  start();
  Client client(port_);
  EXPECT_EQ(client.get("/healthz").status, 200U);
  stop_server();
  EXPECT_TRUE(client.closed_by_server());
}

TEST(AdminServerStart, ReportsABadAddress) {
  asio::io_context io;
  AdminConfig config;
  config.listen = "127.0.0.1";
  AdminServer bad(io, config, Sources{});
  const auto r = bad.start();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("127.0.0.1"), std::string::npos);

  config.listen = "127.0.0.1:0";
  AdminServer first(io, config, Sources{});
  ASSERT_TRUE(first.start());
  config.listen = first.bound_endpoint();
  AdminServer second(io, config, Sources{});
  const auto clash = second.start();
  ASSERT_FALSE(clash);
  EXPECT_NE(clash.error().find("bind"), std::string::npos) << clash.error();
}

TEST(SplitHostPort, AcceptsHostPortAndBracketedIpv6) {
  auto a = split_host_port("127.0.0.1:8080");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->first, "127.0.0.1");
  EXPECT_EQ(a->second, 8080);
  auto b = split_host_port("[::1]:0");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->first, "::1");
  EXPECT_FALSE(split_host_port("host:65536"));
  EXPECT_FALSE(split_host_port(":80"));
  EXPECT_FALSE(split_host_port("[::1]80"));
}

}  // namespace
}  // namespace tern::admin
