// ternd: configuration, command line, start and stop. Everything else lives in the
// modules under src/.
#include <csignal>
#include <filesystem>
#include <iostream>
#include <system_error>
#include <variant>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <optional>

#include "admin/admin_server.hpp"
#include "admin/alerts.hpp"
#include "admin/log_forwarder.hpp"
#include "admin/sys_figures.hpp"
#include "command_line.hpp"
#include "config.hpp"
#include "core/log.hpp"
#include "net/server.hpp"
#include "policy/security_policy.hpp"
#include "store/sqlite_store.hpp"
#include "tracing.hpp"

namespace {

constexpr std::string_view kComponent = "ternd";

std::unique_ptr<tern::ternd::BrokerTracer> start_tracing(const tern::ternd::Config& config) {
  const auto& t = config.tracing;
  tern::trace::TracingOptions options;
  options.endpoint = t.endpoint;
  options.sample_ratio = t.sample_ratio;
  options.service_name = t.service_name;
  options.resource_attributes.push_back({"service.instance.id", config.broker.node_name});
  options.version = TERN_VERSION;
  options.max_queue_spans = t.max_queue_spans;
  options.max_batch_spans = t.max_batch_spans;
  options.flush_delay = std::chrono::milliseconds(t.flush_ms);
  auto tracing = tern::trace::Tracing::start(std::move(options));
  if (!tracing) {
    tern::log::error(kComponent, "tracing: {}", tracing.error());
    return nullptr;
  }
  tern::log::info(kComponent, "tracing to {} (sample ratio {})", t.endpoint, t.sample_ratio);
  return std::make_unique<tern::ternd::BrokerTracer>(std::move(*tracing));
}

int run(const tern::ternd::CommandLine& cl) {
  using namespace tern::ternd;
  auto config = resolve_config(cl.overrides);
  if (!config) {
    std::cerr << "ternd: " << config.error() << '\n';
    return cl.check_config ? kExitFailure : kExitConfigError;
  }
  if (cl.check_config) {
    std::cout << to_toml(*config);
    return kExitOk;
  }

  tern::log::set_level(config->log_level);
  tern::log::set_ring_capacity(config->admin.log_ring_lines);
  if (!config->admin.log_error_file.empty()) {
    const auto& a = config->admin;
    if (auto problem = tern::log::set_error_file(a.log_error_file, a.log_error_file_max_bytes, a.log_error_file_keep);
        !problem.empty()) {
      tern::log::error(kComponent, "error lines are not persisted: {}", problem);
    }
  }
  if (!config->data_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(config->data_dir, ec);
    if (ec) {
      tern::log::error(kComponent, "cannot create data directory {}: {}", config->data_dir, ec.message());
      return kExitFailure;
    }
  }

  tern::log::info(kComponent, "ternd {} starting (node {})", TERN_VERSION, config->broker.node_name);
  // The store: SQLite in the data directory, unless durability is "memory" or there is
  // no data directory. A store that cannot be opened at all does not stop ternd: it runs
  // in memory and says so loudly.
  tern::store::SqliteStore* sqlite = nullptr;
  tern::net::StoreFactory make_store;
  if (config->durability == Durability::memory) {
    tern::log::info(kComponent, "durability memory: nothing is written to disk");
  } else if (config->data_dir.empty()) {
    tern::log::warn(kComponent, "no data_dir: state is kept in memory and acknowledgements do not survive a restart");
  } else {
    make_store = [&](tern::net::PostFn post) -> std::unique_ptr<tern::broker::Store> {
      tern::store::SqliteStore::Options options;
      options.path = std::filesystem::path(config->data_dir) / "ternd.db";
      options.durability = config->durability == Durability::fsync ? tern::store::Durability::fsync
                                                                    : tern::store::Durability::batch;
      options.post_to_owner = std::move(post);
      options.min_commit_interval = std::chrono::milliseconds(config->store.commit_interval_ms);
      options.max_commit_delay = std::chrono::milliseconds(config->store.commit_delay_ms);
      options.commit_bytes = static_cast<std::size_t>(config->store.commit_bytes);
      options.page_size = static_cast<int>(config->store.page_size);
      auto opened = tern::store::SqliteStore::open(options);
      if (!opened) {
        tern::log::error(kComponent, "cannot open the store {}: {}; running with state in memory",
                         options.path.string(), opened.error());
        return nullptr;
      }
      sqlite = opened->get();
      tern::log::info(kComponent, "store {} ({})", options.path.string(), durability_name(config->durability));
      return std::move(*opened);
    };
  }
  // Authentication, ACLs, quotas, schemas and signatures (docs/security.md). A listener
  // that authenticates clients by certificate or PSK turns anonymous access off by default.
  auto security_config = config->security;
  for (const auto& listener : config->listeners) {
    if (listener.client_certificates != tern::net::ClientCertificates::none || !listener.psk_file.empty()) {
      security_config.transport_authentication = true;
    }
  }
  auto security = tern::policy::SecurityPolicy::create(std::move(security_config));
  if (!security) {
    tern::log::error(kComponent, "security: {}", security.error());
    return kExitConfigError;
  }
  // The tracer must outlive the broker, so it is declared before the server.
  std::unique_ptr<tern::ternd::BrokerTracer> tracer;
  if (config->tracing.enabled()) {
    tracer = start_tracing(*config);
    if (!tracer) return kExitConfigError;
  }
  tern::net::Server server(config->broker, make_store, security->get(), config->threads);
  if (tracer) server.broker().set_tracer(tracer.get());
  server.on_reload([&security] { (void)(*security)->reload(); });
  if (auto listening = server.listen(config->listeners); !listening) {
    tern::log::error(kComponent, "{}", listening.error());
    return kExitFailure;
  }
  // Admin endpoint, log forwarding and alerts: all on the broker's loop. Declared after
  // `server` so they are destroyed before it.
  auto& io = server.io_context();
  auto& broker = server.broker();
  const auto& admin_settings = config->admin;
  tern::admin::Sources sources;
  sources.broker_stats = [&broker] { return broker.stats(); };
  sources.clients = [&broker] { return broker.clients(); };
  sources.subscriptions = [&broker] { return broker.subscriptions(); };
  sources.queued_messages_total = [&broker] { return broker.queued_messages_total(); };
  sources.inflight_messages_total = [&broker] { return broker.inflight_messages_total(); };
  sources.extra_metrics = [&security, &server] {
    std::string out = tern::policy::format_policy_metrics((*security)->stats());
    const auto t = server.transport_stats();
    out += "# HELP tern_transport_handshakes_failed_total TLS handshakes or WebSocket upgrades refused.\n"
           "# TYPE tern_transport_handshakes_failed_total counter\n";
    out += fmt::format("tern_transport_handshakes_failed_total {}\n", t.handshakes_failed);
    out += "# HELP tern_transport_handshakes_timed_out_total Handshakes not completed within the listener's timeout.\n"
           "# TYPE tern_transport_handshakes_timed_out_total counter\n";
    out += fmt::format("tern_transport_handshakes_timed_out_total {}\n", t.handshakes_timed_out);
    out += "# HELP tern_transport_certificate_reloads_failed_total Certificate reloads (SIGHUP) that failed.\n"
           "# TYPE tern_transport_certificate_reloads_failed_total counter\n";
    out += fmt::format("tern_transport_certificate_reloads_failed_total {}\n", t.certificate_reloads_failed);
    return out;
  };
  sources.store_metrics = [&sqlite]() -> std::optional<tern::admin::StoreMetrics> {
    if (sqlite == nullptr) return std::nullopt;
    const auto m = sqlite->metrics();
    tern::admin::StoreMetrics out;
    out.commits = m.commits;
    out.fsyncs = m.fsyncs;
    out.write_errors = m.write_errors;
    out.ops_written = m.ops_written;
    out.last_commit_us = m.last_commit_us;
    out.avg_commit_us = m.avg_commit_us;
    out.max_commit_us = m.max_commit_us;
    out.max_batch_ops = m.max_batch_ops;
    out.batch_size_histogram = m.batch_size_histogram;
    std::error_code ec;
    if (const auto bytes = std::filesystem::file_size(sqlite->path(), ec); !ec) out.database_bytes = bytes;
    auto wal = sqlite->path();
    wal += "-wal";
    if (const auto bytes = std::filesystem::file_size(wal, ec); !ec) out.wal_bytes = bytes;
    return out;
  };
  // The same figures under $SYS, on the broker's $SYS cycle (only while someone subscribes).
  broker.set_sys_contributor([&sources, &broker, &security](tern::broker::Broker::SysFigures& out) {
    tern::admin::append_queue_sys_figures(broker.queued_messages_total(), broker.inflight_messages_total(), out);
    if (auto store = sources.store_metrics()) tern::admin::append_store_sys_figures(*store, out);
    const auto& p = (*security)->stats();
    tern::admin::append_sys_counters("$SYS/broker/security",
                                     {{"auth/succeeded", p.auth_succeeded},
                                      {"auth/bad_password", p.auth_bad_password},
                                      {"auth/unknown_user", p.auth_unknown_user},
                                      {"auth/anonymous_refused", p.auth_anonymous_refused},
                                      {"auth/busy", p.auth_refused_busy},
                                      {"auth/backoff", p.auth_refused_backoff},
                                      {"auth/verifications", p.password_verifications},
                                      {"acl/publish_denied", p.acl_publish_denied},
                                      {"acl/subscribe_denied", p.acl_subscribe_denied},
                                      {"acl/receive_denied", p.acl_receive_denied},
                                      {"quota/connections", p.connections_over_quota},
                                      {"quota/payload_too_large", p.payload_too_large},
                                      {"quota/message_rate", p.message_rate_refused},
                                      {"quota/byte_rate", p.byte_rate_refused},
                                      {"quota/throttled", p.throttled},
                                      {"schema/valid", p.schema_valid},
                                      {"schema/invalid", p.schema_invalid},
                                      {"signature/missing", p.signature_missing},
                                      {"signature/invalid", p.signature_invalid},
                                      {"reloads", p.reloads},
                                      {"reload_failures", p.reload_failures}},
                                     out);
  });
  // Expired messages leave the database on a slow timer: a real deadline, not polling.
  boost::asio::steady_timer purge_timer(io);
  std::function<void()> schedule_purge = [&] {
    purge_timer.expires_after(std::chrono::minutes(5));
    purge_timer.async_wait([&](const boost::system::error_code& ec) {
      if (ec || sqlite == nullptr) return;
      sqlite->purge_expired();
      schedule_purge();
    });
  };
  if (sqlite != nullptr) schedule_purge();
  const tern::admin::Publish publish = [&broker](std::string_view topic, std::string_view payload, int qos,
                                                 bool retain) {
    broker.publish_internal(topic, payload, qos, retain);
  };

  tern::admin::AlertThresholds thresholds;
  thresholds.interval = std::chrono::milliseconds(admin_settings.alert_interval_ms);
  thresholds.queue_depth = admin_settings.alert_queue_depth;
  thresholds.drop_rate = admin_settings.alert_drop_rate;
  if (admin_settings.alert_store_latency_ms) thresholds.store_latency_us = *admin_settings.alert_store_latency_ms * 1000;
  if (admin_settings.alert_memory_mb) thresholds.resident_memory_bytes = *admin_settings.alert_memory_mb << 20;
  tern::admin::AlertMonitor alerts(io, config->broker.node_name, thresholds, sources, publish);
  alerts.start();

  std::optional<tern::admin::LogForwarder> log_forwarder;
  if (admin_settings.log_forward_level) {
    log_forwarder.emplace(io, config->broker.node_name, *admin_settings.log_forward_level, publish);
  }

  std::optional<tern::admin::AdminServer> admin;
  if (!admin_settings.listen.empty()) {
    sources.readiness.push_back({"listeners", [&server]() -> std::optional<std::string> {
                                   if (server.bound_endpoints().empty()) return "no MQTT listener is bound";
                                   return std::nullopt;
                                 }});
    sources.readiness.push_back({"store", [&sqlite, &config]() -> std::optional<std::string> {
                                   if (config->durability != Durability::memory && !config->data_dir.empty() &&
                                       sqlite == nullptr) {
                                     return "the store could not be opened: state is in memory";
                                   }
                                   return std::nullopt;
                                 }});
    sources.readiness.push_back({"overload", [&alerts, &broker, max = config->broker.max_connections]()
                                                 -> std::optional<std::string> {
                                   if (broker.stats().connections_current >= max) return "connection limit reached";
                                   const auto firing = alerts.firing();
                                   if (firing.empty()) return std::nullopt;
                                   std::string names;
                                   for (const auto& name : firing) names += (names.empty() ? "" : ", ") + name;
                                   return "alerts firing: " + names;
                                 }});
    tern::admin::AdminConfig admin_config;
    admin_config.listen = admin_settings.listen;
    admin_config.bearer_token = admin_settings.token;
    admin_config.max_connections = admin_settings.max_connections;
    admin_config.node_name = config->broker.node_name;
    admin_config.version = TERN_VERSION;
    admin_config.tls_cert_file = admin_settings.cert_file;
    admin_config.tls_key_file = admin_settings.key_file;
    admin.emplace(io, admin_config, sources);
    admin->set_alert_provider([&alerts] { return alerts.status(); });
    // A certificate that cannot be used is a configuration error, like a TLS listener's:
    // falling back to plain HTTP would send the bearer token in clear text.
    if (auto loaded = admin->load_certificates(); !loaded) {
      tern::log::error(kComponent, "{}", loaded.error());
      return kExitConfigError;
    }
    // The broker is the device's critical function: an admin endpoint that cannot bind
    // is an error for the operator to see, not a reason to stop serving MQTT.
    if (auto started = admin->start(); !started) {
      tern::log::error(kComponent, "admin endpoint not started: {}", started.error());
      admin.reset();
    } else {
      tern::log::info(kComponent, "admin endpoint at {}://{}", admin->scheme(), admin->bound_endpoint());
      if (admin_config.tls()) server.on_reload([&admin] { (void)admin->reload_certificates(); });
    }
  }

  // Password hashes run on their own thread, off the broker's loop; verdicts come back
  // through the loop. Stopped before the loop (which they post to) is destroyed.
  (*security)->start_verifier([&io](std::function<void()> fn) { boost::asio::post(io, std::move(fn)); },
                              config->security.authentication.verifier_threads);
  server.run();
  (*security)->stop_verifier();
  if (admin) admin->stop();
  alerts.stop();
  purge_timer.cancel();
  tern::log::info(kComponent, "stopped");
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  // A peer that goes away while OpenSSL writes to its socket (an aborted TLS handshake,
  // say) must cost that one connection an EPIPE, not the whole daemon a SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  auto parsed = tern::ternd::parse_command_line(argc, argv, std::cout, std::cerr);
  if (const int* exit_code = std::get_if<int>(&parsed)) return *exit_code;
  try {
    return run(std::get<tern::ternd::CommandLine>(parsed));
  } catch (const std::exception& e) {
    tern::log::error(kComponent, "fatal: {}", e.what());
    return tern::ternd::kExitFailure;
  }
}
