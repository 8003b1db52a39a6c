#include "passwd.hpp"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "policy/crypto.hpp"
#include "policy/password_file.hpp"

namespace tern::cli {

namespace {

constexpr int kUsage = 1;
constexpr int kFailed = 5;

// Reads a line from the terminal without echoing it.
std::optional<std::string> prompt(const char* text) {
  const int fd = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  termios saved{};
  const bool is_tty = ::tcgetattr(fd, &saved) == 0;
  if (is_tty) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  (void)!::write(fd, text, std::strlen(text));
  std::string line;
  char c = 0;
  while (::read(fd, &c, 1) == 1 && c != '\n') line += c;
  (void)!::write(fd, "\n", 1);
  if (is_tty) ::tcsetattr(fd, TCSAFLUSH, &saved);
  ::close(fd);
  return line;
}

bool write_atomically(const std::string& path, const std::string& content) {
  const std::string temporary = path + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  std::size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n <= 0) {
      ::close(fd);
      ::unlink(temporary.c_str());
      return false;
    }
    written += static_cast<std::size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced || std::rename(temporary.c_str(), path.c_str()) != 0) {
    ::unlink(temporary.c_str());
    return false;
  }
  return true;
}

}  // namespace

PasswdCommand::PasswdCommand(CLI::App& app) : iterations_(policy::kDefaultIterations) {
  command_ = app.add_subcommand("passwd", "Add, change or delete a user in a password file");
  command_->set_help_flag("--help", "Print this help message and exit");
  command_->add_option("file", file_, "Password file (created when missing)")->required();
  command_->add_option("user", user_, "User name")->required();
  command_->add_flag("--password-stdin", password_stdin_, "Read the password from standard input");
  command_->add_flag("--delete", remove_, "Remove the user");
  command_->add_option("--iterations", iterations_, "PBKDF2 iterations")
      ->check(CLI::Range(policy::kMinIterations, policy::kMaxIterations))
      ->capture_default_str();
}

bool PasswdCommand::selected() const { return command_->parsed(); }

int PasswdCommand::run() {
  if (!policy::is_valid_password_user(user_)) {
    std::cerr << "tern passwd: a user name is 1 to 256 characters without ':', spaces or control characters\n";
    return kUsage;
  }
  policy::PasswordFile file;
  std::error_code ec;
  if (std::filesystem::exists(file_, ec)) {
    auto loaded = policy::PasswordFile::load(file_);
    if (!loaded) {
      std::cerr << "tern passwd: " << loaded.error() << '\n';
      return kFailed;
    }
    file = std::move(*loaded);
  }
  if (remove_) {
    if (!file.remove(user_)) {
      std::cerr << "tern passwd: no user '" << user_ << "' in " << file_ << '\n';
      return kUsage;
    }
  } else {
    std::string password;
    if (password_stdin_) {
      if (!std::getline(std::cin, password)) {
        std::cerr << "tern passwd: no password on standard input\n";
        return kUsage;
      }
      if (!password.empty() && password.back() == '\r') password.pop_back();
    } else {
      const auto first = prompt("Password: ");
      if (!first) {
        std::cerr << "tern passwd: no terminal to prompt on; use --password-stdin\n";
        return kUsage;
      }
      const auto second = prompt("Password again: ");
      if (!second || *first != *second) {
        std::cerr << "tern passwd: the passwords differ\n";
        return kUsage;
      }
      password = *first;
    }
    if (password.empty()) {
      std::cerr << "tern passwd: the password must not be empty\n";
      return kUsage;
    }
    file.set(policy::make_password_entry(user_, password, iterations_));
  }
  if (!write_atomically(file_, file.to_text())) {
    std::cerr << "tern passwd: cannot write " << file_ << ": " << std::strerror(errno) << '\n';
    return kFailed;
  }
  return 0;
}

}  // namespace tern::cli
