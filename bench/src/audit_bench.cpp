// bench/audit: insert throughput and query latency of the audit log on a log
// of 1 M events (see bench/audit, the script that runs it).
//
//   audit_bench [EVENTS] [DIR]
//
// 1. builds a log of EVENTS events (20 per bundle, 10 channels, 20 actors) in
//    transactions of 1000 events (the figure for a bulk load);
// 2. appends events one by one for 3 s, each its own durable commit (what
//    the daemons do): insert_per_s;
// 3. queries by bundle (1000 random bundles, exact id), by 8-digit prefix, and
//    the two-sided trace: p50 / p99 in milliseconds; query_ms is the p50 of
//    the exact-id query;
// 4. verifies the whole chain.
// Last line: insert_per_s=<x> query_ms=<x>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "sluice/audit/log.hpp"
#include "sluice/bundle/digest.hpp"
#include "sluice/bundle/signing.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace sluice;

namespace {

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

std::string bundle_id(std::uint64_t n) {
    return bundle::to_hex(bundle::sha256("bench bundle " + std::to_string(n)));
}

const char* kEvents[] = {"transfer_started", "transfer_assembled", "bundle_received", "bundle_quarantined",
                         "rule_result",      "rule_result",        "rule_result",     "rule_result",
                         "rule_result",      "scan_started",       "scan_result",     "approval_pending",
                         "approval_recorded", "bundle_approved",   "release_started", "bundle_released",
                         "post_release_hook", "releases_pruned",   "rule_result",     "scan_result"};

audit::Event make(std::uint64_t i) {
    const std::uint64_t b = i / 20;
    audit::Event e;
    e.event = kEvents[i % 20];
    e.bundle = bundle_id(b);
    e.channel = "channel-" + std::to_string(b % 10);
    e.actor = (i % 20 == 12) ? "officer-" + std::to_string(b % 20) : "system";
    e.outcome = "ok";
    e.details = {{"version", "1." + std::to_string(b)}, {"transfer", b * 7919}, {"detail", "bench event " + std::to_string(i)}};
    return e;
}

struct Percentiles {
    double p50, p99, max;
};

Percentiles percentiles(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    auto at = [&](double q) { return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))]; };
    return {at(0.5), at(0.99), v.back()};
}

}  // namespace

int main(int argc, char** argv) {
    const std::uint64_t total = argc > 1 ? std::stoull(argv[1]) : 1000000;
    const fs::path dir = argc > 2 ? fs::path(argv[2]) : fs::temp_directory_path() / "sluice-bench-audit";
    fs::remove_all(dir);
    fs::create_directories(dir);
    if (auto fp = bundle::generate_key_pair(dir, "host"); !fp) {
        std::cerr << "audit_bench: " << fp.error().message << "\n";
        return 1;
    }
    auto key = bundle::load_private_key(dir / "host.key");
    audit::LogOptions options;
    options.side = "receiver";
    options.host = "bench";
    options.key = std::make_shared<const bundle::Key>(std::move(*key));
    options.checkpoint_every = 1000;
    const fs::path db = dir / "audit.db";
    auto log = audit::Log::open(db, options);
    if (!log) {
        std::cerr << "audit_bench: " << log.error().message << "\n";
        return 1;
    }

    // 1. bulk load
    auto t0 = Clock::now();
    for (std::uint64_t i = 0; i < total; i += 1000) {
        std::vector<audit::Event> batch;
        for (std::uint64_t k = i; k < std::min(total, i + 1000); ++k) batch.push_back(make(k));
        if (auto ok = (*log)->append_all(std::move(batch)); !ok) {
            std::cerr << "audit_bench: " << ok.error().message << "\n";
            return 1;
        }
    }
    const double load_s = ms_since(t0) / 1000;
    std::printf("bulk load: %llu events in %.1f s = %.0f events/s (transactions of 1000, checkpoint every 1000)\n",
                static_cast<unsigned long long>(total), load_s, static_cast<double>(total) / load_s);

    // 2. durable single appends
    std::uint64_t n = 0;
    t0 = Clock::now();
    while (ms_since(t0) < 3000) {
        if (!(*log)->append(make(total + n))) return 1;
        ++n;
    }
    const double insert_per_s = static_cast<double>(n) / (ms_since(t0) / 1000);
    std::printf("durable appends: %llu in 3 s = %.0f events/s (one commit + fsync each)\n",
                static_cast<unsigned long long>(n), insert_per_s);
    log->reset();
    std::printf("database: %.0f MB for %llu events\n", static_cast<double>(fs::file_size(db)) / 1e6,
                static_cast<unsigned long long>(total + n));

    // 3. queries
    auto reader = audit::Reader::open(db);
    if (!reader) return 1;
    std::mt19937_64 rng(42);
    const std::uint64_t bundles = total / 20;
    std::vector<double> exact, prefix, trace;
    for (int i = 0; i < 1000; ++i) {
        const std::string id = bundle_id(rng() % bundles);
        audit::Query q;
        q.bundle = id;
        auto t = Clock::now();
        auto rows = (*reader)->query(q);
        exact.push_back(ms_since(t));
        if (!rows || rows->size() != 20) {
            std::cerr << "audit_bench: query by bundle returned " << (rows ? rows->size() : 0) << " rows, not 20\n";
            return 1;
        }
        q.bundle = id.substr(0, 8);
        t = Clock::now();
        (void)(*reader)->query(q);
        prefix.push_back(ms_since(t));
        t = Clock::now();
        (void)(*reader)->trace(id);
        trace.push_back(ms_since(t));
    }
    auto e = percentiles(exact), p = percentiles(prefix), tr = percentiles(trace);
    std::printf("query by bundle:  p50 %.3f ms  p99 %.3f ms  max %.3f ms (1000 random bundles, 20 rows each)\n", e.p50, e.p99, e.max);
    std::printf("query by prefix:  p50 %.3f ms  p99 %.3f ms  max %.3f ms (8 hex digits)\n", p.p50, p.p99, p.max);
    std::printf("trace:            p50 %.3f ms  p99 %.3f ms  max %.3f ms (both tables, ordered)\n", tr.p50, tr.p99, tr.max);
    {
        audit::Query q;
        q.actor = "officer-7";
        q.limit = 100000;
        auto t = Clock::now();
        auto rows = (*reader)->query(q);
        std::printf("query by actor:   %.1f ms for %zu rows\n", ms_since(t), rows ? rows->size() : 0);
    }

    // 4. verify
    t0 = Clock::now();
    auto rep = (*reader)->verify(nullptr);
    std::printf("verify: %s, %lld events, %lld checkpoints in %.1f s\n", rep && rep->ok ? "valid" : "INVALID",
                static_cast<long long>(rep ? rep->events : 0), static_cast<long long>(rep ? rep->checkpoints : 0),
                ms_since(t0) / 1000);
    std::printf("insert_per_s=%.0f query_ms=%.3f\n", insert_per_s, e.p50);
    reader->reset();
    fs::remove_all(dir);
    return rep && rep->ok ? 0 : 1;
}
