#include "schema.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "policy/schema_registry.hpp"

namespace tern::cli {

namespace {

constexpr int kUsage = 1;
constexpr int kRejected = 4;
constexpr int kFailed = 5;

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

SchemaCommand::SchemaCommand(CLI::App& app) {
  command_ = app.add_subcommand("schema", "Manage a schema registry folder");
  command_->set_help_flag("--help", "Print this help message and exit");
  command_->require_subcommand(1);
  const auto common = [this](CLI::App& c, bool with_file, const char* file_help) {
    c.set_help_flag("--help", "Print this help message and exit");
    c.add_option("dir", dir_, "Registry folder")->required();
    if (with_file) {
      c.add_option("subject", subject_, "Subject")->required();
      c.add_option("file", file_, file_help)->required();
    }
  };
  list_ = command_->add_subcommand("list", "List subjects, versions and bindings");
  common(*list_, false, "");
  check_ = command_->add_subcommand("check", "Check a new version's compatibility with the latest");
  common(*check_, true, "JSON Schema file");
  add_ = command_->add_subcommand("add", "Check and store a new version");
  common(*add_, true, "JSON Schema file");
  for (auto* c : {check_, add_}) {
    c->add_option("--compatibility", compatibility_, "backward, forward, full or none")
        ->check(CLI::IsMember({"backward", "forward", "full", "none"}))
        ->capture_default_str();
  }
  validate_ = command_->add_subcommand("validate", "Validate a payload file against SUBJECT[@VERSION]");
  common(*validate_, true, "Payload file");
}

bool SchemaCommand::selected() const { return command_->parsed(); }

int SchemaCommand::run() {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  auto registry = policy::SchemaRegistry::load(dir_);
  if (!registry) {
    std::cerr << "tern schema: " << registry.error() << '\n';
    return kFailed;
  }
  if (list_->parsed()) {
    for (const auto& [subject, versions] : registry->subjects()) {
      std::string list;
      for (const auto& [version, schema] : versions) list += fmt::format("{}{}", list.empty() ? "" : ", ", version);
      std::cout << fmt::format("{}: {}\n", subject, list);
    }
    for (const auto& b : registry->bindings()) {
      std::cout << fmt::format("{} -> {}{}\n", b.filter, b.subject, b.version ? fmt::format("@{}", *b.version) : "");
    }
    return 0;
  }
  const auto at = subject_.find('@');
  const std::string subject = subject_.substr(0, at);
  if (!policy::is_valid_subject(subject)) {
    std::cerr << "tern schema: invalid subject '" << subject << "' (letters, digits, '-', '_' and '.')\n";
    return kUsage;
  }
  const auto text = read_text(file_);
  if (!text) {
    std::cerr << "tern schema: cannot read " << file_ << '\n';
    return kFailed;
  }
  const auto found = registry->subjects().find(subject);
  if (validate_->parsed()) {
    if (found == registry->subjects().end()) {
      std::cerr << "tern schema: no subject '" << subject << "'\n";
      return kUsage;
    }
    const policy::Schema* schema = &found->second.rbegin()->second;
    if (at != std::string::npos) {
      const auto it = found->second.find(std::atoi(subject_.c_str() + at + 1));
      if (it == found->second.end()) {
        std::cerr << "tern schema: no version " << subject_.substr(at + 1) << " of '" << subject << "'\n";
        return kUsage;
      }
      schema = &it->second;
    }
    if (const auto error = schema->validate(*text)) {
      std::cout << "invalid: " << *error << '\n';
      return kRejected;
    }
    std::cout << "valid\n";
    return 0;
  }

  auto candidate = policy::Schema::compile(*text, file_);
  if (!candidate) {
    std::cerr << "tern schema: " << candidate.error() << '\n';
    return kRejected;
  }
  int next_version = 1;
  if (found != registry->subjects().end()) {
    const auto& [latest_version, latest] = *found->second.rbegin();
    next_version = latest_version + 1;
    const auto problems =
        policy::compatibility_problems(latest, *candidate, *policy::parse_compatibility(compatibility_));
    if (!problems.empty()) {
      std::cout << fmt::format("incompatible with {}@{} ({}):\n", subject, latest_version, compatibility_);
      for (const auto& p : problems) std::cout << "  " << p << '\n';
      return kRejected;
    }
  }
  if (check_->parsed()) {
    std::cout << fmt::format("compatible: would be {}@{}\n", subject, next_version);
    return 0;
  }
  const fs::path folder = fs::path(dir_) / subject;
  fs::create_directories(folder, ec);
  const fs::path target = folder / fmt::format("{}.json", next_version);
  {
    std::ofstream out(target, std::ios::binary | std::ios::trunc);
    out << *text;
    if (!out.flush()) {
      std::cerr << "tern schema: cannot write " << target.string() << '\n';
      return kFailed;
    }
  }
  std::cout << fmt::format("{}@{}\n", subject, next_version);
  return 0;
}

}  // namespace tern::cli
