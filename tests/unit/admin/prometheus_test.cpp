#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <limits>
#include <string>

#include <unistd.h>

#include "admin/metrics.hpp"
#include "admin/prometheus.hpp"

namespace tern::admin {
namespace {

MetricsSnapshot full_snapshot() {
  MetricsSnapshot s;
  s.version = "0.1.0";
  s.node = "gw-\"7\"";
  broker::BrokerStats b;
  b.connections_current = 3;
  b.connections_total = 10;
  b.connections_refused = 2;
  b.clients_connected = 3;
  b.sessions = 5;
  b.messages_received = 100;
  b.messages_sent = 250;
  b.bytes_received = 4096;
  b.bytes_sent = 9000;
  b.subscriptions = 7;
  b.retained_messages = 4;
  b.dropped_queue_full = 11;
  b.dropped_expired = 12;
  b.dropped_qos0_backpressure = 13;
  b.dropped_too_large = 14;
  b.dropped_not_authorized = 15;
  b.protocol_errors = 1;
  s.broker = b;
  s.queued_messages = 42;
  s.queued_bytes = 1234;
  s.inflight_messages = 6;
  s.deepest_queues = {{"slow\\one", 30}, {"line\nbreak", 12}};
  StoreMetrics st;
  st.commits = 20;
  st.fsyncs = 20;
  st.ops_written = 70;
  st.last_commit_us = 1500;
  st.avg_commit_us = 1000;
  st.max_commit_us = 9000;
  st.batch_size_histogram[0] = 5;   // size 1
  st.batch_size_histogram[2] = 10;  // sizes 4..7
  st.batch_size_histogram[13] = 5;  // 8192 and more
  s.store = st;
  s.process.resident_memory_bytes = 8 << 20;
  s.process.cpu_seconds = 1.25;
  s.process.open_fds = 12;
  s.process.max_fds = 1024;
  s.process.start_time_seconds = 1700000000.5;
  s.alerts = {{"queue_depth", true, 50, 40}, {"memory", false, 1, 2}};
  s.log_lines = 99;
  s.admin = AdminCounters{3, 1, 0};
  return s;
}

struct Family {
  std::string type;
  bool help = false;
  int samples = 0;
};

// A strict reading of the text format: every sample belongs to a family announced with
// HELP and TYPE before it, counters end in _total, names carry the tern_ prefix.
std::map<std::string, Family> parse_families(const std::string& text) {
  std::map<std::string, Family> families;
  std::istringstream in(text);
  std::string line;
  std::string current;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      const auto name = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_FALSE(families.contains(name)) << "family announced twice: " << name;
      families[name].help = true;
      current = name;
    } else if (line.rfind("# TYPE ", 0) == 0) {
      const auto rest = line.substr(7);
      const auto name = rest.substr(0, rest.find(' '));
      EXPECT_EQ(name, current) << "TYPE without its HELP: " << line;
      families[name].type = rest.substr(rest.find(' ') + 1);
    } else {
      EXPECT_FALSE(line.empty()) << "empty line in exposition";
      const auto name = line.substr(0, line.find_first_of("{ "));
      const bool belongs = name == current || name == current + "_bucket" || name == current + "_sum" ||
                           name == current + "_count";
      EXPECT_TRUE(belongs) << "sample outside its family: " << line;
      ++families[current].samples;
    }
  }
  return families;
}

TEST(PrometheusWriter, EscapesLabelValuesAndHelp) {
  PrometheusWriter w;
  w.family("tern_x", MetricType::gauge, "a \\ b\nc");
  w.sample("tern_x", {{"client_id", "a\"b\\c\nd"}}, std::uint64_t{1});
  EXPECT_EQ(w.text(),
            "# HELP tern_x a \\\\ b\\nc\n"
            "# TYPE tern_x gauge\n"
            "tern_x{client_id=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(PrometheusWriter, FormatsSpecialFloats) {
  PrometheusWriter w;
  w.sample("a", 0.5);
  w.sample("b", std::numeric_limits<double>::infinity());
  w.sample("c", std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(w.text(), "a 0.5\nb +Inf\nc NaN\n");
}

TEST(RenderMetrics, EveryFamilyHasHelpAndTypeAndCountersEndInTotal) {
  const auto text = render_metrics(full_snapshot());
  const auto families = parse_families(text);
  ASSERT_GT(families.size(), 30U);
  for (const auto& [name, family] : families) {
    EXPECT_TRUE(name.starts_with("tern_")) << name;
    EXPECT_TRUE(family.help) << name;
    EXPECT_FALSE(family.type.empty()) << name;
    EXPECT_GT(family.samples, 0) << name;
    if (family.type == "counter") {
      EXPECT_TRUE(name.ends_with("_total")) << name;
    }
    if (name.ends_with("_total")) {
      EXPECT_EQ(family.type, "counter") << name;
    }
  }
}

TEST(RenderMetrics, CarriesTheFigures) {
  const auto text = render_metrics(full_snapshot());
  EXPECT_NE(text.find("tern_build_info{version=\"0.1.0\",node=\"gw-\\\"7\\\"\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("tern_connections_current 3\n"), std::string::npos);
  EXPECT_NE(text.find("tern_connections_refused_total 2\n"), std::string::npos);
  EXPECT_NE(text.find("tern_messages_dropped_total{reason=\"queue_full\"} 11\n"), std::string::npos);
  EXPECT_NE(text.find("tern_messages_dropped_total{reason=\"not_authorized\"} 15\n"), std::string::npos);
  EXPECT_NE(text.find("tern_queued_messages 42\n"), std::string::npos);
  EXPECT_NE(text.find("tern_session_queued_messages{client_id=\"slow\\\\one\"} 30\n"), std::string::npos);
  EXPECT_NE(text.find("tern_session_queued_messages{client_id=\"line\\nbreak\"} 12\n"), std::string::npos);
  EXPECT_NE(text.find("tern_inflight_messages 6\n"), std::string::npos);
  EXPECT_NE(text.find("tern_store_commit_last_seconds 0.0015\n"), std::string::npos);
  EXPECT_NE(text.find("tern_process_cpu_seconds_total 1.25\n"), std::string::npos);
  EXPECT_NE(text.find("tern_alert_firing{alert=\"queue_depth\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("tern_alert_firing{alert=\"memory\"} 0\n"), std::string::npos);
}

TEST(RenderMetrics, GroupSizeHistogramIsCumulative) {
  const auto text = render_metrics(full_snapshot());
  EXPECT_NE(text.find("tern_store_commit_group_size_bucket{le=\"1\"} 5\n"), std::string::npos);
  EXPECT_NE(text.find("tern_store_commit_group_size_bucket{le=\"3\"} 5\n"), std::string::npos);
  EXPECT_NE(text.find("tern_store_commit_group_size_bucket{le=\"7\"} 15\n"), std::string::npos);
  EXPECT_NE(text.find("tern_store_commit_group_size_bucket{le=\"8191\"} 15\n"), std::string::npos);
  EXPECT_NE(text.find("tern_store_commit_group_size_bucket{le=\"+Inf\"} 20\n"), std::string::npos);
  EXPECT_NE(text.find("tern_store_commit_group_size_count 20\n"), std::string::npos);
  EXPECT_NE(text.find("tern_store_commit_group_size_sum 70\n"), std::string::npos);
}

TEST(RenderMetrics, LeavesOutWhatNoSourceProvides) {
  MetricsSnapshot s;
  s.version = "v";
  s.node = "n";
  const auto text = render_metrics(s);
  EXPECT_EQ(text.find("tern_connections_current"), std::string::npos);
  EXPECT_EQ(text.find("tern_store_"), std::string::npos);
  EXPECT_NE(text.find("tern_build_info"), std::string::npos);
  parse_families(text);
}

TEST(CollectMetrics, KeepsTheFiveDeepestQueuesDeepestFirst) {
  Sources sources;
  sources.clients = [] {
    std::vector<broker::ClientInfo> clients;
    for (int i = 0; i < 8; ++i) {
      broker::ClientInfo c;
      c.client_id = std::to_string(i);
      c.client_id.insert(0, 1, 'c');  // not "c" + ...: GCC 12 -O3 warns falsely (-Wrestrict)
      c.queued_messages = static_cast<std::size_t>(i * 10);
      c.queued_bytes = 1;
      clients.push_back(c);
    }
    return clients;
  };
  const auto snap = collect_metrics(sources);
  ASSERT_EQ(snap.deepest_queues.size(), kDeepestQueues);
  EXPECT_EQ(snap.deepest_queues.front().first, "c7");
  EXPECT_EQ(snap.deepest_queues.back().first, "c3");
  EXPECT_EQ(snap.queued_bytes, 8U);
  EXPECT_TRUE(snap.process.resident_memory_bytes.has_value());
  EXPECT_GT(*snap.process.resident_memory_bytes, 0U);
  EXPECT_TRUE(snap.process.open_fds.has_value());
  EXPECT_TRUE(snap.process.start_time_seconds.has_value());
}

// promtool is Debian's prometheus package; the check runs wherever it is installed.
TEST(RenderMetrics, PassesPromtoolCheckMetrics) {
#ifndef TERN_PROMTOOL
  GTEST_SKIP() << "promtool not found at configure time (Debian package: prometheus)";
#else
  auto snap = full_snapshot();
  const auto path = std::filesystem::temp_directory_path() / ("tern-metrics-" + std::to_string(::getpid()) + ".txt");
  {
    std::ofstream out(path);
    out << render_metrics(snap);
  }
  const std::string command = std::string(TERN_PROMTOOL) + " check metrics < " + path.string() + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  const int status = ::pclose(pipe);
  std::filesystem::remove(path);
  EXPECT_EQ(status, 0) << output;
  EXPECT_EQ(output, "") << output;
#endif
}

}  // namespace
}  // namespace tern::admin
