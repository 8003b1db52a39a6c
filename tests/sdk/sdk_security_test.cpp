// The SDK's security against the real ternd: signed events through a broker that requires
// signatures (signatures.topics + keys_file), forged events refused by a verifying
// consumer, and Services and the CLI over a TLS listener that requires client certificates
// (certificates from `tern ca`), including a broker restart and a wrong CA.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <filesystem>
#include <fstream>
#include <functional>

#include "http_get.hpp"
#include "sdk/text.hpp"
#include "sdk_test_support.hpp"
#include "tern/client.hpp"
#include "tern/service.hpp"
#include "tern/signing.hpp"
#include "ternd_process.hpp"

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using tern::test::run_command;
using tern::test::run_until;

std::string tern_cli() { return TERN_CLI_PATH; }

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("tern-sdksec-" + tern::sdk::random_hex(6))) { fs::create_directories(path_); }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string write(const std::string& name, const std::string& content) const {
    std::ofstream(path_ / name) << content;
    return file(name);
  }

 private:
  fs::path path_;
};

// A port nothing listens on right now, so that ternd can be restarted on the same one.
int free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return acceptor.local_endpoint().port();
}

// ternd started with a configuration file; ports() are those of its "listening on" lines,
// in order.
class TerndWithConfig {
 public:
  TerndWithConfig(std::string config_path, std::size_t listeners, fs::path workdir)
      : config_(std::move(config_path)), listeners_(listeners), workdir_(std::move(workdir)) {
    start();
  }
  TerndWithConfig(const TerndWithConfig&) = delete;
  TerndWithConfig& operator=(const TerndWithConfig&) = delete;

  const std::vector<int>& ports() const { return ports_; }
  std::string log() const {
    std::ifstream in(workdir_ / "ternd.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  void start() {
    ports_ = child_.start({"--config", config_}, listeners_, workdir_.string(), (workdir_ / "ternd.log").string());
  }

  void stop() { child_.stop(); }

 private:
  std::string config_;
  std::size_t listeners_;
  fs::path workdir_;
  tern::test::TerndChild child_;
  std::vector<int> ports_;
};

// "Ready" means connected, not yet subscribed: the service's SUBSCRIBE may still be on its
// way when another client publishes. Subscribing once more to one of its filters and
// waiting for that SUBACK proves that the broker has handled the earlier SUBSCRIBE too.
bool wait_subscribed(boost::asio::io_context& io, tern::Service& service, const std::string& filter) {
  bool acknowledged = false;
  service.client().subscribe({tern::Subscription{filter, service.default_qos()}},
                             [&](std::error_code ec, std::vector<std::uint8_t>) { acknowledged = !ec; });
  return run_until(io, [&] { return acknowledged; });
}

constexpr std::string_view kProducerKeyHex = "3f1c0a9be27d4c51a8e0f3b6d2974c18a5b3e6f0c1d2e3f405162738495a6b7c";

tern::ServiceOptions service_options(int port, std::string name) {
  tern::ServiceOptions o;
  o.name = std::move(name);
  o.client.port = static_cast<std::uint16_t>(port);
  o.client.reconnect = tern::BackoffPolicy{20ms, 200ms, 2.0, 0.5};
  o.retry = tern::RetryPolicy{2, tern::BackoffPolicy{10ms, 50ms, 2.0, 0.0}};
  return o;
}

// ---- signatures ----

TEST(SdkSignatures, BrokerAcceptsSdkSignedEventsAndTheConsumerRefusesForgedOnes) {
  TempDir dir;
  const std::string keys = dir.write("signing-keys", fmt::format("# producer-id:hexkey\nproducer-a:{}\n", kProducerKeyHex));
  const std::string config = dir.write("ternd.toml", fmt::format(R"(durability = "memory"
[admin]
listen = ""
[[listener]]
address = "127.0.0.1:0"
[security]
allow_anonymous = true
[security.signatures]
keys_file = "{}"
topics = ["signed/#"]
)",
                                                                  keys));
  TerndWithConfig ternd(config, 1, dir.path());
  const int port = ternd.ports()[0];
  boost::asio::io_context io;

  auto consumer_options = service_options(port, "consumer");
  consumer_options.http_listen = "127.0.0.1:0";
  // The broker checks signed/#; data/# is checked by this consumer alone.
  consumer_options.verification.required_on = {"signed/#", "data/#"};
  consumer_options.verification.keys_file = keys;
  tern::Service consumer(io, consumer_options);
  std::vector<tern::Message> handled;
  for (const char* filter : {"signed/#", "data/#", "open/#"}) {
    consumer.on(filter, [&](const tern::Event& e) {
      handled.push_back(e.message());
      return tern::Outcome::success();
    });
  }

  auto producer_options = service_options(port, "producer");
  producer_options.signing.key = *tern::signing_key_from_hex(kProducerKeyHex);
  producer_options.signing.producer_id = "producer-a";
  tern::Service producer(io, producer_options);

  ASSERT_FALSE(consumer.start());
  ASSERT_FALSE(producer.start());
  ASSERT_TRUE(run_until(io, [&] { return consumer.ready() && producer.ready(); }));
  ASSERT_TRUE(wait_subscribed(io, consumer, "open/#"));

  // Signed by the SDK: accepted by ternd (PUBACK success) and by the consumer.
  std::error_code signed_result = tern::Errc::not_connected;
  ASSERT_FALSE(producer.publish("signed/temperature", "21.5", tern::Qos::at_least_once,
                                [&](std::error_code ec, std::uint8_t) { signed_result = ec; }));
  ASSERT_FALSE(producer.publish("data/humidity", "40", tern::Qos::at_least_once));
  ASSERT_TRUE(run_until(io, [&] { return handled.size() == 2 && signed_result != tern::Errc::not_connected; }));
  EXPECT_FALSE(signed_result) << signed_result.message();
  EXPECT_EQ(handled[0].topic, "signed/temperature");
  EXPECT_EQ(handled[1].topic, "data/humidity");
  const std::string good_sig = *handled[0].user_property(tern::kTernSigProperty);

  // Unsigned on a topic ternd requires signatures on: refused by the broker, 0x87.
  tern::ClientOptions plain;
  plain.port = static_cast<std::uint16_t>(port);
  plain.client_id = "plain-" + tern::sdk::random_hex(3);
  tern::Client client(io, plain);
  ASSERT_FALSE(client.start());
  std::optional<std::pair<std::error_code, std::uint8_t>> unsigned_result;
  tern::Message unsigned_event;
  unsigned_event.topic = "signed/temperature";
  unsigned_event.payload = "99";
  unsigned_event.qos = tern::Qos::at_least_once;
  ASSERT_FALSE(client.publish(unsigned_event, [&](std::error_code ec, std::uint8_t reason) {
    unsigned_result.emplace(ec, reason);
  }));
  ASSERT_TRUE(run_until(io, [&] { return unsigned_result.has_value(); }));
  EXPECT_EQ(unsigned_result->first, tern::Errc::rejected);
  EXPECT_EQ(unsigned_result->second, 0x87);

  // Forged with mosquitto_pub on data/#, which ternd lets through: the first carries a
  // signature taken from another event, the second none, the third an unknown producer.
  const std::string mosquitto = fmt::format("timeout 10 mosquitto_pub -h 127.0.0.1 -p {} -V mqttv5 -q 1", port);
  auto tampered = run_command(fmt::format(
      "{} -t data/humidity -m 99 -D publish user-property tern-id forged-1 -D publish user-property tern-producer "
      "producer-a -D publish user-property tern-sig {}",
      mosquitto, good_sig));
  ASSERT_EQ(tampered.exit_code, 0) << tampered.output;
  auto bare = run_command(fmt::format("{} -t data/humidity -m 98 -D publish user-property tern-id forged-2", mosquitto));
  ASSERT_EQ(bare.exit_code, 0) << bare.output;
  const std::string stranger_sig =
      tern::event_signature(*tern::signing_key_from_hex(kProducerKeyHex), "data/humidity", "97", "forged-3");
  auto stranger = run_command(fmt::format(
      "{} -t data/humidity -m 97 -D publish user-property tern-id forged-3 -D publish user-property tern-producer "
      "somebody -D publish user-property tern-sig {}",
      mosquitto, stranger_sig));
  ASSERT_EQ(stranger.exit_code, 0) << stranger.output;
  // Not verified, and published last: once it is handled, the forged events went through.
  auto marker = run_command(fmt::format("{} -t open/marker -m end", mosquitto));
  ASSERT_EQ(marker.exit_code, 0) << marker.output;

  ASSERT_TRUE(run_until(io, [&] { return handled.size() == 3; }));
  EXPECT_EQ(handled[2].topic, "open/marker");
  const tern::ServiceStats stats = consumer.stats();
  EXPECT_EQ(stats.signature_refusals.bad_signature, 1u);
  EXPECT_EQ(stats.signature_refusals.unsigned_events, 1u);
  EXPECT_EQ(stats.signature_refusals.unknown_producer, 1u);
  EXPECT_EQ(stats.dead_lettered, 0u);

  auto metrics = tern::test::http_get(io, consumer.http_port(), "/metrics");
  ASSERT_EQ(metrics.status, 200u);
  EXPECT_NE(metrics.body.find("tern_service_events_refused_total{service=\"consumer\",reason=\"bad_signature\"} 1\n"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("tern_service_events_refused_total{service=\"consumer\",reason=\"unsigned\"} 1\n"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("tern_service_events_refused_total{service=\"consumer\",reason=\"unknown_producer\"} 1\n"),
            std::string::npos);
}

// ---- TLS ----

class SdkTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new TempDir();
    const std::string ca = pki_->file("ca");
    const std::string other = pki_->file("other-ca");
    for (const std::string& args : {
             fmt::format("init --dir {}", ca),
             fmt::format("issue --dir {} --name broker --server --dns localhost --ip 127.0.0.1", ca),
             fmt::format("issue --dir {} --name device-1", ca),
             fmt::format("issue --dir {} --name device-2", ca),
             fmt::format("init --dir {} --cn 'Somebody else'", other),
         }) {
      auto r = run_command(fmt::format("{} ca {}", tern_cli(), args));
      ASSERT_EQ(r.exit_code, 0) << args << ": " << r.output;
    }
  }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  static std::string ca(const std::string& name) { return pki_->file("ca/" + name); }
  static std::string other_ca() { return pki_->file("other-ca/ca.crt"); }

  // A TLS listener that requires client certificates, on `port` (0: any).
  std::unique_ptr<TerndWithConfig> start_ternd(int port = 0) {
    const std::string config = dir_.write("ternd.toml", fmt::format(R"(durability = "memory"
log_level = "debug"
[admin]
listen = ""
[[listener]]
address = "127.0.0.1:{}"
transport = "tls"
cert = "{}"
key = "{}"
ca = "{}"
client_certificates = "required"
)",
                                                                    port, ca("broker.crt"), ca("broker.key"), ca("ca.crt")));
    return std::make_unique<TerndWithConfig>(config, 1, dir_.path());
  }

  static tern::ServiceOptions tls_service(int port, std::string name, const std::string& device) {
    auto o = service_options(port, std::move(name));
    o.client.tls.enabled = true;
    o.client.tls.ca_file = ca("ca.crt");
    o.client.tls.cert_file = ca(device + ".crt");
    o.client.tls.key_file = ca(device + ".key");
    return o;
  }

  static TempDir* pki_;
  TempDir dir_;
};

TempDir* SdkTls::pki_ = nullptr;

TEST_F(SdkTls, ServicesWithClientCertificatesExchangeEventsAndReconnectAfterABrokerRestart) {
  auto ternd = start_ternd(free_port());
  const int port = ternd->ports()[0];
  boost::asio::io_context io;
  tern::Service consumer(io, tls_service(port, "tls-consumer", "device-1"));
  std::vector<std::string> payloads;
  consumer.on("tls/#", [&](const tern::Event& e) {
    payloads.push_back(e.payload());
    return tern::Outcome::success();
  });
  tern::Service producer(io, tls_service(port, "tls-producer", "device-2"));
  ASSERT_FALSE(consumer.start());
  ASSERT_FALSE(producer.start());
  ASSERT_TRUE(run_until(io, [&] { return consumer.ready() && producer.ready(); })) << consumer.client().last_error();
  ASSERT_TRUE(wait_subscribed(io, consumer, "tls/#"));
  ASSERT_FALSE(producer.publish("tls/a", "one", tern::Qos::at_least_once));
  ASSERT_FALSE(producer.publish("tls/b", "two", tern::Qos::exactly_once));
  ASSERT_TRUE(run_until(io, [&] { return payloads.size() == 2; }))
      << "consumer received " << consumer.client().stats().received << ", handled " << consumer.stats().handled
      << "; producer published " << producer.client().stats().published << ", depth " << producer.stats().outbox_depth
      << "; payloads " << payloads.size() << "\n" << ternd->log();
  EXPECT_EQ(payloads, (std::vector<std::string>{"one", "two"}));

  // Both lose the broker, reconnect with backoff over new TLS sessions, and resubscribe.
  ternd->stop();
  ASSERT_TRUE(run_until(io, [&] { return !consumer.stats().connected && !producer.stats().connected; }));
  ternd->start();
  ASSERT_TRUE(run_until(io, [&] { return consumer.ready() && producer.ready(); })) << consumer.client().last_error();
  EXPECT_GE(consumer.stats().reconnects, 1u);
  EXPECT_GE(producer.stats().reconnects, 1u);
  // Publish until the consumer's subscription is back on the new broker.
  bool delivered = false;
  ASSERT_TRUE(run_until(io, [&] {
    delivered = std::find(payloads.begin(), payloads.end(), "three") != payloads.end();
    if (delivered) return true;
    if (producer.stats().outbox_depth == 0) producer.publish("tls/c", "three", tern::Qos::at_least_once);
    return false;
  }));
  EXPECT_TRUE(delivered);
}

TEST_F(SdkTls, AWrongCaFailsTheConnectionWithTheVerificationError) {
  auto ternd = start_ternd();
  const int port = ternd->ports()[0];
  boost::asio::io_context io;
  auto options = tls_service(port, "wrong-ca", "device-1").client;
  options.tls.ca_file = other_ca();
  options.client_id = "wrong-ca";
  tern::Client client(io, options);
  std::optional<std::error_code> lost;
  client.on_connection_lost([&](std::error_code ec, std::uint8_t) { lost = ec; });
  ASSERT_FALSE(client.start());
  ASSERT_TRUE(run_until(io, [&] { return lost.has_value(); }));
  EXPECT_EQ(*lost, tern::Errc::connection_failed);
  EXPECT_FALSE(client.connected());
  EXPECT_NE(client.last_error().find("TLS handshake with 127.0.0.1:" + std::to_string(port) + " failed"),
            std::string::npos)
      << client.last_error();
  EXPECT_NE(client.last_error().find("certificate verify failed"), std::string::npos) << client.last_error();
}

TEST_F(SdkTls, ANameTheCertificateDoesNotHoldFailsTheConnection) {
  auto ternd = start_ternd();
  boost::asio::io_context io;
  auto options = tls_service(ternd->ports()[0], "wrong-name", "device-1").client;
  options.tls.server_name = "broker.example";
  tern::Client client(io, options);
  bool lost = false;
  client.on_connection_lost([&](std::error_code, std::uint8_t) { lost = true; });
  ASSERT_FALSE(client.start());
  ASSERT_TRUE(run_until(io, [&] { return lost; }));
  EXPECT_NE(client.last_error().find("hostname mismatch"), std::string::npos) << client.last_error();

  // The name the certificate does hold works.
  options.tls.server_name = "localhost";
  tern::Client good(io, options);
  ASSERT_FALSE(good.start());
  ASSERT_TRUE(run_until(io, [&] { return good.connected(); })) << good.last_error();
}

TEST_F(SdkTls, WithoutAClientCertificateTheBrokerRefusesTheConnection) {
  auto ternd = start_ternd();
  boost::asio::io_context io;
  auto options = tls_service(ternd->ports()[0], "no-cert", "device-1").client;
  options.tls.cert_file.clear();
  options.tls.key_file.clear();
  options.auto_reconnect = false;
  tern::Client client(io, options);
  bool lost = false;
  client.on_connection_lost([&](std::error_code, std::uint8_t) { lost = true; });
  ASSERT_FALSE(client.start());
  ASSERT_TRUE(run_until(io, [&] { return lost; }));
  EXPECT_FALSE(client.connected());
  EXPECT_FALSE(client.last_error().empty());
}

TEST_F(SdkTls, CliPublishesAndSubscribesWithClientCertificates) {
  auto ternd = start_ternd();
  const std::string port = std::to_string(ternd->ports()[0]);
  const std::string tls = fmt::format("--cafile {} --cert {} --key {}", ca("ca.crt"), ca("device-1.crt"), ca("device-1.key"));
  // Retained, so the subscriber started afterwards gets it without any race.
  auto pub = run_command(fmt::format("timeout 10 {} pub -p {} {} -t cli/tls -m hello -q 1 -r", tern_cli(), port, tls));
  ASSERT_EQ(pub.exit_code, 0) << pub.output;
  auto sub = run_command(
      fmt::format("timeout 10 {} sub -p {} {} -t cli/tls -C 1 --timeout 5000 --format raw", tern_cli(), port, tls));
  ASSERT_EQ(sub.exit_code, 0) << sub.output;
  EXPECT_NE(sub.output.find("hello"), std::string::npos) << sub.output;

  auto wrong = run_command(fmt::format("timeout 10 {} pub -p {} --cafile {} --cert {} --key {} -t cli/tls -m x", tern_cli(),
                                       port, other_ca(), ca("device-1.crt"), ca("device-1.key")));
  EXPECT_EQ(wrong.exit_code, 2) << wrong.output;
  EXPECT_NE(wrong.output.find("certificate verify failed"), std::string::npos) << wrong.output;
}

}  // namespace
