#pragma once
// Result<T>: a value or an Error, for every operation whose failure is an
// expected outcome (untrusted input, a refused bundle, a missing file).
//
//   Result<Digest> r = hash_file(path);
//   if (!r) return r.error();          // propagate, message intact
//   use(*r);
//
// Exceptions stay for programming errors and start-up configuration failures
// (see STYLE.md); nothing that parses untrusted bytes throws.

#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace sluice {

/// What went wrong, in words a user can act on ("data/x.bin: SHA-256 mismatch").
struct Error {
    std::string message;

    /// A copy of this error with `context` prepended ("context: message").
    [[nodiscard]] Error within(std::string_view context) const {
        return Error{std::string(context) + ": " + message};
    }
};

template <class T>
class [[nodiscard]] Result {
    static_assert(!std::is_same_v<std::remove_cv_t<T>, Error>, "Result<Error> is ambiguous");

public:
    Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
    Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

    [[nodiscard]] bool ok() const noexcept { return state_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    [[nodiscard]] T& value() & { return std::get<0>(state_); }
    [[nodiscard]] const T& value() const& { return std::get<0>(state_); }
    [[nodiscard]] T&& value() && { return std::get<0>(std::move(state_)); }
    [[nodiscard]] const Error& error() const { return std::get<1>(state_); }

    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

private:
    std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT: implicit by design

    [[nodiscard]] bool ok() const noexcept { return !failed_; }
    explicit operator bool() const noexcept { return ok(); }
    [[nodiscard]] const Error& error() const { return error_; }

private:
    Error error_;
    bool failed_ = false;
};

/// Shorthand for returning a failure: `return fail("data/x: not listed");`
inline Error fail(std::string message) { return Error{std::move(message)}; }

}  // namespace sluice
