#pragma once
// Big-endian field access for the transfer formats (file-private to transfer/).
// Writer appends; Reader checks every length against the buffer and latches
// the first failure, so a parser reads fields in order and tests ok() once.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace sluice::transfer::wire {

inline void put_u16(std::byte* p, std::uint16_t v) {
    p[0] = std::byte(v >> 8);
    p[1] = std::byte(v & 0xff);
}
inline void put_u32(std::byte* p, std::uint32_t v) {
    for (int i = 3; i >= 0; --i, v >>= 8) p[i] = std::byte(v & 0xff);
}
inline void put_u64(std::byte* p, std::uint64_t v) {
    for (int i = 7; i >= 0; --i, v >>= 8) p[i] = std::byte(v & 0xff);
}
inline std::uint16_t get_u16(const std::byte* p) {
    return static_cast<std::uint16_t>((std::to_integer<unsigned>(p[0]) << 8) | std::to_integer<unsigned>(p[1]));
}
inline std::uint32_t get_u32(const std::byte* p) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | std::to_integer<std::uint32_t>(p[i]);
    return v;
}
inline std::uint64_t get_u64(const std::byte* p) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | std::to_integer<std::uint64_t>(p[i]);
    return v;
}

class Writer {
public:
    void u8(std::uint8_t v) { out_.push_back(std::byte{v}); }
    void u16(std::uint16_t v) { grow(2, [&](std::byte* p) { put_u16(p, v); }); }
    void u32(std::uint32_t v) { grow(4, [&](std::byte* p) { put_u32(p, v); }); }
    void u64(std::uint64_t v) { grow(8, [&](std::byte* p) { put_u64(p, v); }); }
    void bytes(std::span<const std::byte> b) { out_.insert(out_.end(), b.begin(), b.end()); }
    /// A string of at most 255 bytes, prefixed by its length.
    void short_string(const std::string& s) {
        u8(static_cast<std::uint8_t>(s.size()));
        bytes(std::as_bytes(std::span(s.data(), s.size())));
    }
    [[nodiscard]] std::vector<std::byte> take() { return std::move(out_); }

private:
    template <class F>
    void grow(std::size_t n, F put) {
        out_.resize(out_.size() + n);
        put(out_.data() + out_.size() - n);
    }
    std::vector<std::byte> out_;
};

class Reader {
public:
    explicit Reader(std::span<const std::byte> in) : in_(in) {}

    std::uint8_t u8() { return take(1) ? std::to_integer<std::uint8_t>(in_[pos_ - 1]) : 0; }
    std::uint16_t u16() { return take(2) ? get_u16(in_.data() + pos_ - 2) : 0; }
    std::uint32_t u32() { return take(4) ? get_u32(in_.data() + pos_ - 4) : 0; }
    std::uint64_t u64() { return take(8) ? get_u64(in_.data() + pos_ - 8) : 0; }
    std::span<const std::byte> bytes(std::size_t n) {
        return take(n) ? in_.subspan(pos_ - n, n) : std::span<const std::byte>{};
    }
    std::string short_string() {
        auto b = bytes(u8());
        return std::string(reinterpret_cast<const char*>(b.data()), b.size());
    }
    [[nodiscard]] bool ok() const { return ok_; }
    [[nodiscard]] bool at_end() const { return ok_ && pos_ == in_.size(); }

private:
    bool take(std::size_t n) {
        if (!ok_ || in_.size() - pos_ < n) {
            ok_ = false;
            return false;
        }
        pos_ += n;
        return true;
    }
    std::span<const std::byte> in_;
    std::size_t pos_ = 0;
    bool ok_ = true;
};

}  // namespace sluice::transfer::wire
