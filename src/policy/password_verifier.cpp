#include "policy/password_verifier.hpp"

#include <memory>

#include "policy/crypto.hpp"

namespace tern::policy {

PasswordVerifier::PasswordVerifier(Post post, std::size_t threads, std::size_t max_pending)
    : post_(std::move(post)), max_pending_(max_pending == 0 ? 1 : max_pending) {
  if (threads == 0) threads = 1;
  workers_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
}

PasswordVerifier::~PasswordVerifier() { stop(); }

bool PasswordVerifier::submit(PasswordEntry entry, std::string password, Done done) {
  if (*pending_ >= max_pending_) return false;
  {
    const std::lock_guard lock(mutex_);
    if (stopping_) return false;
    // The completion decrements the count on the owner thread, so pending_ needs no lock.
    jobs_.push_back(Job{std::move(entry), std::move(password),
                        [pending = pending_, done = std::move(done)](bool ok) {
                          --*pending;
                          done(ok);
                        }});
  }
  ++*pending_;
  wake_.notify_one();
  return true;
}

void PasswordVerifier::stop() {
  {
    const std::lock_guard lock(mutex_);
    if (stopping_ && workers_.empty()) return;
    stopping_ = true;
    jobs_.clear();
  }
  wake_.notify_all();
  for (auto& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
  workers_.clear();
}

void PasswordVerifier::work() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    const bool ok = verify_password(job.entry, job.password);
    // The password copy is not needed past this point; do not keep it in memory longer
    // than the completion's lifetime requires.
    job.password.assign(job.password.size(), '\0');
    {
      // Checked under the lock so that no completion is posted once stop() has returned.
      const std::lock_guard lock(mutex_);
      if (stopping_) return;
      post_([done = std::move(job.done), ok] { done(ok); });
    }
  }
}

}  // namespace tern::policy
