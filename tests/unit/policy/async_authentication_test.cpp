// Password verification off the broker's thread: SecurityPolicy::start_authentication
// with a PasswordVerifier, its bound, the per-address back-off, and the verifier alone.
#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "policy/crypto.hpp"
#include "policy/password_verifier.hpp"
#include "policy/security_policy.hpp"

namespace tern::policy {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// The owner thread's loop: workers post completions here; the test runs them.
class Loop {
 public:
  PasswordVerifier::Post post() {
    return [this](std::function<void()> fn) {
      const std::lock_guard lock(mutex_);
      posters_.push_back(std::this_thread::get_id());
      tasks_.push_back(std::move(fn));
      cv_.notify_all();
    };
  }
  // Waits until `n` tasks have been posted (not yet run), up to 10 s.
  bool wait_for(std::size_t n) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, 10s, [&] { return tasks_.size() >= n; });
  }
  // Runs what was posted, on the calling thread.
  std::size_t run() {
    std::deque<std::function<void()>> tasks;
    {
      const std::lock_guard lock(mutex_);
      tasks.swap(tasks_);
    }
    for (auto& t : tasks) t();
    return tasks.size();
  }
  std::vector<std::thread::id> posters() {
    const std::lock_guard lock(mutex_);
    return posters_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::thread::id> posters_;
};

class AsyncAuthenticationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tern-async-auth-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write_passwords("right");
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write_passwords(std::string_view alice_password) {
    PasswordFile f;
    f.set(make_password_entry("alice", alice_password, kMinIterations));
    std::ofstream(dir_ / "passwd") << f.to_text();
  }
  std::unique_ptr<SecurityPolicy> make(SecurityConfig c = {}) {
    c.password_file = (dir_ / "passwd").string();
    auto p = SecurityPolicy::create(std::move(c), [this] { return now_; });
    EXPECT_TRUE(p) << p.error();
    return p ? std::move(*p) : nullptr;
  }
  static broker::ClientIdentity who(std::string user, std::string peer = "10.0.0.1:4000") {
    broker::ClientIdentity w;
    w.client_id = "c-" + user;
    w.username = std::move(user);
    w.peer = std::move(peer);
    return w;
  }

  // Starts an authentication that must go to the verifier; the verdict lands in `out`.
  static void start_async(SecurityPolicy& p, const broker::ClientIdentity& w, std::string_view password,
                          std::optional<std::uint8_t>& out) {
    const auto now = p.start_authentication(w, password, [&out](std::uint8_t rc) { out = rc; });
    EXPECT_FALSE(now.has_value()) << "answered at once with " << int(now.value_or(0));
    EXPECT_FALSE(out.has_value()) << "completion called from inside start_authentication";
  }

  fs::path dir_;
  std::chrono::steady_clock::time_point now_{std::chrono::seconds(1000)};
  Loop loop_;
};

TEST_F(AsyncAuthenticationTest, VerdictsArriveThroughTheOwnersLoopAndSuccessesAreThenAnsweredAtOnce) {
  auto p = make();
  p->start_verifier(loop_.post());
  std::optional<std::uint8_t> ok, wrong, unknown;
  start_async(*p, who("alice"), "right", ok);
  start_async(*p, who("alice"), "wrong", wrong);
  start_async(*p, who("mallory"), "right", unknown);  // hashed too: no faster than a wrong password
  EXPECT_EQ(p->stats().verifications_pending, 3u);
  ASSERT_TRUE(loop_.wait_for(3));
  EXPECT_FALSE(ok || wrong || unknown);  // nothing runs until the owner's loop does
  EXPECT_EQ(loop_.run(), 3u);
  EXPECT_EQ(ok, 0);
  EXPECT_EQ(wrong, 0x86);
  EXPECT_EQ(unknown, 0x86);
  for (const auto id : loop_.posters()) EXPECT_NE(id, std::this_thread::get_id());
  EXPECT_EQ(p->stats().auth_succeeded, 1u);
  EXPECT_EQ(p->stats().auth_bad_password, 1u);
  EXPECT_EQ(p->stats().auth_unknown_user, 1u);
  EXPECT_EQ(p->stats().password_verifications, 3u);
  EXPECT_EQ(p->stats().verifications_pending, 0u);

  // Remembered pairs and refusals that need no hash are answered at once.
  const auto noop = [](std::uint8_t) { ADD_FAILURE() << "no completion expected"; };
  EXPECT_EQ(p->start_authentication(who("alice"), "right", noop), std::optional<std::uint8_t>(0));
  EXPECT_EQ(p->start_authentication(who("alice"), "wrong", noop), std::optional<std::uint8_t>(0x86));
  EXPECT_EQ(p->start_authentication(who("alice"), std::nullopt, noop), std::optional<std::uint8_t>(0x86));
  broker::ClientIdentity anonymous;
  anonymous.client_id = "anon";
  EXPECT_EQ(p->start_authentication(anonymous, std::nullopt, noop), std::optional<std::uint8_t>(0x87));
  EXPECT_EQ(p->stats().password_verifications, 3u);
  p->stop_verifier();
}

TEST_F(AsyncAuthenticationTest, TooManyPendingVerificationsAreRefusedWith0x9FAndCounted) {
  SecurityConfig c;
  c.authentication.max_pending_verifications = 2;
  c.authentication.failures_before_backoff = 0;
  auto p = make(c);
  p->start_verifier(loop_.post());
  std::optional<std::uint8_t> a, b, d;
  start_async(*p, who("alice", "10.0.0.1:1"), "guess-1", a);
  start_async(*p, who("alice", "10.0.0.2:1"), "guess-2", b);
  const auto noop = [](std::uint8_t) { ADD_FAILURE() << "a refused CONNECT gets no completion"; };
  EXPECT_EQ(p->start_authentication(who("alice", "10.0.0.3:1"), "right", noop), std::optional<std::uint8_t>(0x9F));
  EXPECT_EQ(p->stats().auth_refused_busy, 1u);
  ASSERT_TRUE(loop_.wait_for(2));
  loop_.run();
  EXPECT_EQ(a, 0x86);
  EXPECT_EQ(b, 0x86);
  // Room again.
  start_async(*p, who("alice", "10.0.0.3:1"), "right", d);
  ASSERT_TRUE(loop_.wait_for(1));
  loop_.run();
  EXPECT_EQ(d, 0);
  const std::string text = format_policy_metrics(p->stats());
  EXPECT_NE(text.find("tern_security_authentications_total{result=\"busy\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("tern_security_password_verifications_total 3\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE tern_security_password_verifications_pending gauge"), std::string::npos);
}

TEST_F(AsyncAuthenticationTest, AnAddressThatFailsRepeatedlyBacksOffAndOthersDoNot) {
  SecurityConfig c;
  c.authentication.failures_before_backoff = 2;
  c.authentication.backoff_initial_ms = 1000;
  c.authentication.backoff_max_ms = 1500;
  auto p = make(c);
  EXPECT_EQ(p->authenticate(who("alice"), "right"), 0);  // remembered before the attack
  EXPECT_EQ(p->authenticate(who("alice"), "guess-1"), 0x86);
  EXPECT_EQ(p->authenticate(who("alice"), "guess-2"), 0x86);
  // Backing off: a CONNECT that needs a hash is refused without one...
  EXPECT_EQ(p->authenticate(who("alice"), "guess-3"), 0x9F);
  EXPECT_EQ(p->authenticate(who("mallory"), "x"), 0x9F);
  EXPECT_EQ(p->stats().auth_refused_backoff, 2u);
  EXPECT_EQ(p->stats().password_verifications, 3u);
  // ...a remembered pair is still answered (and does not end the back-off), and other
  // addresses are not affected.
  EXPECT_EQ(p->authenticate(who("alice"), "right"), 0);
  EXPECT_EQ(p->authenticate(who("alice"), "guess-3"), 0x9F);
  EXPECT_EQ(p->authenticate(who("alice", "10.0.0.2:9"), "guess-3"), 0x86);

  now_ += 1000ms;
  EXPECT_EQ(p->authenticate(who("alice"), "guess-4"), 0x86);  // the window is over; a third failure
  EXPECT_EQ(p->authenticate(who("alice"), "guess-5"), 0x9F);  // doubled, capped at 1.5 s
  now_ += 1499ms;
  EXPECT_EQ(p->authenticate(who("alice"), "guess-5"), 0x9F);
  now_ += 1ms;
  ASSERT_TRUE(p->reload());  // forgets the remembered pairs, not the back-off
  EXPECT_EQ(p->authenticate(who("alice"), "right"), 0);  // a verified success ends it
  EXPECT_EQ(p->authenticate(who("alice"), "guess-6"), 0x86);
  EXPECT_EQ(p->authenticate(who("alice"), "guess-7"), 0x86);
  EXPECT_EQ(p->authenticate(who("alice"), "guess-8"), 0x9F);
  EXPECT_EQ(p->stats().auth_refused_backoff, 6u);
  const std::string text = format_policy_metrics(p->stats());
  EXPECT_NE(text.find("tern_security_authentications_total{result=\"backoff\"} 6\n"), std::string::npos);
}

TEST_F(AsyncAuthenticationTest, BetweenBackOffWindowsAnAddressGetsOneVerificationAtATime) {
  SecurityConfig c;
  c.authentication.failures_before_backoff = 1;
  c.authentication.backoff_initial_ms = 1000;
  auto p = make(c);
  p->start_verifier(loop_.post());
  std::optional<std::uint8_t> first, second, other;
  start_async(*p, who("alice"), "guess-1", first);
  ASSERT_TRUE(loop_.wait_for(1));
  loop_.run();
  EXPECT_EQ(first, 0x86);
  const auto noop = [](std::uint8_t) { ADD_FAILURE() << "a refused CONNECT gets no completion"; };
  EXPECT_EQ(p->start_authentication(who("alice"), "guess-2", noop), std::optional<std::uint8_t>(0x9F));
  now_ += 1000ms;
  start_async(*p, who("alice"), "guess-2", second);
  EXPECT_EQ(p->start_authentication(who("alice"), "guess-3", noop), std::optional<std::uint8_t>(0x9F));
  start_async(*p, who("alice", "10.0.0.9:1"), "guess-3", other);
  ASSERT_TRUE(loop_.wait_for(2));
  loop_.run();
  EXPECT_EQ(second, 0x86);
  EXPECT_EQ(other, 0x86);
  EXPECT_EQ(p->stats().auth_refused_backoff, 2u);
  EXPECT_EQ(p->stats().password_verifications, 3u);
}

TEST_F(AsyncAuthenticationTest, APasswordChangeDuringVerificationRefusesTheOldPassword) {
  auto p = make();
  p->start_verifier(loop_.post());
  std::optional<std::uint8_t> verdict;
  start_async(*p, who("alice"), "right", verdict);
  ASSERT_TRUE(loop_.wait_for(1));
  write_passwords("changed");
  ASSERT_TRUE(p->reload());
  loop_.run();
  EXPECT_EQ(verdict, 0x86);
  verdict.reset();
  start_async(*p, who("alice"), "changed", verdict);
  ASSERT_TRUE(loop_.wait_for(1));
  loop_.run();
  EXPECT_EQ(verdict, 0);
}

TEST_F(AsyncAuthenticationTest, ConnectionQuotaIsCheckedWhenTheVerdictArrives) {
  SecurityConfig c;
  c.quotas.max_connections_per_user = 1;
  auto p = make(c);
  p->start_verifier(loop_.post());
  std::optional<std::uint8_t> verdict;
  auto second = who("alice");
  second.client_id = "second";
  start_async(*p, second, "right", verdict);
  p->client_connected(who("alice"));  // another client of alice's got in meanwhile
  ASSERT_TRUE(loop_.wait_for(1));
  loop_.run();
  EXPECT_EQ(verdict, 0x97);
}

TEST_F(AsyncAuthenticationTest, WithoutAVerifierStartAuthenticationAnswersAtOnce) {
  auto p = make();
  const auto noop = [](std::uint8_t) { ADD_FAILURE(); };
  EXPECT_EQ(p->start_authentication(who("alice"), "right", noop), std::optional<std::uint8_t>(0));
  p->start_verifier(loop_.post());
  p->stop_verifier();
  EXPECT_EQ(p->start_authentication(who("alice"), "wrong", noop), std::optional<std::uint8_t>(0x86));
}

TEST(PasswordVerifier, BoundsPendingWorkAndDropsQueuedWorkOnStop) {
  Loop loop;
  const PasswordEntry entry = make_password_entry("u", "pw", kMinIterations);
  PasswordVerifier v(loop.post(), 1, 2);
  std::vector<bool> results;
  EXPECT_TRUE(v.submit(entry, "pw", [&](bool ok) { results.push_back(ok); }));
  EXPECT_TRUE(v.submit(entry, "no", [&](bool ok) { results.push_back(ok); }));
  EXPECT_FALSE(v.submit(entry, "pw", [&](bool) { ADD_FAILURE(); }));
  EXPECT_EQ(v.pending(), 2u);
  ASSERT_TRUE(loop.wait_for(2));
  loop.run();
  EXPECT_EQ(results, (std::vector<bool>{true, false}));
  EXPECT_EQ(v.pending(), 0u);
  v.stop();
  EXPECT_FALSE(v.submit(entry, "pw", [&](bool) { ADD_FAILURE(); }));
  EXPECT_EQ(loop.run(), 0u);
}

}  // namespace
}  // namespace tern::policy
