// PasswordVerifier: runs the slow password hash (PBKDF2, ~100 ms) on its own worker
// threads, so that checking a CONNECT's password never stalls the broker's thread, and
// hands each result back to the owner thread through `post`.
//
// Bounded: at most `max_pending` verifications are queued or running at once; beyond
// that submit() refuses, and the caller answers the CONNECT at once (a flood of
// CONNECTs with wrong passwords then costs the broker a refusal each, not a hash each).
//
// Thread-safety: submit(), pending() and stop() on the owner thread; completions run on
// the owner thread (wherever `post` runs them). After stop() no completion is posted;
// the ones already posted still run unless the owner's loop is gone.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "policy/password_file.hpp"

namespace tern::policy {

class PasswordVerifier {
 public:
  // Runs `fn` on the owner thread; called from the worker threads.
  using Post = std::function<void(std::function<void()>)>;
  using Done = std::function<void(bool password_matches)>;

  PasswordVerifier(Post post, std::size_t threads, std::size_t max_pending);
  ~PasswordVerifier();
  PasswordVerifier(const PasswordVerifier&) = delete;
  PasswordVerifier& operator=(const PasswordVerifier&) = delete;

  // Queues a verification of `password` against `entry`. False (and `done` is never
  // called) when `max_pending` are already queued or running, or after stop().
  bool submit(PasswordEntry entry, std::string password, Done done);

  // Verifications submitted whose completion has not run yet.
  std::size_t pending() const noexcept { return *pending_; }
  std::size_t max_pending() const noexcept { return max_pending_; }

  // Drops the queued verifications (their completions never run) and joins the workers.
  void stop();

 private:
  struct Job {
    PasswordEntry entry;
    std::string password;
    Done done;
  };
  void work();

  Post post_;
  std::size_t max_pending_;
  // Owner thread only. Shared with the completions, which may outlive the verifier when
  // the owner's loop runs them after stop().
  std::shared_ptr<std::size_t> pending_ = std::make_shared<std::size_t>(0);
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;      // guarded by mutex_
  bool stopping_ = false;     // guarded by mutex_
  std::vector<std::thread> workers_;
};

}  // namespace tern::policy
