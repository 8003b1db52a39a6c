// tern::Service on top of tern::Client.
//
// Design note. An event is acknowledged to the broker only when it is finished: handled,
// or retried and dead-lettered. Until then the broker keeps it (QoS 1/2, persistent
// session), so a crash mid-retry means a redelivery, which the de-duplication window
// (persisted in `state_path`) turns into a no-op once the event had been finished.
// The handled id is recorded before the acknowledgement for the same reason.
#include "tern/service.hpp"
#include "tern/state.hpp"

#include <fmt/format.h>
#include <sqlite3.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <map>
#include <random>

#include "core/log.hpp"
#include "core/topic.hpp"
#include "sdk/dedup.hpp"
#include "sdk/http_endpoint.hpp"
#include "sdk/log_forward.hpp"
#include "sdk/metrics.hpp"
#include "sdk/signing.hpp"
#include "sdk/text.hpp"
#include "sdk/trace.hpp"
#include "trace/tracing.hpp"

namespace tern {

namespace asio = boost::asio;

namespace {

// The ids of finished events, kept across restarts.
class HandledStore {
 public:
  static std::unique_ptr<HandledStore> open(const std::string& path, std::string& error) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
      error = db ? sqlite3_errmsg(db) : "cannot open";
      sqlite3_close(db);
      return nullptr;
    }
    std::unique_ptr<HandledStore> s(new HandledStore(db));
    char* msg = nullptr;
    if (sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL;"
                     "CREATE TABLE IF NOT EXISTS handled(id TEXT PRIMARY KEY, at_ms INTEGER NOT NULL);",
                     nullptr, nullptr, &msg) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO handled(id, at_ms) VALUES(?, ?)", -1, &s->insert_, nullptr) != SQLITE_OK) {
      error = msg ? msg : sqlite3_errmsg(db);
      sqlite3_free(msg);
      return nullptr;
    }
    return s;
  }
  ~HandledStore() {
    sqlite3_finalize(insert_);
    sqlite3_close(db_);
  }
  bool record(const std::string& id, std::int64_t at_ms) {
    sqlite3_reset(insert_);
    const bool ok = sqlite3_bind_text(insert_, 1, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT) == SQLITE_OK &&
                    sqlite3_bind_int64(insert_, 2, at_ms) == SQLITE_OK && sqlite3_step(insert_) == SQLITE_DONE;
    sqlite3_reset(insert_);
    return ok;
  }
  // Ids recorded after `since_ms`, oldest first; older rows are deleted.
  std::vector<std::pair<std::string, std::int64_t>> load(std::int64_t since_ms) {
    std::vector<std::pair<std::string, std::int64_t>> out;
    sqlite3_stmt* del = nullptr;
    if (sqlite3_prepare_v2(db_, "DELETE FROM handled WHERE at_ms <= ?", -1, &del, nullptr) == SQLITE_OK) {
      sqlite3_bind_int64(del, 1, since_ms);
      sqlite3_step(del);
    }
    sqlite3_finalize(del);
    sqlite3_stmt* sel = nullptr;
    if (sqlite3_prepare_v2(db_, "SELECT id, at_ms FROM handled ORDER BY at_ms", -1, &sel, nullptr) != SQLITE_OK) return out;
    while (sqlite3_step(sel) == SQLITE_ROW) {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(sel, 0));
      out.emplace_back(text ? text : "", sqlite3_column_int64(sel, 1));
    }
    sqlite3_finalize(sel);
    return out;
  }

 private:
  explicit HandledStore(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  sqlite3_stmt* insert_ = nullptr;
};

trace::TraceContext to_trace_context(const sdk::TraceContext& c) { return {c.trace_id, c.parent_id, c.flags}; }

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

class Service::Impl : public std::enable_shared_from_this<Service::Impl> {
 public:
  Impl(asio::io_context& io, ServiceOptions options)
      : io_(io),
        options_(std::move(options)),
        client_(io, prepare(options_)),
        dedup_(options_.dedup_window, options_.dedup_capacity),
        state_(options_.state_path.empty() ? ":memory:" : options_.state_path),
        rng_(std::random_device{}()),
        id_prefix_(sdk::random_hex(8)) {}

  static ClientOptions prepare(ServiceOptions& o) {
    if (o.client.client_id.empty()) o.client.client_id = fmt::format("{}-{}", o.name, sdk::random_hex(4));
    return o.client;
  }

  struct Registration {
    std::string filter;
    Handler handler;
    Qos qos;
  };

  // One consumed event until it is finished; shared by the handlers it matched.
  struct Run {
    Message message;
    AckFunction ack;
    sdk::TraceContext trace;
    bool trace_from_message = false;  // false: a new trace, since the event carried none
    std::size_t remaining = 0;
  };

  struct PendingRequest {
    RequestCallback done;
    std::unique_ptr<asio::steady_timer> timer;
  };

  std::error_code start() {
    if (auto ec = start_signatures()) return ec;
    if (!options_.state_path.empty()) {
      std::string error;
      handled_store_ = HandledStore::open(options_.state_path, error);
      if (!handled_store_) return Errc::storage_failed;
      const auto now_wall = wall_ms();
      const auto now = sdk::DedupWindow::Clock::now();
      for (const auto& [id, at] : handled_store_->load(now_wall - options_.dedup_window.count())) {
        dedup_.record(id, now - std::chrono::milliseconds(now_wall - at));
      }
    }
    if (auto ec = state_.open()) return ec;
    if (!options_.trace_endpoint.empty() && !tracing_) {
      trace::TracingOptions t;
      t.endpoint = options_.trace_endpoint;
      t.sample_ratio = options_.trace_sample_ratio;
      t.service_name = options_.name.empty() ? "tern-service" : options_.name;
      t.resource_attributes.push_back(trace::Attribute{"service.instance.id", client_.client_id()});
      auto tracing = trace::Tracing::start(std::move(t));
      if (!tracing) {
        trace_error_ = tracing.error();
        return Errc::invalid_argument;
      }
      tracing_ = std::move(*tracing);
    }
    if (options_.log_forward_level && !log_forward_) {
      sdk::LogForwardOptions forward;
      forward.source = options_.name.empty() ? client_.client_id() : options_.name;
      forward.min_level = *options_.log_forward_level;
      log_forward_ = std::make_unique<sdk::LogForward>(io_, std::move(forward), client_);
    }
    if (!options_.http_listen.empty() && !http_) {
      std::weak_ptr<Impl> weak = weak_from_this();
      auto endpoint = sdk::HttpEndpoint::start(io_, options_.http_listen, [weak](std::string_view path) {
        auto self = weak.lock();
        if (!self) return sdk::HttpResponse{503, "text/plain; charset=utf-8", "service gone\n"};
        return self->serve(path);
      });
      if (!endpoint) {
        http_error_ = endpoint.error();
        return Errc::invalid_argument;
      }
      http_ = std::move(*endpoint);
    }
    reply_topic_ = fmt::format("tern/reply/{}", client_.client_id());
    std::weak_ptr<Impl> weak = weak_from_this();
    client_.on_message_async([weak](Message m, AckFunction ack) {
      if (auto self = weak.lock()) self->on_message(std::move(m), std::move(ack));
    });
    std::vector<Subscription> subs;
    subs.push_back(Subscription{reply_topic_, Qos::at_least_once});
    for (const auto& r : registrations_) subs.push_back(Subscription{r.filter, r.qos});
    client_.subscribe(std::move(subs));
    started_ = true;
    return client_.start();
  }

  // Refused options are logged: the error code alone would not say which file or key.
  std::error_code start_signatures() {
    if (auto error = sdk::signing_options_error(options_.signing)) {
      log::error("sdk", "{}: {}", options_.name, *error);
      return Errc::invalid_argument;
    }
    if (signatures_ || options_.verification.required_on.empty()) return {};
    auto gate = sdk::SignatureGate::create(options_.verification, options_.name);
    if (!gate) {
      log::error("sdk", "{}: {}", options_.name, gate.error());
      return Errc::invalid_argument;
    }
    signatures_ = std::move(*gate);
    return {};
  }

  void on(std::string filter, Handler handler, Qos qos) {
    registrations_.push_back(Registration{filter, std::move(handler), qos});
    if (started_) client_.subscribe({Subscription{std::move(filter), qos}});
  }

  void on_message(Message m, AckFunction ack) {
    // Acknowledged: a refused event would be refused again on every redelivery.
    if (signatures_ && !signatures_->admit(m)) {
      ack();
      return;
    }
    if (m.topic == reply_topic_) {
      if (m.correlation_data) {
        auto it = requests_.find(*m.correlation_data);
        if (it != requests_.end()) {
          auto done = std::move(it->second.done);
          requests_.erase(it);
          if (done) done({}, m);
        }
      }
      ack();
      return;
    }
    // Not acknowledged: the broker keeps it for the next run of the service.
    if (stopping_) return;
    const std::string* id = m.user_property(kTernIdProperty);
    if (id && dedup_.contains(*id, sdk::DedupWindow::Clock::now())) {
      ++stats_.duplicates;
      ack();
      return;
    }
    std::vector<const Registration*> matched;
    for (const auto& r : registrations_) {
      if (topic_matches(r.filter, m.topic)) matched.push_back(&r);
    }
    if (matched.empty()) {
      ack();
      return;
    }
    auto run = std::make_shared<Run>();
    const std::string* parent = m.user_property(kTraceparentProperty);
    auto parsed = parent ? sdk::parse_traceparent(*parent) : std::nullopt;
    run->trace = parsed ? *parsed : sdk::new_trace();
    run->trace_from_message = parsed.has_value();
    run->message = std::move(m);
    run->ack = std::move(ack);
    run->remaining = matched.size();
    ++inflight_;
    for (const auto* r : matched) attempt(run, r->handler, 1);
  }

  void attempt(const std::shared_ptr<Run>& run, const Handler& handler, unsigned number) {
    Outcome outcome;
    const auto started = std::chrono::steady_clock::now();
    // The handler's publishes become children of the process span when there is one, so
    // the trace continues through this service instead of restarting at each hop.
    std::optional<trace::Span> span;
    if (tracing_ && run->trace_from_message && tracing_->should_sample(to_trace_context(run->trace))) {
      span = trace::Span::child_of(to_trace_context(run->trace), "process " + run->message.topic, trace::SpanKind::consumer);
      span->set("messaging.system", "mqtt");
      span->set("messaging.operation.type", "process");
      span->set("messaging.destination.name", run->message.topic);
      span->set("tern.service", options_.name);
      span->set("tern.attempt", static_cast<std::int64_t>(number));
      current_trace_ = sdk::TraceContext{span->trace_id, span->span_id, run->trace.flags};
    } else {
      current_trace_ = run->trace;
    }
    try {
      outcome = handler(Event(run->message, number, sdk::format_traceparent(run->trace)));
    } catch (const std::exception& e) {
      outcome = Outcome::failure(e.what());
    } catch (...) {
      outcome = Outcome::failure("unknown exception");
    }
    current_trace_.reset();
    if (span) {
      if (!outcome.ok) span->fail(outcome.error);
      span->end();
      tracing_->record(std::move(*span));
    }
    stats_.handler_latency.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    if (outcome.ok) {
      ++stats_.handled;
      return finish(run);
    }
    ++stats_.failed;
    const unsigned attempts = std::max(options_.retry.attempts, 1u);
    if (number < attempts && outcome.retryable) {
      ++stats_.retried;
      std::uniform_real_distribution<double> unit(0.0, 1.0);
      auto timer = std::make_shared<asio::steady_timer>(io_, backoff_delay(options_.retry.backoff, number - 1, unit(rng_)));
      std::weak_ptr<Impl> weak = weak_from_this();
      timer->async_wait([weak, run, handler, number, timer](boost::system::error_code ec) {
        auto self = weak.lock();
        if (!self || ec) return;
        self->attempt(run, handler, number + 1);
      });
      return;
    }
    dead_letter(run->message, fmt::format("{} (after {} attempts)", outcome.error, number));
    finish(run);
  }

  void dead_letter(const Message& original, std::string why) {
    Message dead = original;
    dead.topic = fmt::format("$dlq/{}/{}", options_.name, original.topic);
    dead.qos = Qos::at_least_once;
    dead.retain = false;
    dead.set_user_property(kTernErrorProperty, std::move(why));
    ++stats_.dead_lettered;
    client_.publish(std::move(dead));
  }

  void finish(const std::shared_ptr<Run>& run) {
    if (--run->remaining > 0) return;
    if (const std::string* id = run->message.user_property(kTernIdProperty)) {
      dedup_.record(*id, sdk::DedupWindow::Clock::now());
      if (handled_store_) handled_store_->record(*id, wall_ms());
    }
    run->ack();
    --inflight_;
    maybe_stopped();
  }

  std::error_code publish(Message m, PublishCallback done) {
    if (!m.user_property(kTernIdProperty)) m.set_user_property(kTernIdProperty, fmt::format("{}-{}", id_prefix_, ++sequence_));
    if (!options_.signing.key.empty()) {
      const std::string& producer = options_.signing.producer_id.empty() ? client_.client_id() : options_.signing.producer_id;
      sign_event(m, producer, options_.signing.key);
    }
    if (m.user_property(kTraceparentProperty)) return client_.publish(std::move(m), std::move(done));
    sdk::TraceContext context;
    bool sampled = false;
    if (current_trace_) {
      context = sdk::child_of(*current_trace_);
      sampled = tracing_ && tracing_->should_sample(to_trace_context(*current_trace_));
    } else {
      context = sdk::new_trace();
      if (tracing_) {
        // The decision travels in the flags, so the broker and the consumers follow it.
        sampled = tracing_->should_sample_root(context.trace_id);
        context.flags = sampled ? trace::kSampledFlag : std::uint8_t{0};
      }
    }
    m.set_user_property(kTraceparentProperty, sdk::format_traceparent(context));
    if (!sampled) return client_.publish(std::move(m), std::move(done));

    // The span id in the traceparent is this span's, so the broker's span is its child.
    auto span = std::make_shared<std::optional<trace::Span>>(trace::Span{});
    trace::Span& s = **span;
    s.trace_id = context.trace_id;
    s.span_id = context.parent_id;
    if (current_trace_) s.parent_span_id = current_trace_->parent_id;
    s.name = "publish " + m.topic;
    s.kind = trace::SpanKind::producer;
    s.start_unix_nanos = trace::unix_nanos_now();
    s.set("messaging.system", "mqtt");
    s.set("messaging.operation.type", "publish");
    s.set("messaging.destination.name", m.topic);
    s.set("tern.service", options_.name);
    s.set("tern.qos", static_cast<std::int64_t>(m.qos));
    // Ends when the broker acknowledged (QoS 0: when written), or at once on an error
    // that publish() returns itself; whichever comes first records it.
    std::weak_ptr<Impl> weak = weak_from_this();
    auto finish_span = [weak, span](std::error_code ec) {
      auto self = weak.lock();
      if (!self || !self->tracing_ || !*span) return;
      trace::Span done_span = std::move(**span);
      span->reset();
      if (ec) done_span.fail(ec.message());
      done_span.end();
      self->tracing_->record(std::move(done_span));
    };
    auto ec = client_.publish(std::move(m), [finish_span, done = std::move(done)](std::error_code e, std::uint8_t reason) {
      finish_span(e);
      if (done) done(e, reason);
    });
    if (ec) finish_span(ec);
    return ec;
  }

  void respond(std::string filter, Responder responder) {
    std::weak_ptr<Impl> weak = weak_from_this();
    on(std::move(filter), [weak, responder = std::move(responder)](const Event& e) -> Outcome {
      auto self = weak.lock();
      if (!self) return Outcome::failure("service gone");
      std::string reply;
      Outcome o = responder(e, reply);
      if (!o.ok || !e.message().response_topic) return o;
      Message m;
      m.topic = *e.message().response_topic;
      m.payload = std::move(reply);
      m.qos = Qos::at_least_once;
      m.correlation_data = e.message().correlation_data;
      if (auto ec = self->publish(std::move(m), {})) return Outcome::failure("reply not sent: " + ec.message());
      return o;
    }, options_.default_qos);
  }

  void request(std::string topic, std::string payload, std::chrono::milliseconds timeout, RequestCallback done) {
    const std::string correlation = sdk::random_hex(8);
    Message m;
    m.topic = std::move(topic);
    m.payload = std::move(payload);
    m.qos = Qos::at_least_once;
    m.response_topic = reply_topic_;
    m.correlation_data = correlation;
    if (auto ec = publish(std::move(m), {})) {
      asio::post(io_, [done, ec] { done(ec, {}); });
      return;
    }
    PendingRequest pending;
    pending.done = std::move(done);
    pending.timer = std::make_unique<asio::steady_timer>(io_, timeout);
    std::weak_ptr<Impl> weak = weak_from_this();
    pending.timer->async_wait([weak, correlation](boost::system::error_code ec) {
      auto self = weak.lock();
      if (!self || ec) return;
      auto it = self->requests_.find(correlation);
      if (it == self->requests_.end()) return;
      auto cb = std::move(it->second.done);
      self->requests_.erase(it);
      if (cb) cb(Errc::timeout, {});
    });
    requests_.emplace(correlation, std::move(pending));
  }

  void stop(std::function<void()> done) {
    if (done) stop_callbacks_.push_back(std::move(done));
    stopping_ = true;
    auto requests = std::move(requests_);
    requests_.clear();
    for (auto& [c, r] : requests) {
      if (r.done) r.done(Errc::shutting_down, {});
    }
    maybe_stopped();
  }

  void maybe_stopped() {
    if (!stopping_ || inflight_ > 0 || client_stopping_) return;
    client_stopping_ = true;
    std::weak_ptr<Impl> weak = weak_from_this();
    client_.stop(true, [weak] {
      auto self = weak.lock();
      if (!self) return;
      auto callbacks = std::move(self->stop_callbacks_);
      self->stop_callbacks_.clear();
      if (self->http_) self->http_->close();
      if (self->tracing_) self->tracing_->flush();
      for (auto& cb : callbacks) cb();
    });
  }

  ServiceStats stats() const {
    ServiceStats s = stats_;
    const ClientStats c = client_.stats();
    s.outbox_depth = client_.pending();
    s.inflight_events = inflight_;
    s.reconnects = c.connects > 0 ? c.connects - 1 : 0;
    s.connection_losses = c.connection_losses;
    s.outbox_rejected = c.outbox_rejected;
    s.outbox_dropped = c.outbox_dropped;
    s.connected = client_.connected();
    if (signatures_) s.signature_refusals = signatures_->refusals();
    if (log_forward_) {
      const sdk::LogForwardStats forwarded = log_forward_->stats();
      s.log_lines_forwarded = forwarded.forwarded;
      s.log_lines_dropped = forwarded.dropped;
    }
    return s;
  }

  Readiness readiness() const {
    if (stopping_) return {false, "stopping"};
    if (!started_) return {false, "not started"};
    if (!client_.connected()) return {false, "not connected to the broker"};
    const std::size_t limit = options_.overload_outbox_depth > 0
                                  ? options_.overload_outbox_depth
                                  : std::max<std::size_t>(1, options_.client.outbox_capacity / 10 * 9);
    const std::size_t depth = client_.pending();
    if (depth >= limit) return {false, fmt::format("overloaded: {} publishes waiting for the broker (limit {})", depth, limit)};
    return {true, "ready"};
  }

  sdk::HttpResponse serve(std::string_view path) {
    if (path == "/healthz") return {200, "text/plain; charset=utf-8", "ok\n"};
    if (path == "/readyz") {
      const Readiness r = readiness();
      return {r.ready ? 200u : 503u, "text/plain; charset=utf-8", r.reason + "\n"};
    }
    if (path == "/metrics") {
      return {200, "text/plain; version=0.0.4; charset=utf-8", sdk::render_metrics(options_.name, stats())};
    }
    return {404, "text/plain; charset=utf-8", "not found: /healthz, /readyz, /metrics\n"};
  }

  asio::io_context& io_;
  ServiceOptions options_;
  Client client_;
  sdk::DedupWindow dedup_;
  std::unique_ptr<HandledStore> handled_store_;
  StateStore state_;
  std::shared_ptr<sdk::HttpEndpoint> http_;
  std::unique_ptr<sdk::SignatureGate> signatures_;
  std::unique_ptr<sdk::LogForward> log_forward_;  // after client_: destroyed before it
  std::string http_error_;
  std::mt19937_64 rng_;
  std::string id_prefix_;
  std::uint64_t sequence_ = 0;
  std::string reply_topic_;
  std::vector<Registration> registrations_;
  std::map<std::string, PendingRequest> requests_;
  std::optional<sdk::TraceContext> current_trace_;
  std::unique_ptr<trace::Tracing> tracing_;
  std::string trace_error_;
  std::size_t inflight_ = 0;
  bool started_ = false;
  bool stopping_ = false;
  bool client_stopping_ = false;
  std::vector<std::function<void()>> stop_callbacks_;
  ServiceStats stats_;
};

Service::Service(asio::io_context& io, ServiceOptions options) : impl_(std::make_shared<Impl>(io, std::move(options))) {}
Service::~Service() = default;
void Service::on(std::string filter, Handler handler, std::optional<Qos> qos) {
  impl_->on(std::move(filter), std::move(handler), qos.value_or(impl_->options_.default_qos));
}
void Service::respond(std::string filter, Responder responder) { impl_->respond(std::move(filter), std::move(responder)); }
std::error_code Service::start() { return impl_->start(); }
void Service::stop(std::function<void()> done) { impl_->stop(std::move(done)); }
std::error_code Service::publish(std::string topic, std::string payload, std::optional<Qos> qos, PublishCallback done) {
  Message m;
  m.topic = std::move(topic);
  m.payload = std::move(payload);
  m.qos = qos.value_or(impl_->options_.default_qos);
  return impl_->publish(std::move(m), std::move(done));
}
std::error_code Service::publish(Message message, PublishCallback done) { return impl_->publish(std::move(message), std::move(done)); }
void Service::request(std::string topic, std::string payload, std::chrono::milliseconds timeout, RequestCallback done) {
  impl_->request(std::move(topic), std::move(payload), timeout, std::move(done));
}
Qos Service::default_qos() const noexcept { return impl_->options_.default_qos; }
Client& Service::client() noexcept { return impl_->client_; }
ServiceStats Service::stats() const noexcept { return impl_->stats(); }
bool Service::ready() const noexcept { return impl_->readiness().ready; }
Readiness Service::readiness() const { return impl_->readiness(); }
std::uint16_t Service::http_port() const noexcept { return impl_->http_ ? impl_->http_->port() : 0; }
StateStore& Service::state() { return impl_->state_; }

}  // namespace tern
