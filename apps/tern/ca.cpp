#include "ca.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tern::cli {
namespace {

namespace fs = std::filesystem;

constexpr int kExitOk = 0;
constexpr int kExitUsage = 1;
constexpr int kExitFailed = 5;
constexpr long kDay = 24L * 3600;

struct Failure {
  std::string message;
};

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using CrlPtr = std::unique_ptr<X509_CRL, Deleter<X509_CRL, X509_CRL_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

std::string openssl_error() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    out += out.empty() ? "" : "; ";
    out += reason != nullptr ? reason : fmt::format("error {:#x}", e);
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

void check(bool ok, std::string_view what) {
  if (!ok) throw Failure{fmt::format("{}: {}", what, openssl_error())};
}

struct Options {
  std::string dir;
  std::string name;
  std::string common_name = "Tern local CA";
  bool server = false;
  std::vector<std::string> dns;
  std::vector<std::string> ips;
  std::vector<std::string> emails;
  long days = 0;  // 0: the command's default
  long crl_days = 30;
  bool force = false;
};

bool valid_file_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || name.front() == '.' || name == "ca" || name == "crl") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.' || c == '@';
  });
}

bool dns_like(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  });
}

// Writes PEM through `write` into a new file with the given mode; refuses to replace one
// unless `replace`.
template <class Write>
void write_pem(const fs::path& path, mode_t mode, bool replace, Write write) {
  const fs::path temporary = path.string() + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw Failure{fmt::format("cannot write {}: {}", temporary.string(), std::strerror(errno))};
  FILE* file = ::fdopen(fd, "w");
  if (file == nullptr) {
    ::close(fd);
    throw Failure{fmt::format("cannot write {}", temporary.string())};
  }
  const bool ok = write(file) == 1;
  const bool closed = std::fclose(file) == 0;
  if (!ok || !closed) {
    fs::remove(temporary);
    throw Failure{fmt::format("cannot write {}: {}", path.string(), openssl_error())};
  }
  if (!replace && fs::exists(path)) {
    fs::remove(temporary);
    throw Failure{fmt::format("{} exists already (use --force to replace it)", path.string())};
  }
  fs::rename(temporary, path);
}

PkeyPtr new_key() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  check(key != nullptr, "cannot generate an EC P-256 key");
  return key;
}

PkeyPtr read_key(const fs::path& path) {
  FILE* file = std::fopen(path.c_str(), "r");
  if (file == nullptr) throw Failure{fmt::format("cannot read {}: {}", path.string(), std::strerror(errno))};
  PkeyPtr key(PEM_read_PrivateKey(file, nullptr, nullptr, nullptr));
  std::fclose(file);
  check(key != nullptr, fmt::format("cannot read the key {}", path.string()));
  return key;
}

X509Ptr read_certificate(const fs::path& path) {
  FILE* file = std::fopen(path.c_str(), "r");
  if (file == nullptr) throw Failure{fmt::format("cannot read {}: {}", path.string(), std::strerror(errno))};
  X509Ptr cert(PEM_read_X509(file, nullptr, nullptr, nullptr));
  std::fclose(file);
  check(cert != nullptr, fmt::format("cannot read the certificate {}", path.string()));
  return cert;
}

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  check(ext != nullptr, fmt::format("cannot make the extension {} = {}", OBJ_nid2sn(nid), value));
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  check(ok == 1, "cannot add an extension");
}

void set_random_serial(X509* cert) {
  unsigned char bytes[16];
  check(RAND_bytes(bytes, sizeof bytes) == 1, "no random bytes");
  bytes[0] &= 0x7F;  // positive
  bytes[0] |= 0x01;  // and never zero
  BIGNUM* bn = BN_bin2bn(bytes, sizeof bytes, nullptr);
  check(bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != nullptr, "cannot set the serial");
  BN_free(bn);
}

// Valid from an hour ago (clock skew) for `days`; a negative `days` gives a certificate
// that expired that many days ago, for testing refusal of expired certificates.
void set_validity(X509* cert, long days) {
  if (days > 0) {
    check(X509_gmtime_adj(X509_getm_notBefore(cert), -3600) != nullptr, "notBefore");
    check(X509_gmtime_adj(X509_getm_notAfter(cert), days * kDay) != nullptr, "notAfter");
  } else {
    check(X509_gmtime_adj(X509_getm_notBefore(cert), (days - 1) * kDay) != nullptr, "notBefore");
    check(X509_gmtime_adj(X509_getm_notAfter(cert), days * kDay - 3600) != nullptr, "notAfter");
  }
}

void set_common_name(X509_NAME* name, const std::string& cn) {
  check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()),
                                   -1, -1, 0) == 1,
        "cannot set the common name");
}

int init(const Options& o) {
  const fs::path dir(o.dir);
  fs::create_directories(dir);
  if (!o.force && (fs::exists(dir / "ca.key") || fs::exists(dir / "ca.crt"))) {
    throw Failure{fmt::format("{} holds a CA already (use --force to replace it)", dir.string())};
  }
  auto key = new_key();
  X509Ptr cert(X509_new());
  check(cert != nullptr, "X509_new");
  X509_set_version(cert.get(), X509_VERSION_3);
  set_random_serial(cert.get());
  set_validity(cert.get(), o.days != 0 ? o.days : 3650);
  set_common_name(X509_get_subject_name(cert.get()), o.common_name);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  X509_set_pubkey(cert.get(), key.get());
  add_extension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
  add_extension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  add_extension(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
  check(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0, "cannot sign the CA certificate");
  write_pem(dir / "ca.key", 0600, o.force, [&](FILE* f) {
    return PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  });
  write_pem(dir / "ca.crt", 0644, o.force, [&](FILE* f) { return PEM_write_X509(f, cert.get()); });
  std::cout << fmt::format("CA \"{}\" created: {} and {} (keep ca.key private)\n", o.common_name,
                           (dir / "ca.crt").string(), (dir / "ca.key").string());
  return kExitOk;
}

int issue(const Options& o) {
  if (!valid_file_name(o.name)) {
    throw Failure{fmt::format("--name '{}' must be 1-64 characters of A-Z a-z 0-9 - _ . @, not start with '.', "
                              "and not be 'ca' or 'crl'", o.name)};
  }
  const fs::path dir(o.dir);
  auto ca_key = read_key(dir / "ca.key");
  auto ca_cert = read_certificate(dir / "ca.crt");
  auto key = new_key();
  X509Ptr cert(X509_new());
  check(cert != nullptr, "X509_new");
  X509_set_version(cert.get(), X509_VERSION_3);
  set_random_serial(cert.get());
  set_validity(cert.get(), o.days != 0 ? o.days : 825);
  set_common_name(X509_get_subject_name(cert.get()), o.name);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get()));
  X509_set_pubkey(cert.get(), key.get());
  add_extension(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_extension(cert.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature,keyAgreement");
  add_extension(cert.get(), ca_cert.get(), NID_ext_key_usage, o.server ? "serverAuth,clientAuth" : "clientAuth");
  add_extension(cert.get(), ca_cert.get(), NID_subject_key_identifier, "hash");
  add_extension(cert.get(), ca_cert.get(), NID_authority_key_identifier, "keyid:always");
  std::vector<std::string> names;
  for (const auto& d : o.dns) names.push_back("DNS:" + d);
  for (const auto& ip : o.ips) names.push_back("IP:" + ip);
  for (const auto& e : o.emails) names.push_back("email:" + e);
  if (names.empty() && dns_like(o.name)) names.push_back("DNS:" + o.name);
  if (!names.empty()) {
    std::string san;
    for (const auto& n : names) san += (san.empty() ? "" : ",") + n;
    add_extension(cert.get(), ca_cert.get(), NID_subject_alt_name, san);
  }
  check(X509_sign(cert.get(), ca_key.get(), EVP_sha256()) > 0, "cannot sign the certificate");
  const fs::path key_path = dir / (o.name + ".key");
  const fs::path cert_path = dir / (o.name + ".crt");
  write_pem(key_path, 0600, o.force, [&](FILE* f) {
    return PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  });
  write_pem(cert_path, 0644, o.force, [&](FILE* f) { return PEM_write_X509(f, cert.get()); });
  std::cout << fmt::format("{} certificate for \"{}\": {} and {}\n", o.server ? "server" : "client", o.name,
                           cert_path.string(), key_path.string());
  return kExitOk;
}

// Signs a CRL listing the serials of `revoked` (existing entries first) and writes crl.pem.
void write_crl(const fs::path& dir, const std::vector<X509*>& revoked, long crl_days) {
  auto ca_key = read_key(dir / "ca.key");
  auto ca_cert = read_certificate(dir / "ca.crt");
  CrlPtr old;
  if (fs::exists(dir / "crl.pem")) {
    FILE* file = std::fopen((dir / "crl.pem").c_str(), "r");
    if (file != nullptr) {
      old.reset(PEM_read_X509_CRL(file, nullptr, nullptr, nullptr));
      std::fclose(file);
    }
    check(old != nullptr, fmt::format("cannot read {}", (dir / "crl.pem").string()));
  }
  CrlPtr crl(X509_CRL_new());
  check(crl != nullptr, "X509_CRL_new");
  X509_CRL_set_version(crl.get(), 1);
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca_cert.get()));
  ASN1_TIME* now = X509_gmtime_adj(nullptr, -60);
  ASN1_TIME* next = X509_gmtime_adj(nullptr, crl_days * kDay);
  X509_CRL_set1_lastUpdate(crl.get(), now);
  X509_CRL_set1_nextUpdate(crl.get(), next);
  const auto add = [&](const ASN1_INTEGER* serial, const ASN1_TIME* when) {
    X509_REVOKED* entry = X509_REVOKED_new();
    check(entry != nullptr && X509_REVOKED_set_serialNumber(entry, const_cast<ASN1_INTEGER*>(serial)) == 1 &&
              X509_REVOKED_set_revocationDate(entry, const_cast<ASN1_TIME*>(when)) == 1,
          "cannot make a CRL entry");
    check(X509_CRL_add0_revoked(crl.get(), entry) == 1, "cannot add a CRL entry");
  };
  if (old) {
    STACK_OF(X509_REVOKED)* entries = X509_CRL_get_REVOKED(old.get());
    for (int i = 0; i < sk_X509_REVOKED_num(entries); ++i) {
      const X509_REVOKED* entry = sk_X509_REVOKED_value(entries, i);
      add(X509_REVOKED_get0_serialNumber(entry), X509_REVOKED_get0_revocationDate(entry));
    }
  }
  for (X509* cert : revoked) {
    const ASN1_INTEGER* serial = X509_get0_serialNumber(cert);
    bool listed = false;
    if (old) {
      STACK_OF(X509_REVOKED)* entries = X509_CRL_get_REVOKED(old.get());
      for (int i = 0; i < sk_X509_REVOKED_num(entries) && !listed; ++i) {
        listed = ASN1_INTEGER_cmp(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(entries, i)), serial) == 0;
      }
    }
    if (!listed) add(serial, now);
  }
  ASN1_TIME_free(now);
  ASN1_TIME_free(next);
  X509_CRL_sort(crl.get());
  check(X509_CRL_sign(crl.get(), ca_key.get(), EVP_sha256()) > 0, "cannot sign the CRL");
  write_pem(dir / "crl.pem", 0644, true, [&](FILE* f) { return PEM_write_X509_CRL(f, crl.get()); });
}

int revoke(const Options& o) {
  if (!valid_file_name(o.name)) throw Failure{fmt::format("--name '{}' is not a certificate of this CA", o.name)};
  const fs::path dir(o.dir);
  auto cert = read_certificate(dir / (o.name + ".crt"));
  write_crl(dir, {cert.get()}, o.crl_days);
  std::cout << fmt::format("\"{}\" revoked; {} updated (reload ternd with SIGHUP)\n", o.name,
                           (dir / "crl.pem").string());
  return kExitOk;
}

int refresh_crl(const Options& o) {
  write_crl(fs::path(o.dir), {}, o.crl_days);
  std::cout << fmt::format("{} signed again, valid for {} days\n", (fs::path(o.dir) / "crl.pem").string(), o.crl_days);
  return kExitOk;
}

}  // namespace

struct CaCommand::State {
  Options options;
  CLI::App* ca = nullptr;
  CLI::App* init = nullptr;
  CLI::App* issue = nullptr;
  CLI::App* revoke = nullptr;
  CLI::App* crl = nullptr;
};

CaCommand::~CaCommand() = default;

bool CaCommand::selected() const { return state_->ca->parsed(); }

CaCommand::CaCommand(CLI::App& app) : state_(std::make_unique<State>()) {
  auto& c = *state_;
  auto& o = c.options;
  auto* ca = c.ca = app.add_subcommand("ca", "A local certificate authority for mTLS (init, issue, revoke, crl)");
  ca->set_help_flag("--help", "Print this help message and exit");
  ca->require_subcommand(1);
  const auto dir_option = [&o](CLI::App* cmd) {
    cmd->set_help_flag("--help", "Print this help message and exit");
    cmd->add_option("--dir", o.dir, "The CA's directory")->required();
  };
  c.init = ca->add_subcommand("init", "Create the CA: ca.key and ca.crt (EC P-256)");
  dir_option(c.init);
  c.init->add_option("--cn", o.common_name, "The CA's common name")->capture_default_str();
  c.init->add_option("--days", o.days, "Validity in days (default 3650)");
  c.init->add_flag("--force", o.force, "Replace an existing CA");
  c.issue = ca->add_subcommand("issue", "Issue a certificate and key signed by the CA: NAME.crt and NAME.key");
  dir_option(c.issue);
  c.issue->add_option("--name", o.name, "Common name (the client's identity) and file name")->required();
  c.issue->add_flag("--server", o.server, "A server certificate (extended key usage serverAuth)");
  c.issue->add_option("--dns", o.dns, "DNS subject alternative name (repeatable)");
  c.issue->add_option("--ip", o.ips, "IP address subject alternative name (repeatable)");
  c.issue->add_option("--email", o.emails, "E-mail subject alternative name (repeatable)");
  c.issue->add_option("--days", o.days,
                      "Validity in days (default 825); a negative number gives a certificate that expired "
                      "that many days ago, for tests");
  c.issue->add_flag("--force", o.force, "Replace an existing certificate of that name");
  c.revoke = ca->add_subcommand("revoke", "Revoke NAME.crt: add it to crl.pem");
  dir_option(c.revoke);
  c.revoke->add_option("--name", o.name, "The certificate to revoke")->required();
  c.revoke->add_option("--crl-days", o.crl_days, "Days until the CRL must be signed again")->capture_default_str()
      ->check(CLI::Range(1, 3650));
  c.crl = ca->add_subcommand("crl", "Sign crl.pem again (before it expires), or create an empty one");
  dir_option(c.crl);
  c.crl->add_option("--crl-days", o.crl_days, "Days until the CRL must be signed again")->capture_default_str()
      ->check(CLI::Range(1, 3650));
}

int CaCommand::run() {
  auto& c = *state_;
  try {
    if (*c.init) return init(c.options);
    if (*c.issue) return issue(c.options);
    if (*c.revoke) return revoke(c.options);
    if (*c.crl) return refresh_crl(c.options);
  } catch (const Failure& f) {
    std::cerr << "tern ca: " << f.message << '\n';
    return kExitFailed;
  } catch (const fs::filesystem_error& e) {
    std::cerr << "tern ca: " << e.what() << '\n';
    return kExitFailed;
  }
  return kExitUsage;
}

}  // namespace tern::cli
