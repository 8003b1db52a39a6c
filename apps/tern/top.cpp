#include "top.hpp"

#include "core/expected.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <csignal>
#include <ctime>
#include <functional>
#include <iostream>
#include <memory>
#include <thread>

namespace tern::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

enum Exit : int { kOk = 0, kUsage = 1, kConnectionFailed = 2, kRejected = 4 };

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == ':';
}

std::optional<double> parse_value(std::string_view text) {
  if (text == "+Inf") return HUGE_VAL;
  if (text == "-Inf") return -HUGE_VAL;
  if (text == "NaN") return std::nan("");
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

std::optional<MetricSample> parse_line(std::string_view line) {
  MetricSample s;
  std::size_t i = 0;
  while (i < line.size() && is_name_char(line[i])) ++i;
  if (i == 0) return std::nullopt;
  s.name = std::string(line.substr(0, i));
  if (i < line.size() && line[i] == '{') {
    ++i;
    for (;;) {
      while (i < line.size() && (line[i] == ' ' || line[i] == ',')) ++i;
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      const std::size_t key_start = i;
      while (i < line.size() && is_name_char(line[i])) ++i;
      if (i == key_start || i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') return std::nullopt;
      std::string key(line.substr(key_start, i - key_start));
      i += 2;
      std::string value;
      while (i < line.size() && line[i] != '"') {
        if (line[i] == '\\' && i + 1 < line.size()) {
          ++i;
          value.push_back(line[i] == 'n' ? '\n' : line[i]);
        } else {
          value.push_back(line[i]);
        }
        ++i;
      }
      if (i >= line.size()) return std::nullopt;
      ++i;  // closing quote
      s.labels.emplace_back(std::move(key), std::move(value));
    }
  }
  while (i < line.size() && line[i] == ' ') ++i;
  std::string_view rest = line.substr(i);
  rest = rest.substr(0, rest.find(' '));  // an optional timestamp follows
  const auto value = parse_value(rest);
  if (!value) return std::nullopt;
  s.value = *value;
  return s;
}

struct HttpResult {
  unsigned status = 0;
  std::string body;
  std::string error;  // set when no response arrived
};

struct AdminUrl {
  bool https = false;
  std::string host;
  std::string port = "80";
  std::string base_path;  // without a trailing '/'

  std::string scheme() const { return https ? "https" : "http"; }
};

std::optional<AdminUrl> parse_admin_url(std::string_view url) {
  AdminUrl out;
  if (url.substr(0, 7) == "http://") {
    url.remove_prefix(7);
  } else if (url.substr(0, 8) == "https://") {
    url.remove_prefix(8);
    out.https = true;
    out.port = "443";
  } else if (url.find("://") != std::string_view::npos) {
    return std::nullopt;
  }
  const std::size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  if (slash != std::string_view::npos) {
    out.base_path = std::string(url.substr(slash));
    while (!out.base_path.empty() && out.base_path.back() == '/') out.base_path.pop_back();
  }
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    out.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return std::nullopt;
      out.port = std::string(authority.substr(close + 2));
    }
  } else {
    const std::size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) out.port = std::string(authority.substr(colon + 1));
  }
  if (out.host.empty() || out.port.empty()) return std::nullopt;
  return out;
}

bool is_ip_address(const std::string& name) {
  boost::system::error_code ec;
  asio::ip::make_address(name, ec);
  return !ec;
}

// The client side of https:// scrapes: TLS 1.2 or later, the peer verified against
// `cafile` (or the system's CAs). A CA file that cannot be used is the caller's error.
Expected<std::unique_ptr<ssl::context>, std::string> make_tls_context(const std::string& cafile) {
  auto context = std::make_unique<ssl::context>(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
  boost::system::error_code ec;
  context->set_verify_mode(ssl::verify_peer, ec);
  if (cafile.empty()) {
    context->set_default_verify_paths(ec);
    if (ec) return make_unexpected(fmt::format("cannot use the system's CAs: {}", ec.message()));
  } else {
    context->load_verify_file(cafile, ec);
    if (ec) return make_unexpected(fmt::format("cannot load the CA file '{}': {}", cafile, ec.message()));
  }
  return context;
}

// One GET and its answer; the stream it runs over is the caller's.
struct Exchange {
  http::request<http::empty_body> request;
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  HttpResult result;

  void fail(std::string_view what, const boost::system::error_code& ec) {
    result.error = fmt::format("{}: {}", what, ec.message());
  }

  template <class Stream>
  void write_and_read(Stream& stream) {
    http::async_write(stream, request, [this, &stream](const boost::system::error_code& wec, std::size_t) {
      if (wec) return fail("write", wec);
      http::async_read(stream, buffer, response, [this](const boost::system::error_code& rec, std::size_t) {
        if (rec) return fail("read", rec);
        result.status = response.result_int();
        result.body = std::move(response.body());
      });
    });
  }
};

// The handshake's error, with OpenSSL's verdict on the certificate when that was the cause.
std::string tls_failure(SSL* ssl, const boost::system::error_code& ec) {
  const long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    return fmt::format("TLS handshake failed: certificate verification failed: {}",
                       X509_verify_cert_error_string(verify));
  }
  return fmt::format("TLS handshake failed: {}", ec.message());
}

// GET with one deadline over resolve, connect, the TLS handshake (with `tls`), write and read.
HttpResult http_get(const AdminUrl& url, const std::string& target, const std::string& token,
                    std::chrono::milliseconds timeout, ssl::context* tls) {
  asio::io_context io;
  tcp::resolver resolver(io);
  Exchange x;
  x.request = http::request<http::empty_body>{http::verb::get, target, 11};
  x.request.set(http::field::host, url.host);
  x.request.set(http::field::user_agent, "tern-top");
  // One request a connection: ternd then closes (with close_notify over TLS) after answering.
  x.request.keep_alive(false);
  if (!token.empty()) x.request.set(http::field::authorization, "Bearer " + token);

  const auto run = [&](auto& stream, auto&& on_connected) {
    auto& lowest = beast::get_lowest_layer(stream);
    lowest.expires_after(timeout);
    resolver.async_resolve(url.host, url.port,
                           [&](const boost::system::error_code& ec, const tcp::resolver::results_type& results) {
                             if (ec) return x.fail("resolve", ec);
                             lowest.async_connect(results, [&](const boost::system::error_code& cec, const tcp::endpoint&) {
                               if (cec) return x.fail("connect", cec);
                               on_connected();
                             });
                           });
    io.run_for(timeout + std::chrono::milliseconds(500));
  };

  if (tls == nullptr) {
    beast::tcp_stream stream(io);
    run(stream, [&] { x.write_and_read(stream); });
  } else {
    beast::ssl_stream<beast::tcp_stream> stream(io, *tls);
    SSL* native = stream.native_handle();
    // RFC 6066: SNI carries host names only. The name check is OpenSSL's, so a certificate
    // for another host fails the handshake with "hostname mismatch".
    if (is_ip_address(url.host)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(native), url.host.c_str());
    } else {
      // SSL_set_tlsext_host_name, without the macro's C cast.
      SSL_ctrl(native, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(url.host.c_str()));
      SSL_set1_host(native, url.host.c_str());
    }
    run(stream, [&] {
      stream.async_handshake(ssl::stream_base::client, [&](const boost::system::error_code& hec) {
        if (hec) {
          x.result.error = tls_failure(native, hec);
          return;
        }
        x.write_and_read(stream);
      });
    });
  }
  if (x.result.status == 0 && x.result.error.empty()) x.result.error = "timed out";
  return std::move(x.result);
}

std::string human_bytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  std::size_t unit = 0;
  while (std::fabs(bytes) >= 1024 && unit + 1 < std::size(kUnits)) {
    bytes /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{:.0f} {}", bytes, kUnits[unit]) : fmt::format("{:.1f} {}", bytes, kUnits[unit]);
}

std::string human_count(double n) {
  if (std::fabs(n) < 10'000) return fmt::format("{:.0f}", n);
  if (std::fabs(n) < 10'000'000) return fmt::format("{:.1f}k", n / 1e3);
  return fmt::format("{:.1f}M", n / 1e6);
}

std::string duration_text(double seconds) {
  const auto s = static_cast<long long>(std::max(seconds, 0.0));
  if (s >= 86400) return fmt::format("{}d {:02}:{:02}:{:02}", s / 86400, s % 86400 / 3600, s % 3600 / 60, s % 60);
  return fmt::format("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60);
}

}  // namespace

std::optional<std::string_view> MetricSample::label(std::string_view key) const {
  for (const auto& [k, v] : labels) {
    if (k == key) return std::string_view(v);
  }
  return std::nullopt;
}

std::vector<MetricSample> parse_prometheus_text(std::string_view text) {
  std::vector<MetricSample> out;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    if (auto sample = parse_line(line)) out.push_back(std::move(*sample));
  }
  return out;
}

std::optional<double> MetricsScrape::sum(std::string_view name) const {
  std::optional<double> total;
  for (const auto& s : samples) {
    if (s.name == name) total = total.value_or(0) + s.value;
  }
  return total;
}

std::vector<const MetricSample*> MetricsScrape::all(std::string_view name) const {
  std::vector<const MetricSample*> out;
  for (const auto& s : samples) {
    if (s.name == name) out.push_back(&s);
  }
  return out;
}

std::string render_top_frame(const MetricsScrape& now, const MetricsScrape* before, std::string_view source) {
  const double seconds =
      before != nullptr ? std::chrono::duration<double>(now.at - before->at).count() : 0.0;
  const auto value = [&now](std::string_view name) { return now.sum(name).value_or(0); };
  // Per-second rate of a counter; "-" without an earlier scrape, 0 after a restart.
  const auto rate = [&](std::string_view name) -> std::optional<double> {
    if (before == nullptr || seconds <= 0) return std::nullopt;
    const double delta = value(name) - before->sum(name).value_or(0);
    return delta < 0 ? 0.0 : delta / seconds;
  };
  const auto rate_text = [&](std::string_view name, bool bytes) {
    const auto r = rate(name);
    if (!r) return std::string("-");
    return bytes ? human_bytes(*r) + "/s" : fmt::format("{:.1f}/s", *r);
  };

  std::string out;
  std::string node = "?";
  std::string version = "?";
  if (const auto info = now.all("tern_build_info"); !info.empty()) {
    node = std::string(info.front()->label("node").value_or("?"));
    version = std::string(info.front()->label("version").value_or("?"));
  }
  const auto start = now.sum("tern_process_start_time_seconds");
  const double uptime = start ? static_cast<double>(std::time(nullptr)) - *start : 0;
  const auto cpu = rate("tern_process_cpu_seconds_total");
  out += fmt::format("ternd {} (node {})  {}  up {}  rss {}  cpu {}  fds {}\n", version, node, source,
                     start ? duration_text(uptime) : "?", human_bytes(value("tern_process_resident_memory_bytes")),
                     cpu ? fmt::format("{:.1f}%", *cpu * 100) : "-", human_count(value("tern_process_open_fds")));
  out += "\n";
  out += fmt::format("{:<14}{:>10} current {:>10} opened {:>10} refused   {} sessions\n", "connections",
                     human_count(value("tern_connections_current")), human_count(value("tern_connections_opened_total")),
                     human_count(value("tern_connections_refused_total")), human_count(value("tern_sessions")));
  out += fmt::format("{:<14}{:>12} in {:>12} out     total {} in, {} out\n", "messages",
                     rate_text("tern_messages_received_total", false), rate_text("tern_messages_sent_total", false),
                     human_count(value("tern_messages_received_total")), human_count(value("tern_messages_sent_total")));
  out += fmt::format("{:<14}{:>12} in {:>12} out     total {} in, {} out\n", "bytes",
                     rate_text("tern_received_bytes_total", true), rate_text("tern_sent_bytes_total", true),
                     human_bytes(value("tern_received_bytes_total")), human_bytes(value("tern_sent_bytes_total")));
  out += fmt::format("{:<14}{:>10} messages ({})  in-flight {}  retained {}  subscriptions {}\n", "queued",
                     human_count(value("tern_queued_messages")), human_bytes(value("tern_queued_bytes")),
                     human_count(value("tern_inflight_messages")), human_count(value("tern_retained_messages")),
                     human_count(value("tern_subscriptions")));
  std::string reasons;
  for (const auto* s : now.all("tern_messages_dropped_total")) {
    if (s->value <= 0) continue;
    reasons += fmt::format("  {} {}", s->label("reason").value_or("?"), human_count(s->value));
  }
  out += fmt::format("{:<14}{:>12}     total {}{}\n", "dropped", rate_text("tern_messages_dropped_total", false),
                     human_count(value("tern_messages_dropped_total")), reasons.empty() ? "" : "   by reason:" + reasons);
  out += fmt::format("{:<14}{} protocol errors\n", "errors", human_count(value("tern_protocol_errors_total")));
  if (now.sum("tern_store_commits_total")) {
    out += fmt::format("{:<14}{} commits ({})  {} fsyncs  last {:.2f} ms  max {:.2f} ms  {} write errors\n", "store",
                       human_count(value("tern_store_commits_total")), rate_text("tern_store_commits_total", false),
                       human_count(value("tern_store_fsyncs_total")), value("tern_store_commit_last_seconds") * 1e3,
                       value("tern_store_commit_max_seconds") * 1e3, human_count(value("tern_store_write_errors_total")));
  }
  std::string firing;
  for (const auto* s : now.all("tern_alert_firing")) {
    if (s->value > 0) firing += (firing.empty() ? "" : ", ") + std::string(s->label("alert").value_or("?"));
  }
  out += fmt::format("{:<14}{}\n", "alerts", firing.empty() ? "none firing" : "FIRING: " + firing);
  const auto deepest = now.all("tern_session_queued_messages");
  if (!deepest.empty()) {
    out += "\ndeepest session queues\n";
    for (const auto* s : deepest) {
      out += fmt::format("  {:>10}  {}\n", human_count(s->value), s->label("client_id").value_or("?"));
    }
  }
  return out;
}

TopCommand::TopCommand(CLI::App& app) {
  top_ = app.add_subcommand("top", "Live view of a ternd: rates, connections, queues, drops (from its admin /metrics)");
  top_->set_help_flag("--help", "Print this help message and exit");
  top_->add_option("--admin", options_.admin, "Admin endpoint of ternd: http://HOST:PORT or https://HOST:PORT")
      ->capture_default_str();
  top_->add_option("--token", options_.token, "Bearer token of the admin endpoint");
  top_->add_option("--cafile", options_.cafile,
                   "PEM CAs an https:// endpoint's certificate must chain to (default: the system's)");
  top_->add_option("--interval", options_.interval_ms, "Milliseconds between refreshes")
      ->check(CLI::Range(100, 3'600'000))
      ->capture_default_str();
  top_->add_option("--timeout", options_.timeout_ms, "Milliseconds to wait for each scrape")
      ->check(CLI::Range(100, 60'000))
      ->capture_default_str();
  top_->add_flag("--once", options_.once, "Print one frame (rates over one interval) and exit");
}

bool TopCommand::selected() const { return top_->parsed(); }

int TopCommand::run() const {
  const auto url = parse_admin_url(options_.admin);
  if (!url) {
    std::cerr << fmt::format("tern: --admin must be http://HOST:PORT or https://HOST:PORT (got \"{}\")\n",
                             options_.admin);
    return kUsage;
  }
  if (!url->https && !options_.cafile.empty()) {
    std::cerr << fmt::format("tern: --cafile needs an https:// admin endpoint (got \"{}\")\n", options_.admin);
    return kUsage;
  }
  std::unique_ptr<ssl::context> tls;
  if (url->https) {
    auto context = make_tls_context(options_.cafile);
    if (!context) {
      std::cerr << "tern: " << context.error() << '\n';
      return kUsage;
    }
    tls = std::move(*context);
  }
  const std::string source = fmt::format("{}:{}", url->host, url->port);
  const auto scrape = [&](MetricsScrape& out) -> int {
    const auto r = http_get(*url, url->base_path + "/metrics", options_.token,
                            std::chrono::milliseconds(options_.timeout_ms), tls.get());
    if (r.status == 0) {
      std::cerr << fmt::format("tern: cannot read {}://{}{}/metrics: {}\n", url->scheme(), source, url->base_path,
                               r.error);
      return kConnectionFailed;
    }
    if (r.status == 401 || r.status == 403) {
      std::cerr << fmt::format("tern: the admin endpoint at {} refused the token (HTTP {})\n", source, r.status);
      return kRejected;
    }
    if (r.status != 200) {
      std::cerr << fmt::format("tern: the admin endpoint at {} answered HTTP {}\n", source, r.status);
      return kConnectionFailed;
    }
    out.samples = parse_prometheus_text(r.body);
    out.at = std::chrono::steady_clock::now();
    return kOk;
  };

  const auto interval = std::chrono::milliseconds(options_.interval_ms);
  MetricsScrape previous;
  if (const int rc = scrape(previous); rc != kOk) return rc;
  if (options_.once) {
    std::this_thread::sleep_for(interval);  // the rates need a second reading
    MetricsScrape current;
    if (const int rc = scrape(current); rc != kOk) return rc;
    std::cout << render_top_frame(current, &previous, source) << std::flush;
    return kOk;
  }

  // The live view: one timer, Ctrl-C or SIGTERM ends it and restores the cursor.
  asio::io_context io;
  asio::steady_timer timer(io);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  int exit_code = kOk;
  std::cout << "\x1b[?25l";  // hide the cursor while redrawing
  const auto draw = [&](const MetricsScrape* before, const MetricsScrape& now) {
    std::cout << "\x1b[H\x1b[2J" << render_top_frame(now, before, source) << "\n(Ctrl-C to quit)" << std::flush;
  };
  draw(nullptr, previous);
  std::function<void()> tick = [&] {
    timer.expires_after(interval);
    timer.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      MetricsScrape current;
      if (const int rc = scrape(current); rc != kOk) {
        exit_code = rc;
        signals.cancel();
        return;
      }
      draw(&previous, current);
      previous = std::move(current);
      tick();
    });
  };
  signals.async_wait([&](const boost::system::error_code&, int) { timer.cancel(); });
  tick();
  io.run();
  std::cout << "\x1b[?25h\n" << std::flush;
  return exit_code;
}

}  // namespace tern::cli
