// tern: the command line. Wiring only: options in, tern::Client calls out, exit codes
// as documented in docs/cli.md.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdio>
#include <iostream>
#include <optional>

#include "ca.hpp"
#include "passwd.hpp"
#include "schema.hpp"
#include "sdk/text.hpp"
#include "stream.hpp"
#include "top.hpp"
#include "tern/client.hpp"

namespace {

enum Exit : int { kOk = 0, kUsage = 1, kConnectionFailed = 2, kTimeout = 3, kRejected = 4, kInternal = 5 };

struct Common {
  std::string host = "127.0.0.1";
  std::uint16_t port = 1883;
  int version = 5;
  std::string client_id;
  std::string username;
  std::string password;
  std::uint16_t keep_alive = 30;
  int qos = 0;
  int connect_timeout_ms = 5000;
  bool tls = false;
  std::string cafile;
  std::string cert;
  std::string key;
  std::string tls_server_name;
  bool insecure = false;
};

void add_common(CLI::App& cmd, Common& c) {
  cmd.add_option("-h,--host", c.host, "Broker host")->capture_default_str();
  cmd.add_option("-p,--port", c.port, "Broker port")->capture_default_str();
  cmd.add_option("-V,--protocol-version", c.version, "MQTT version: 5 or 4 (3.1.1)")->check(CLI::IsMember({4, 5}))->capture_default_str();
  cmd.add_option("-i,--id", c.client_id, "Client identifier (default: assigned or random)");
  cmd.add_option("-u,--username", c.username, "User name");
  cmd.add_option("-P,--password", c.password, "Password");
  cmd.add_option("-k,--keepalive", c.keep_alive, "Keep-alive in seconds")->capture_default_str();
  cmd.add_option("-q,--qos", c.qos, "QoS 0, 1 or 2")->check(CLI::Range(0, 2))->capture_default_str();
  cmd.add_option("--connect-timeout", c.connect_timeout_ms, "Connect timeout in milliseconds")->capture_default_str();
  cmd.add_flag("--tls", c.tls, "Connect with TLS (implied by the options below)");
  cmd.add_option("--cafile", c.cafile, "PEM CAs the broker's certificate must chain to (default: the system's)");
  cmd.add_option("--cert", c.cert, "Client certificate, PEM (mTLS; needs --key)");
  cmd.add_option("--key", c.key, "Private key of --cert, PEM");
  cmd.add_option("--tls-server-name", c.tls_server_name, "Name the broker's certificate must hold (default: --host)");
  cmd.add_flag("--insecure", c.insecure, "TLS without checking the broker's certificate (tests only)");
}

tern::ClientOptions client_options(const Common& c, std::string_view prefix) {
  tern::ClientOptions o;
  o.host = c.host;
  o.port = c.port;
  o.protocol_version = c.version;
  // 3.1.1 brokers need not assign identifiers, so the CLI always sends one.
  o.client_id = c.client_id.empty() ? fmt::format("{}-{}", prefix, tern::sdk::random_hex(6)) : c.client_id;
  if (!c.username.empty()) o.username = c.username;
  if (!c.password.empty()) o.password = c.password;
  o.keep_alive = c.keep_alive;
  o.connect_timeout = std::chrono::milliseconds(c.connect_timeout_ms);
  o.auto_reconnect = false;
  o.tls.enabled = c.tls || c.insecure || !c.cafile.empty() || !c.cert.empty() || !c.key.empty() ||
                  !c.tls_server_name.empty();
  o.tls.ca_file = c.cafile;
  o.tls.cert_file = c.cert;
  o.tls.key_file = c.key;
  o.tls.server_name = c.tls_server_name;
  o.tls.verify = !c.insecure;
  return o;
}

// start() fails only on local files: the outbox, or TLS certificates and keys.
int start_failed(std::error_code ec, const tern::Client& client) {
  if (ec == tern::Errc::invalid_argument) {
    std::cerr << "tern: " << client.last_error() << '\n';
    return kUsage;
  }
  return kInternal;
}

// `detail`: Client::last_error(), which says e.g. why a TLS handshake failed.
int connection_error(std::error_code ec, std::uint8_t reason, const Common& c, const std::string& detail) {
  if (ec == tern::Errc::connection_refused) {
    std::cerr << fmt::format("tern: connection to {}:{} refused by the broker (reason code 0x{:02x})\n", c.host, c.port, reason);
  } else if (ec == tern::Errc::timeout) {
    std::cerr << fmt::format("tern: no answer from {}:{} within {} ms\n", c.host, c.port, c.connect_timeout_ms);
  } else if (!detail.empty()) {
    std::cerr << "tern: " << detail << '\n';
  } else {
    std::cerr << fmt::format("tern: cannot connect to {}:{}: {}{}\n", c.host, c.port, ec.message(),
                             reason ? fmt::format(" (reason code 0x{:02x})", reason) : std::string());
  }
  return kConnectionFailed;
}

// Runs the client until `finish` is called, then disconnects cleanly.
struct Runner {
  boost::asio::io_context io;
  std::optional<tern::Client> client;
  int exit_code = kOk;
  bool finished = false;

  void finish(int code) {
    if (finished) return;
    finished = true;
    exit_code = code;
    client->stop(false, [this] { io.stop(); });
  }
  void abort(int code) {
    if (finished) return;
    finished = true;
    exit_code = code;
    io.stop();
  }
};

int run_pub(const Common& c, const std::string& topic, const std::string& message, bool retain,
            const std::vector<std::string>& user_properties) {
  tern::Message m;
  m.topic = topic;
  m.payload = message;
  m.qos = static_cast<tern::Qos>(c.qos);
  m.retain = retain;
  for (const auto& kv : user_properties) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos) {
      std::cerr << "tern: --user-property expects key=value, got '" << kv << "'\n";
      return kUsage;
    }
    m.user_properties.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  Runner r;
  r.client.emplace(r.io, client_options(c, "tern-pub"));
  r.client->on_connection_lost([&](std::error_code ec, std::uint8_t reason) { r.abort(connection_error(ec, reason, c, r.client->last_error())); });
  if (auto ec = r.client->publish(std::move(m), [&](std::error_code result, std::uint8_t reason) {
        if (result == tern::Errc::rejected) {
          std::cerr << fmt::format("tern: the broker rejected the message (reason code 0x{:02x})\n", reason);
          r.finish(kRejected);
        } else if (result) {
          std::cerr << "tern: publish failed: " << result.message() << '\n';
          r.finish(kConnectionFailed);
        } else {
          r.finish(kOk);
        }
      })) {
    std::cerr << "tern: cannot publish to '" << topic << "': " << ec.message() << '\n';
    return ec == tern::Errc::invalid_argument ? kUsage : kInternal;
  }
  if (auto ec = r.client->start()) return start_failed(ec, *r.client);
  r.io.run();
  return r.exit_code;
}

int run_sub(const Common& c, const std::vector<std::string>& filters, int count, const std::string& format,
            bool show_properties, int timeout_ms) {
  Runner r;
  r.client.emplace(r.io, client_options(c, "tern-sub"));
  int received = 0;
  boost::asio::steady_timer deadline(r.io);
  r.client->on_connection_lost([&](std::error_code ec, std::uint8_t reason) { r.abort(connection_error(ec, reason, c, r.client->last_error())); });
  r.client->on_message([&](const tern::Message& m) {
    if (r.finished) return;
    if (format == "json") {
      std::cout << tern::sdk::message_to_json(m) << '\n';
    } else if (format == "raw") {
      std::cout << m.payload;
    } else {
      std::cout << m.topic << ' ' << m.payload;
      if (show_properties) {
        for (const auto& [k, v] : m.user_properties) std::cout << ' ' << k << '=' << v;
      }
      std::cout << '\n';
    }
    std::cout.flush();
    if (count > 0 && ++received >= count) {
      deadline.cancel();
      r.finish(kOk);
    }
  });
  std::vector<tern::Subscription> subs;
  for (const auto& f : filters) subs.push_back(tern::Subscription{f, static_cast<tern::Qos>(c.qos)});
  r.client->subscribe(std::move(subs), [&](std::error_code ec, std::vector<std::uint8_t> codes) {
    if (ec == tern::Errc::invalid_argument) {
      std::cerr << "tern: invalid topic filter\n";
      return r.abort(kUsage);
    }
    if (ec) {
      for (std::size_t i = 0; i < codes.size() && i < filters.size(); ++i) {
        if (codes[i] >= 0x80) std::cerr << fmt::format("tern: subscription to '{}' refused (reason code 0x{:02x})\n", filters[i], codes[i]);
      }
      return r.finish(kRejected);
    }
    std::cerr << "tern: subscribed\n";
  });
  if (timeout_ms > 0) {
    deadline.expires_after(std::chrono::milliseconds(timeout_ms));
    deadline.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      std::cerr << fmt::format("tern: timed out after {} ms with {} message(s)\n", timeout_ms, received);
      r.finish(kTimeout);
    });
  }
  if (auto ec = r.client->start()) return start_failed(ec, *r.client);
  r.io.run();
  return r.exit_code;
}

int run_req(const Common& c, const std::string& topic, const std::string& message, int timeout_ms) {
  Runner r;
  auto options = client_options(c, "tern-req");
  if (c.version != 5) {
    std::cerr << "tern: req needs MQTT 5 (response topic and correlation data)\n";
    return kUsage;
  }
  r.client.emplace(r.io, options);
  const std::string reply_topic = fmt::format("tern/reply/{}", options.client_id);
  const std::string correlation = tern::sdk::random_hex(8);
  boost::asio::steady_timer deadline(r.io);
  r.client->on_connection_lost([&](std::error_code ec, std::uint8_t reason) { r.abort(connection_error(ec, reason, c, r.client->last_error())); });
  r.client->on_message([&](const tern::Message& m) {
    if (m.topic != reply_topic || m.correlation_data != correlation || r.finished) return;
    std::cout << m.payload << '\n';
    std::cout.flush();
    deadline.cancel();
    r.finish(kOk);
  });
  r.client->subscribe({tern::Subscription{reply_topic, tern::Qos::at_least_once}}, [&](std::error_code ec, std::vector<std::uint8_t>) {
    if (ec) {
      std::cerr << "tern: cannot subscribe to the reply topic: " << ec.message() << '\n';
      return r.finish(kRejected);
    }
    tern::Message m;
    m.topic = topic;
    m.payload = message;
    m.qos = static_cast<tern::Qos>(c.qos);
    m.response_topic = reply_topic;
    m.correlation_data = correlation;
    if (auto pec = r.client->publish(std::move(m), [&](std::error_code e, std::uint8_t reason) {
          if (e) {
            std::cerr << fmt::format("tern: request not accepted: {} (reason code 0x{:02x})\n", e.message(), reason);
            r.finish(kRejected);
          }
        })) {
      std::cerr << "tern: cannot publish to '" << topic << "': " << pec.message() << '\n';
      r.finish(pec == tern::Errc::invalid_argument ? kUsage : kInternal);
    }
  });
  deadline.expires_after(std::chrono::milliseconds(timeout_ms));
  deadline.async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    std::cerr << fmt::format("tern: no reply on '{}' within {} ms\n", topic, timeout_ms);
    r.finish(kTimeout);
  });
  if (auto ec = r.client->start()) return start_failed(ec, *r.client);
  r.io.run();
  return r.exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tern: publish, subscribe and request over MQTT"};
  app.set_help_flag("--help", "Print this help message and exit");
  app.require_subcommand(1);

  Common pub_common;
  std::string pub_topic;
  std::string pub_message;
  bool pub_retain = false;
  std::vector<std::string> pub_props;
  auto* pub = app.add_subcommand("pub", "Publish one message");
  pub->set_help_flag("--help", "Print this help message and exit");
  add_common(*pub, pub_common);
  pub->add_option("-t,--topic", pub_topic, "Topic name")->required();
  pub->add_option("-m,--message", pub_message, "Payload")->required();
  pub->add_flag("-r,--retain", pub_retain, "Retain the message");
  pub->add_option("--user-property", pub_props, "User property key=value (repeatable)");

  Common sub_common;
  std::vector<std::string> sub_filters;
  int sub_count = 0;
  int sub_timeout = 0;
  std::string sub_format = "text";
  bool sub_properties = false;
  auto* sub = app.add_subcommand("sub", "Subscribe and print messages");
  sub->set_help_flag("--help", "Print this help message and exit");
  add_common(*sub, sub_common);
  sub->add_option("-t,--topic", sub_filters, "Topic filter (repeatable)")->required();
  sub->add_option("-C,--count", sub_count, "Exit after COUNT messages");
  sub->add_option("--timeout", sub_timeout, "Exit with code 3 after MS milliseconds");
  sub->add_option("--format", sub_format, "text, json or raw")->check(CLI::IsMember({"text", "json", "raw"}))->capture_default_str();
  sub->add_flag("--properties", sub_properties, "Show user properties (text format)");

  Common req_common;
  std::string req_topic;
  std::string req_message;
  int req_timeout = 5000;
  auto* req = app.add_subcommand("req", "Send a request and print the reply");
  req->set_help_flag("--help", "Print this help message and exit");
  add_common(*req, req_common);
  req->add_option("-t,--topic", req_topic, "Request topic")->required();
  req->add_option("-m,--message", req_message, "Request payload")->required();
  req->add_option("--timeout", req_timeout, "Milliseconds to wait for the reply")->capture_default_str();

  tern::cli::StreamCommand stream_command(app);
  tern::cli::TopCommand top_command(app);

  tern::cli::CaCommand ca(app);
  tern::cli::PasswdCommand passwd(app);
  tern::cli::SchemaCommand schema(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kOk : kUsage;
  }
  if (ca.selected()) return ca.run();
  if (passwd.selected()) return passwd.run();
  if (schema.selected()) return schema.run();
  try {
    if (*pub) return run_pub(pub_common, pub_topic, pub_message, pub_retain, pub_props);
    if (*sub) return run_sub(sub_common, sub_filters, sub_count, sub_format, sub_properties, sub_timeout);
    if (*req) return run_req(req_common, req_topic, req_message, req_timeout);
    if (stream_command.selected()) return stream_command.run();
    if (top_command.selected()) return top_command.run();
  } catch (const std::exception& e) {
    std::cerr << "tern: " << e.what() << '\n';
    return kInternal;
  }
  return kUsage;
}
