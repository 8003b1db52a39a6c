// Event signatures in the SDK: the tern-sig construction against vectors computed outside
// Tern, the keys file shared with ternd, the verification gate, and a signing Service and
// a verifying Service on the in-process broker. Also the client's TLS options that fail
// before any connection.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <filesystem>
#include <fstream>
#include <functional>

#include "../../sdk/sdk_test_support.hpp"
#include "core/log.hpp"
#include "sdk/metrics.hpp"
#include "sdk/signing.hpp"
#include "sdk/text.hpp"
#include "tern/client.hpp"
#include "tern/in_process.hpp"
#include "tern/service.hpp"
#include "tern/signing.hpp"

namespace {

using namespace std::chrono_literals;
using tern::test::run_until;

// Key 00 01 .. 1f. Both vectors were computed outside Tern:
//   printf 'sensors/m1/temperature\0{"c":21.5}\0dev-7' |
//     openssl dgst -sha256 -mac HMAC -macopt hexkey:000102...1f
//   python3: hmac.new(bytes(range(32)), b"...", hashlib.sha256).hexdigest()
constexpr std::string_view kKeyHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
constexpr std::string_view kVectorSig = "88fec5e2af3576ced54e313c403b36ee210b962828ddc52807b8d12587431f68";

std::string vector_key() { return *tern::signing_key_from_hex(kKeyHex); }

tern::Message vector_message() {
  tern::Message m;
  m.topic = "sensors/m1/temperature";
  m.payload = R"({"c":21.5})";
  m.set_user_property(tern::kTernIdProperty, "dev-7");
  return m;
}

class TempFile {
 public:
  explicit TempFile(const std::string& content)
      : path_(std::filesystem::temp_directory_path() / ("tern-keys-" + tern::sdk::random_hex(6))) {
    std::ofstream(path_) << content;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// ---- the construction ----

TEST(EventSignature, MatchesTheVectorComputedWithOpensslAndPython) {
  const tern::Message m = vector_message();
  EXPECT_EQ(tern::event_signature(vector_key(), m.topic, m.payload, "dev-7"), kVectorSig);
}

TEST(EventSignature, ZeroBytesSeparateTheFieldsSoMovingBytesBetweenThemChangesIt) {
  const std::string key = vector_key();
  EXPECT_NE(tern::event_signature(key, "a/b", "c", "d"), tern::event_signature(key, "a/", "bc", "d"));
  EXPECT_NE(tern::event_signature(key, "a", "b", "cd"), tern::event_signature(key, "a", "bc", "d"));
}

TEST(SignEvent, AddsProducerAndSignatureAndNeedsAnEventId) {
  tern::Message m = vector_message();
  ASSERT_TRUE(tern::sign_event(m, "dev-7-producer", vector_key()));
  ASSERT_NE(m.user_property(tern::kTernSigProperty), nullptr);
  EXPECT_EQ(*m.user_property(tern::kTernSigProperty), kVectorSig);
  EXPECT_EQ(*m.user_property(tern::kTernProducerProperty), "dev-7-producer");

  // Signing again replaces rather than adds.
  ASSERT_TRUE(tern::sign_event(m, "dev-7-producer", vector_key()));
  EXPECT_EQ(std::count_if(m.user_properties.begin(), m.user_properties.end(),
                          [](const tern::UserProperty& p) { return p.first == tern::kTernSigProperty; }),
            1);

  tern::Message no_id;
  no_id.topic = "a";
  EXPECT_FALSE(tern::sign_event(no_id, "p", vector_key()));
  EXPECT_EQ(no_id.user_property(tern::kTernSigProperty), nullptr);
}

TEST(SigningKeyFromHex, AcceptsEitherCaseAndRefusesShortOrNonHexKeys) {
  EXPECT_EQ(tern::signing_key_from_hex("000102030405060708090A0B0C0D0E0F"),
            tern::signing_key_from_hex("000102030405060708090a0b0c0d0e0f"));
  EXPECT_EQ(tern::signing_key_from_hex("000102030405060708090a0b0c0d0e0f")->size(), 16u);
  EXPECT_FALSE(tern::signing_key_from_hex("000102030405060708090a0b0c0d0e"));  // 15 bytes
  EXPECT_FALSE(tern::signing_key_from_hex("zz0102030405060708090a0b0c0d0e0f"));
  EXPECT_FALSE(tern::signing_key_from_hex("000102030405060708090a0b0c0d0e0f0"));  // odd length
}

// ---- checking ----

class CheckTest : public ::testing::Test {
 protected:
  tern::SignatureCheck check(const tern::Message& m) const {
    return tern::check_event_signature(m, [this](std::string_view producer) -> const std::string* {
      return producer == "dev-7" ? &key_ : nullptr;
    });
  }
  tern::Message signed_message() const {
    tern::Message m = vector_message();
    tern::sign_event(m, "dev-7", key_);
    return m;
  }
  std::string key_ = vector_key();
};

TEST_F(CheckTest, ASignedEventIsValid) { EXPECT_EQ(check(signed_message()), tern::SignatureCheck::valid); }

TEST_F(CheckTest, ChangingTopicPayloadOrIdMakesTheSignatureBad) {
  tern::Message topic = signed_message();
  topic.topic = "sensors/m2/temperature";
  EXPECT_EQ(check(topic), tern::SignatureCheck::bad_signature);
  tern::Message payload = signed_message();
  payload.payload = R"({"c":99.9})";
  EXPECT_EQ(check(payload), tern::SignatureCheck::bad_signature);
  tern::Message id = signed_message();
  id.set_user_property(tern::kTernIdProperty, "dev-8");
  EXPECT_EQ(check(id), tern::SignatureCheck::bad_signature);
  tern::Message truncated = signed_message();
  truncated.set_user_property(tern::kTernSigProperty, std::string(kVectorSig.substr(0, 63)));
  EXPECT_EQ(check(truncated), tern::SignatureCheck::bad_signature);
  tern::Message upper = signed_message();
  upper.set_user_property(tern::kTernSigProperty, "88FEC5E2AF3576CED54E313C403B36EE210B962828DDC52807B8D12587431F68");
  EXPECT_EQ(check(upper), tern::SignatureCheck::bad_signature);  // lowercase hex is the construction
}

TEST_F(CheckTest, MissingSignatureOrIdIsUnsigned) {
  tern::Message no_sig = signed_message();
  std::erase_if(no_sig.user_properties, [](const tern::UserProperty& p) { return p.first == tern::kTernSigProperty; });
  EXPECT_EQ(check(no_sig), tern::SignatureCheck::unsigned_event);
  tern::Message no_id = signed_message();
  std::erase_if(no_id.user_properties, [](const tern::UserProperty& p) { return p.first == tern::kTernIdProperty; });
  EXPECT_EQ(check(no_id), tern::SignatureCheck::unsigned_event);
}

TEST_F(CheckTest, MissingOrUnknownProducerIsUnknown) {
  tern::Message none = signed_message();
  std::erase_if(none.user_properties, [](const tern::UserProperty& p) { return p.first == tern::kTernProducerProperty; });
  EXPECT_EQ(check(none), tern::SignatureCheck::unknown_producer);
  tern::Message other = signed_message();
  other.set_user_property(tern::kTernProducerProperty, "dev-8");
  EXPECT_EQ(check(other), tern::SignatureCheck::unknown_producer);
}

// ---- the gate ----

TEST(SignatureGate, ReadsTheKeysFileFormatOfTernd) {
  TempFile file("# producers\n\ndev-7:" + std::string(kKeyHex) + "\r\nother:ffffffffffffffffffffffffffffffff\n");
  tern::VerificationOptions options;
  options.required_on = {"sensors/#"};
  options.keys_file = file.path();
  auto gate = tern::sdk::SignatureGate::create(options, "consumer");
  ASSERT_TRUE(gate) << gate.error();
  tern::Message m = vector_message();
  tern::sign_event(m, "dev-7", vector_key());
  EXPECT_EQ((*gate)->check(m), tern::SignatureCheck::valid);
  EXPECT_TRUE((*gate)->admit(m));
}

TEST(SignatureGate, FileErrorsNameFileAndLineButNeverTheKey) {
  const std::string secret = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
  TempFile file("dev-7:" + secret + "\nbroken line " + secret + "\n");
  tern::VerificationOptions options;
  options.required_on = {"#"};
  options.keys_file = file.path();
  auto gate = tern::sdk::SignatureGate::create(options, "consumer");
  ASSERT_FALSE(gate);
  EXPECT_NE(gate.error().find(file.path() + ":2"), std::string::npos) << gate.error();
  EXPECT_EQ(gate.error().find(secret), std::string::npos) << gate.error();

  options.keys_file = file.path() + ".missing";
  auto missing = tern::sdk::SignatureGate::create(options, "consumer");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("cannot read"), std::string::npos) << missing.error();
}

TEST(SignatureGate, RefusesAmbiguousOrUselessOptions) {
  TempFile file("dev-7:" + std::string(kKeyHex) + "\n");
  tern::VerificationOptions both;
  both.required_on = {"#"};
  both.keys_file = file.path();
  both.keys["dev-7"] = vector_key();
  auto twice = tern::sdk::SignatureGate::create(both, "c");
  ASSERT_FALSE(twice);
  EXPECT_NE(twice.error().find("'dev-7'"), std::string::npos) << twice.error();

  tern::VerificationOptions no_keys;
  no_keys.required_on = {"#"};
  EXPECT_FALSE(tern::sdk::SignatureGate::create(no_keys, "c"));

  tern::VerificationOptions bad_filter;
  bad_filter.required_on = {"a/#/b"};
  bad_filter.keys["dev-7"] = vector_key();
  EXPECT_FALSE(tern::sdk::SignatureGate::create(bad_filter, "c"));

  tern::VerificationOptions short_key;
  short_key.required_on = {"#"};
  short_key.keys["dev-7"] = "too short";
  EXPECT_FALSE(tern::sdk::SignatureGate::create(short_key, "c"));
}

TEST(SignatureGate, AdmitsUnsignedEventsOnlyOutsideTheRequiredFiltersAndCountsRefusals) {
  tern::VerificationOptions options;
  options.required_on = {"sensors/+/temperature"};
  options.keys["dev-7"] = vector_key();
  auto gate = tern::sdk::SignatureGate::create(options, "consumer");
  ASSERT_TRUE(gate) << gate.error();

  tern::Message elsewhere;
  elsewhere.topic = "sensors/m1/humidity";
  EXPECT_TRUE((*gate)->admit(elsewhere));

  tern::Message unsigned_event = vector_message();
  EXPECT_FALSE((*gate)->admit(unsigned_event));
  tern::Message unknown = vector_message();
  tern::sign_event(unknown, "dev-8", vector_key());
  EXPECT_FALSE((*gate)->admit(unknown));
  tern::Message tampered = vector_message();
  tern::sign_event(tampered, "dev-7", vector_key());
  tampered.payload = "{}";
  EXPECT_FALSE((*gate)->admit(tampered));
  EXPECT_FALSE((*gate)->admit(tampered));

  const tern::SignatureRefusals& r = (*gate)->refusals();
  EXPECT_EQ(r.unsigned_events, 1u);
  EXPECT_EQ(r.unknown_producer, 1u);
  EXPECT_EQ(r.bad_signature, 2u);
}

TEST(Metrics, RefusalsAreOneCounterWithAReasonLabel) {
  tern::ServiceStats s;
  s.signature_refusals.unsigned_events = 3;
  s.signature_refusals.unknown_producer = 2;
  s.signature_refusals.bad_signature = 1;
  const std::string text = tern::sdk::render_metrics("svc", s);
  EXPECT_NE(text.find("# TYPE tern_service_events_refused_total counter\n"), std::string::npos) << text;
  EXPECT_NE(text.find("tern_service_events_refused_total{service=\"svc\",reason=\"unsigned\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("tern_service_events_refused_total{service=\"svc\",reason=\"unknown_producer\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("tern_service_events_refused_total{service=\"svc\",reason=\"bad_signature\"} 1\n"),
            std::string::npos);
}

// ---- services on the in-process broker ----

tern::ServiceOptions in_process_options(tern::InProcessBroker& broker, std::string name) {
  tern::ServiceOptions o;
  o.name = std::move(name);
  o.client.in_process = &broker;
  o.client.reconnect = tern::BackoffPolicy{10ms, 50ms, 2.0, 0.0};
  return o;
}

TEST(SignedServices, SignedEventsReachTheHandlerForgedOnesAreRefusedCountedAndLogged) {
  boost::asio::io_context io;
  tern::InProcessBroker broker(io);

  tern::ServiceOptions producer_options = in_process_options(broker, "producer");
  producer_options.signing.key = vector_key();
  producer_options.signing.producer_id = "dev-7";
  tern::Service producer(io, producer_options);

  tern::ServiceOptions consumer_options = in_process_options(broker, "consumer");
  consumer_options.verification.required_on = {"sensors/#"};
  consumer_options.verification.keys["dev-7"] = vector_key();
  tern::Service consumer(io, consumer_options);
  std::vector<tern::Message> handled;
  consumer.on("sensors/#", [&](const tern::Event& e) {
    handled.push_back(e.message());
    return tern::Outcome::success();
  });
  consumer.on("plain/#", [&](const tern::Event& e) {
    handled.push_back(e.message());
    return tern::Outcome::success();
  });

  // Forged events come from a plain client, which can set any property.
  tern::ClientOptions forger_options;
  forger_options.in_process = &broker;
  forger_options.client_id = "forger";
  tern::Client forger(io, forger_options);

  ASSERT_FALSE(consumer.start());
  ASSERT_FALSE(producer.start());
  ASSERT_FALSE(forger.start());
  ASSERT_TRUE(run_until(io, [&] { return consumer.ready() && producer.ready() && forger.connected(); }));

  ASSERT_FALSE(producer.publish("sensors/m1/temperature", R"({"c":21.5})"));
  ASSERT_TRUE(run_until(io, [&] { return handled.size() == 1; }));
  ASSERT_NE(handled[0].user_property(tern::kTernProducerProperty), nullptr);
  EXPECT_EQ(*handled[0].user_property(tern::kTernProducerProperty), "dev-7");
  const std::string* id = handled[0].user_property(tern::kTernIdProperty);
  ASSERT_NE(id, nullptr);
  EXPECT_EQ(*handled[0].user_property(tern::kTernSigProperty),
            tern::event_signature(vector_key(), "sensors/m1/temperature", R"({"c":21.5})", *id));

  // Replayed with another payload, without a signature, and from a producer without a key.
  tern::Message tampered = handled[0];
  tampered.payload = R"({"c":99.0})";
  tampered.set_user_property(tern::kTernIdProperty, "forged-1");
  tampered.set_user_property(tern::kTernSigProperty, *handled[0].user_property(tern::kTernSigProperty));
  tern::Message unsigned_event;
  unsigned_event.topic = "sensors/m1/temperature";
  unsigned_event.payload = "{}";
  unsigned_event.qos = tern::Qos::at_least_once;
  unsigned_event.set_user_property(tern::kTernIdProperty, "forged-2");
  tern::Message unknown = unsigned_event;
  unknown.set_user_property(tern::kTernIdProperty, "forged-3");
  tern::sign_event(unknown, "forger", vector_key());
  // Outside the required filters nothing is checked; the forger's last event lets the test
  // know that everything before it went through the consumer.
  tern::Message marker;
  marker.topic = "plain/marker";
  marker.payload = "end";
  marker.qos = tern::Qos::at_least_once;
  for (auto* m : {&tampered, &unsigned_event, &unknown, &marker}) ASSERT_FALSE(forger.publish(*m));

  ASSERT_TRUE(run_until(io, [&] { return handled.size() == 2; }));
  EXPECT_EQ(handled[1].topic, "plain/marker");
  const tern::ServiceStats stats = consumer.stats();
  EXPECT_EQ(stats.signature_refusals.bad_signature, 1u);
  EXPECT_EQ(stats.signature_refusals.unsigned_events, 1u);
  EXPECT_EQ(stats.signature_refusals.unknown_producer, 1u);
  EXPECT_EQ(stats.handled, 2u);
  EXPECT_EQ(stats.dead_lettered, 0u);

  // The first refusal is logged at warning; no line holds the key.
  bool logged = false;
  for (const auto& line : tern::log::recent_lines(tern::log::Level::warning, 1000)) {
    EXPECT_EQ(line.json.find(kKeyHex), std::string::npos) << line.json;
    if (line.json.find("consumer: refused an event on 'sensors/m1/temperature'") != std::string::npos &&
        line.json.find("forged-1") != std::string::npos && line.json.find("bad signature") != std::string::npos) {
      logged = true;
    }
  }
  EXPECT_TRUE(logged);

  // Refused events were acknowledged: nothing waits in the consumer.
  EXPECT_EQ(stats.inflight_events, 0u);
}

TEST(SignedServices, RequestRepliesAreSignedAndVerifiedToo) {
  boost::asio::io_context io;
  tern::InProcessBroker broker(io);
  const std::string responder_key(32, '\x5a');

  tern::ServiceOptions responder_options = in_process_options(broker, "responder");
  responder_options.signing.key = responder_key;  // producer id: the client id
  responder_options.client.client_id = "responder-1";
  tern::Service responder(io, responder_options);
  responder.respond("time/now", [](const tern::Event&, std::string& reply) {
    reply = "noon";
    return tern::Outcome::success();
  });

  tern::ServiceOptions asker_options = in_process_options(broker, "asker");
  asker_options.verification.required_on = {"#"};
  asker_options.verification.keys["responder-1"] = responder_key;
  tern::Service asker(io, asker_options);

  ASSERT_FALSE(responder.start());
  ASSERT_FALSE(asker.start());
  ASSERT_TRUE(run_until(io, [&] { return responder.ready() && asker.ready(); }));
  std::string reply;
  std::error_code result = tern::Errc::not_connected;
  asker.request("time/now", "?", 5s, [&](std::error_code ec, tern::Message m) {
    result = ec;
    reply = m.payload;
  });
  ASSERT_TRUE(run_until(io, [&] { return result != tern::Errc::not_connected; }));
  EXPECT_FALSE(result) << result.message();
  EXPECT_EQ(reply, "noon");
}

TEST(SignedServices, StartFailsOnAShortSigningKeyOrAnUnreadableKeysFile) {
  boost::asio::io_context io;
  tern::InProcessBroker broker(io);
  tern::ServiceOptions short_key = in_process_options(broker, "short");
  short_key.signing.key = "0123456789";
  tern::Service a(io, short_key);
  EXPECT_EQ(a.start(), tern::Errc::invalid_argument);

  tern::ServiceOptions missing = in_process_options(broker, "missing");
  missing.verification.required_on = {"#"};
  missing.verification.keys_file = "/nonexistent/tern-keys";
  tern::Service b(io, missing);
  EXPECT_EQ(b.start(), tern::Errc::invalid_argument);
}

// ---- TLS options ----

TEST(ClientTls, UnreadableFilesFailStartWithTheFileInLastError) {
  boost::asio::io_context io;
  tern::ClientOptions o;
  o.tls.enabled = true;
  o.tls.ca_file = "/nonexistent/ca.crt";
  tern::Client missing_ca(io, o);
  EXPECT_EQ(missing_ca.start(), tern::Errc::invalid_argument);
  EXPECT_NE(missing_ca.last_error().find("/nonexistent/ca.crt"), std::string::npos) << missing_ca.last_error();

  tern::ClientOptions cert_only;
  cert_only.tls.enabled = true;
  cert_only.tls.verify = false;
  cert_only.tls.cert_file = "/nonexistent/client.crt";
  tern::Client no_key(io, cert_only);
  EXPECT_EQ(no_key.start(), tern::Errc::invalid_argument);
  EXPECT_NE(no_key.last_error().find("key"), std::string::npos) << no_key.last_error();
}

}  // namespace
