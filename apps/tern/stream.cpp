// `tern stream read`: pages through a stream with request/reply. The broker answers each
// request with at most its `max_stream_read` events and an end marker holding the next
// offset, so the command asks again from there until a page comes back empty (or --max
// events were printed).
#include "stream.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <charconv>
#include <chrono>
#include <ctime>
#include <iostream>
#include <optional>
#include <string_view>

#include "sdk/text.hpp"
#include "tern/client.hpp"

namespace tern::cli {
namespace {

enum Exit : int { kOk = 0, kUsage = 1, kConnectionFailed = 2, kTimeout = 3, kRejected = 4, kInternal = 5 };

// The properties the broker appends to each event, in this order, after the event's own.
constexpr std::string_view kAppended[] = {"tern-stream", "tern-offset", "tern-time", "tern-topic"};

std::optional<std::uint64_t> parse_unsigned(std::string_view s) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// The broker parses the time exactly; this only tells a time from a mistyped offset so
// that the usage error is local.
bool looks_like_utc_time(std::string_view s) {
  return s.size() >= 20 && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s.back() == 'Z';
}

std::string utc_time(std::int64_t ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
}

struct Event {
  std::string stream;
  std::uint64_t offset = 0;
  std::int64_t time_ms = 0;
  Message message;  // with its original topic and user properties
};

// Splits a reply into the event and the broker's annotations; nullopt if they are missing
// or malformed.
std::optional<Event> to_event(const Message& reply) {
  const auto& props = reply.user_properties;
  constexpr std::size_t n = std::size(kAppended);
  if (props.size() < n) return std::nullopt;
  const std::size_t base = props.size() - n;
  for (std::size_t i = 0; i < n; ++i) {
    if (props[base + i].first != kAppended[i]) return std::nullopt;
  }
  Event e;
  e.stream = props[base].second;
  const auto offset = parse_unsigned(props[base + 1].second);
  const std::string_view time = props[base + 2].second;
  std::int64_t time_ms = 0;
  const auto [end, ec] = std::from_chars(time.data(), time.data() + time.size(), time_ms);
  if (!offset || ec != std::errc() || end != time.data() + time.size()) return std::nullopt;
  e.offset = *offset;
  e.time_ms = time_ms;
  e.message = reply;
  e.message.topic = props[base + 3].second;
  e.message.user_properties.resize(base);
  e.message.response_topic.reset();
  e.message.correlation_data.reset();
  return e;
}

void print_event(const Event& e, const std::string& format) {
  if (format == "json") {
    // message_to_json's object, with the stream's fields in front.
    const std::string body = sdk::message_to_json(e.message);
    std::string out = "{\"stream\":";
    sdk::append_json_string(out, e.stream);
    out += fmt::format(",\"offset\":{},\"time_ms\":{},\"time\":\"{}\",", e.offset, e.time_ms, utc_time(e.time_ms));
    out.append(body, 1);
    std::cout << out << '\n';
  } else {
    std::cout << e.offset << ' ' << utc_time(e.time_ms) << ' ' << e.message.topic << ' ' << e.message.payload << '\n';
  }
}

class Reader {
 public:
  explicit Reader(const StreamReadOptions& o)
      : o_(o), deadline_(io_), next_offset_(parse_unsigned(o.from).value_or(0)) {}

  int run() {
    ClientOptions co;
    co.host = o_.host;
    co.port = o_.port;
    co.protocol_version = 5;
    co.client_id = o_.client_id.empty() ? fmt::format("tern-stream-{}", sdk::random_hex(6)) : o_.client_id;
    if (!o_.username.empty()) co.username = o_.username;
    if (!o_.password.empty()) co.password = o_.password;
    co.connect_timeout = std::chrono::milliseconds(o_.connect_timeout_ms);
    co.auto_reconnect = false;
    // A fresh topic per run: replies meant for another reader can never match.
    reply_topic_ = fmt::format("tern/reply/{}/{}", co.client_id, sdk::random_hex(4));
    client_.emplace(io_, co);
    client_->on_connection_lost([this](std::error_code ec, std::uint8_t reason) { connection_lost(ec, reason); });
    client_->on_message([this](const Message& m) { on_reply(m); });
    client_->subscribe({Subscription{reply_topic_, Qos::at_least_once}}, [this](std::error_code ec, std::vector<std::uint8_t> codes) {
      if (ec) {
        std::cerr << fmt::format("tern: cannot subscribe to the reply topic: {}{}\n", ec.message(),
                                 codes.empty() ? std::string() : fmt::format(" (reason code 0x{:02x})", codes.front()));
        return finish(kRejected);
      }
      request_page();
    });
    arm_deadline();
    if (client_->start()) return kInternal;
    io_.run();
    return exit_code_;
  }

 private:
  void request_page() {
    std::string payload = "{";
    if (first_page_ && looks_like_utc_time(o_.from)) {
      payload += "\"from_time\":";
      sdk::append_json_string(payload, o_.from);
    } else {
      payload += fmt::format("\"from\":{}", next_offset_);
    }
    if (o_.max > 0) payload += fmt::format(",\"max\":{}", o_.max - printed_);
    payload += "}";
    first_page_ = false;
    correlation_ = sdk::random_hex(8);
    Message m;
    m.topic = fmt::format("$tern/streams/{}/read", o_.name);
    m.payload = std::move(payload);
    // QoS 1 both ways: the answers then arrive in order and none is dropped under load.
    m.qos = Qos::at_least_once;
    m.response_topic = reply_topic_;
    m.correlation_data = correlation_;
    m.content_type = "application/json";
    arm_deadline();
    if (auto ec = client_->publish(std::move(m), [this](std::error_code e, std::uint8_t reason) {
          if (!e) return;
          std::cerr << fmt::format("tern: stream read not accepted: {} (reason code 0x{:02x})\n", e.message(), reason);
          finish(e == Errc::rejected ? kRejected : kConnectionFailed);
        })) {
      std::cerr << fmt::format("tern: cannot request stream '{}': {}\n", o_.name, ec.message());
      finish(ec == Errc::invalid_argument ? kUsage : kInternal);
    }
  }

  void on_reply(const Message& m) {
    if (finished_ || m.topic != reply_topic_ || m.correlation_data != correlation_) return;
    arm_deadline();
    if (const std::string* end = m.user_property("tern-end"); end != nullptr && *end == "true") {
      if (const std::string* error = m.user_property("tern-error")) {
        std::cerr << fmt::format("tern: stream '{}': {}\n", o_.name, *error);
        return finish(kRejected);
      }
      const std::string* next = m.user_property("tern-next-offset");
      const std::string* count = m.user_property("tern-count");
      const auto next_offset = next ? parse_unsigned(*next) : std::nullopt;
      const auto n = count ? parse_unsigned(*count) : std::nullopt;
      if (!next_offset || !n) {
        std::cerr << "tern: malformed end marker from the broker\n";
        return finish(kInternal);
      }
      next_offset_ = *next_offset;
      if (*n == 0 || (o_.max > 0 && printed_ >= o_.max)) return finish(kOk);
      return request_page();
    }
    auto e = to_event(m);
    if (!e) {
      std::cerr << "tern: malformed stream event from the broker\n";
      return finish(kInternal);
    }
    print_event(*e, o_.format);
    ++printed_;
  }

  void arm_deadline() {
    deadline_.expires_after(std::chrono::milliseconds(o_.timeout_ms));
    deadline_.async_wait([this](boost::system::error_code ec) {
      if (ec || finished_) return;
      std::cerr << fmt::format("tern: no answer for stream '{}' within {} ms ({} event(s) printed)\n", o_.name,
                               o_.timeout_ms, printed_);
      finish(kTimeout);
    });
  }

  void connection_lost(std::error_code ec, std::uint8_t reason) {
    if (finished_) return;
    if (ec == Errc::connection_refused) {
      std::cerr << fmt::format("tern: connection to {}:{} refused by the broker (reason code 0x{:02x})\n", o_.host,
                               o_.port, reason);
    } else {
      std::cerr << fmt::format("tern: connection to {}:{} failed: {}{}\n", o_.host, o_.port, ec.message(),
                               reason ? fmt::format(" (reason code 0x{:02x})", reason) : std::string());
    }
    finished_ = true;
    exit_code_ = kConnectionFailed;
    deadline_.cancel();
    io_.stop();
  }

  void finish(int code) {
    if (finished_) return;
    finished_ = true;
    exit_code_ = code;
    std::cout.flush();
    deadline_.cancel();
    client_->stop(false, [this] { io_.stop(); });
  }

  const StreamReadOptions& o_;
  boost::asio::io_context io_;
  boost::asio::steady_timer deadline_;
  std::optional<Client> client_;
  std::string reply_topic_;
  std::string correlation_;
  std::uint64_t next_offset_ = 0;
  std::uint64_t printed_ = 0;
  bool first_page_ = true;
  bool finished_ = false;
  int exit_code_ = kOk;
};

}  // namespace

StreamCommand::StreamCommand(CLI::App& app) {
  stream_ = app.add_subcommand("stream", "Read event streams");
  stream_->set_help_flag("--help", "Print this help message and exit");
  stream_->require_subcommand(1);
  read_ = stream_->add_subcommand("read", "Print the events of a stream from an offset or a time");
  read_->set_help_flag("--help", "Print this help message and exit");
  auto& o = options_;
  read_->add_option("name", o.name, "Stream name (a [[stream]] of the broker's configuration)")->required();
  read_->add_option("--from", o.from, "First offset (digits) or UTC time (2026-11-28T01:02:03Z)")->capture_default_str();
  read_->add_option("--max", o.max, "Print at most N events (default: up to the end)")->check(CLI::Range(std::uint64_t{1}, UINT64_MAX));
  read_->add_option("--format", o.format, "text or json")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  read_->add_option("--timeout", o.timeout_ms, "Milliseconds to wait for each answer of the broker")->check(CLI::Range(1, 3'600'000))->capture_default_str();
  read_->add_option("-h,--host", o.host, "Broker host")->capture_default_str();
  read_->add_option("-p,--port", o.port, "Broker port")->capture_default_str();
  read_->add_option("-i,--id", o.client_id, "Client identifier (default: random)");
  read_->add_option("-u,--username", o.username, "User name");
  read_->add_option("-P,--password", o.password, "Password");
  read_->add_option("--connect-timeout", o.connect_timeout_ms, "Connect timeout in milliseconds")->capture_default_str();
}

bool StreamCommand::selected() const { return stream_->parsed(); }

int StreamCommand::run() const {
  const auto& o = options_;
  if (!parse_unsigned(o.from) && !looks_like_utc_time(o.from)) {
    std::cerr << fmt::format("tern: --from expects an offset or a UTC time like 2026-11-28T01:02:03Z, got '{}'\n", o.from);
    return kUsage;
  }
  if (o.name.empty() || o.name.find_first_of("/+# ") != std::string::npos) {
    std::cerr << fmt::format("tern: invalid stream name '{}'\n", o.name);
    return kUsage;
  }
  Reader reader(o);
  return reader.run();
}

}  // namespace tern::cli
