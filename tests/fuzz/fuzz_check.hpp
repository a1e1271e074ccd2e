#pragma once
// Shared by the libFuzzer targets (each a single .cpp that includes this once):
// a property check that names what broke before it traps (libFuzzer then saves
// the input as crash-<sha1>), and sanitizer defaults that make every UBSan
// report fatal.
//
//   FUZZ_REQUIRE(reparsed && *reparsed == entries, "format_manifest round trip");

#include <cstddef>
#include <cstdio>
#include <string_view>

// UBSan is built in recoverable mode (the top-level CMakeLists does not pass
// -fno-sanitize-recover), so without halt_on_error a report would be printed
// and the fuzzer would carry on as if nothing happened. Defined here, not
// inline (an unused inline function is never emitted): each fuzz target is
// one translation unit that includes this header once.
extern "C" __attribute__((used)) const char* __ubsan_default_options() {
    return "halt_on_error=1:print_stacktrace=1";
}

namespace sluice::fuzz {

[[noreturn]] inline void property_failed(const char* what, const char* file, int line) {
    std::fprintf(stderr, "\n==fuzz== property violated: %s (%s:%d)\n", what, file, line);
    std::fflush(stderr);
    __builtin_trap();
}

inline std::string_view as_text(const unsigned char* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

}  // namespace sluice::fuzz

#define FUZZ_REQUIRE(cond, what)                                                  \
    do {                                                                          \
        if (!(cond)) ::sluice::fuzz::property_failed((what), __FILE__, __LINE__); \
    } while (false)
