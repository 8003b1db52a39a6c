// tern::Expected: std::expected where the standard library provides it.
//
// Why a fallback exists: the fuzz targets are built with Debian's clang 14, whose
// concepts support is too old for libstdc++ 12's <expected>. The fallback covers the
// subset the codec and core use (value/error access, void results); g++ always uses
// std::expected.
#pragma once

#include <utility>
#include <variant>
#include <version>

#if defined(__cpp_lib_expected)
#include <expected>
namespace tern {
template <class T, class E>
using Expected = std::expected<T, E>;
template <class E>
using Unexpected = std::unexpected<E>;
template <class E>
constexpr std::unexpected<std::decay_t<E>> make_unexpected(E&& e) {
  return std::unexpected<std::decay_t<E>>(std::forward<E>(e));
}
}  // namespace tern
#else
namespace tern {
template <class E>
class Unexpected {
 public:
  explicit constexpr Unexpected(E e) : error_(std::move(e)) {}
  constexpr const E& error() const& { return error_; }
  constexpr E& error() & { return error_; }

 private:
  E error_;
};
template <class E>
constexpr Unexpected<std::decay_t<E>> make_unexpected(E&& e) {
  return Unexpected<std::decay_t<E>>(std::forward<E>(e));
}

template <class T, class E>
class Expected {
 public:
  constexpr Expected() requires std::is_default_constructible_v<T> : v_(std::in_place_index<0>) {}
  template <class U = T>
    requires std::is_constructible_v<T, U&&>
  constexpr Expected(U&& value) : v_(std::in_place_index<0>, std::forward<U>(value)) {}
  template <class G>
  constexpr Expected(Unexpected<G> u) : v_(std::in_place_index<1>, std::move(u.error())) {}

  constexpr bool has_value() const { return v_.index() == 0; }
  constexpr explicit operator bool() const { return has_value(); }
  constexpr T& value() & { return std::get<0>(v_); }
  constexpr const T& value() const& { return std::get<0>(v_); }
  constexpr T&& value() && { return std::get<0>(std::move(v_)); }
  constexpr T& operator*() & { return value(); }
  constexpr const T& operator*() const& { return value(); }
  constexpr T* operator->() { return &value(); }
  constexpr const T* operator->() const { return &value(); }
  constexpr const E& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

template <class E>
class Expected<void, E> {
 public:
  constexpr Expected() = default;
  template <class G>
  constexpr Expected(Unexpected<G> u) : error_(std::move(u.error())), ok_(false) {}
  constexpr bool has_value() const { return ok_; }
  constexpr explicit operator bool() const { return ok_; }
  constexpr const E& error() const { return error_; }

 private:
  E error_{};
  bool ok_ = true;
};
}  // namespace tern
#endif
