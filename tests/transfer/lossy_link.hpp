#pragma once
// A seeded, deterministic impaired link for codec tests: frames in, frames out
// with drops, bursts, reordering, duplication, corruption and truncation.

#include <cstddef>
#include <deque>
#include <random>
#include <span>
#include <vector>

namespace sluice::test {

struct Impairments {
    double drop = 0;            ///< independent loss probability
    std::size_t burst_every = 0;///< every N frames, lose `burst_len` in a row (0: never)
    std::size_t burst_len = 0;
    double reorder = 0;         ///< probability a frame is held back `reorder_depth` frames
    std::size_t reorder_depth = 8;
    double duplicate = 0;
    double corrupt = 0;         ///< flip one byte
    double truncate = 0;        ///< cut short
};

class LossyLink {
public:
    LossyLink(Impairments imp, unsigned seed) : imp_(imp), rng_(seed) {}

    /// Feeds one frame; returns what comes out of the link now (0, 1 or more frames).
    std::vector<std::vector<std::byte>> pass(std::span<const std::byte> frame) {
        std::vector<std::vector<std::byte>> out;
        ++count_;
        bool in_burst = imp_.burst_every > 0 && (count_ % imp_.burst_every) < imp_.burst_len;
        if (in_burst || chance(imp_.drop)) {
            ++dropped;
        } else {
            std::vector<std::byte> f(frame.begin(), frame.end());
            if (chance(imp_.corrupt) && !f.empty()) f[pick(f.size())] ^= std::byte{0x5a};
            if (chance(imp_.truncate) && f.size() > 1) f.resize(pick(f.size()));
            if (chance(imp_.reorder)) {
                held_.push_back({count_ + imp_.reorder_depth, std::move(f)});
            } else {
                if (chance(imp_.duplicate)) out.push_back(f);
                out.push_back(std::move(f));
            }
        }
        while (!held_.empty() && held_.front().first <= count_) {
            out.push_back(std::move(held_.front().second));
            held_.pop_front();
        }
        return out;
    }
    /// Whatever is still held back.
    std::vector<std::vector<std::byte>> flush() {
        std::vector<std::vector<std::byte>> out;
        for (auto& h : held_) out.push_back(std::move(h.second));
        held_.clear();
        return out;
    }

    std::size_t dropped = 0;

private:
    bool chance(double p) { return p > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
    std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }

    Impairments imp_;
    std::mt19937_64 rng_;
    std::size_t count_ = 0;
    std::deque<std::pair<std::size_t, std::vector<std::byte>>> held_;
};

}  // namespace sluice::test
