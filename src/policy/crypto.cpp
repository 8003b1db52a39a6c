#include "policy/crypto.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <sys/random.h>

#include <cerrno>
#include <limits>
#include <stdexcept>

#include "policy/text.hpp"

namespace tern::policy {

namespace {
const unsigned char* bytes_of(std::string_view s) noexcept { return reinterpret_cast<const unsigned char*>(s.data()); }
}  // namespace

// Straight from the kernel's generator (which OpenSSL's own seeds from): the policy makes
// its secrets at start-up, and asking OpenSSL would load its configuration and providers
// in every ternd, including those that never use TLS or passwords.
std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  std::size_t filled = 0;
  while (filled < n) {
    const ssize_t got = getrandom(out.data() + filled, n - filled, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) throw std::runtime_error("the system random generator failed");
    filled += static_cast<std::size_t>(got);
  }
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  // Lengths of hashes and signatures are public; only the contents must not leak.
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string pbkdf2_sha512(std::string_view password, std::string_view salt, std::uint32_t iterations) {
  std::string out(64, '\0');
  if (password.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
      iterations > static_cast<std::uint32_t>(std::numeric_limits<int>::max()) ||
      PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), bytes_of(salt),
                        static_cast<int>(salt.size()), static_cast<int>(iterations), EVP_sha512(),
                        static_cast<int>(out.size()), reinterpret_cast<unsigned char*>(out.data())) != 1) {
    throw std::runtime_error("PBKDF2 failed");
  }
  return out;
}

PasswordEntry make_password_entry(std::string user, std::string_view password, std::uint32_t iterations) {
  PasswordEntry e;
  e.user = std::move(user);
  e.iterations = iterations;
  e.salt = random_bytes(kSaltBytes);
  e.hash = pbkdf2_sha512(password, e.salt, iterations);
  return e;
}

bool verify_password(const PasswordEntry& entry, std::string_view password) {
  return constant_time_equal(pbkdf2_sha512(password, entry.salt, entry.iterations), entry.hash);
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  std::string out(32, '\0');
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), bytes_of(data), data.size(),
           reinterpret_cast<unsigned char*>(out.data()), &length) == nullptr) {
    throw std::runtime_error("HMAC failed");
  }
  out.resize(length);
  return out;
}

std::string sha256(std::string_view data) {
  std::string out(32, '\0');
  SHA256(bytes_of(data), data.size(), reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string event_signature(std::string_view key, std::string_view topic, std::string_view payload,
                            std::string_view event_id) {
  std::string data;
  data.reserve(topic.size() + payload.size() + event_id.size() + 2);
  data.append(topic);
  data += '\0';
  data.append(payload);
  data += '\0';
  data.append(event_id);
  return text::hex_encode(hmac_sha256(key, data));
}

}  // namespace tern::policy
