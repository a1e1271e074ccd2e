#pragma once
// The thin main both daemons share: arguments, configuration, the service,
// signals (SIGTERM/SIGINT stop, SIGHUP reloads), sd_notify and the watchdog,
// then the io_context. Exit codes: 0 clean stop, 1 runtime failure, 2 bad
// configuration or usage.

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <functional>
#include <iostream>
#include <optional>

#include "fault_injection.hpp"
#include "sluice/core/version.hpp"
#include "sluice/daemon/config.hpp"
#include "sluice/daemon/log.hpp"
#include "sluice/daemon/notify.hpp"

namespace sluice::daemon {

template <class Service, class Config>
int run_daemon(int argc, char** argv, const char* name, Config (*load)(const std::filesystem::path&)) {
    CLI::App app{std::string("Sluice ") + name + " daemon"};
    app.name(std::string("sluice-") + name);
    std::string config_file;
    bool check_only = false;
    app.set_version_flag("-V,--version", std::string("sluice-") + name + " " + kVersion);
    app.add_option("-c,--config", config_file, "Configuration file (TOML)")->required();
    app.add_flag("--check-config", check_only, "Check the configuration and exit");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    Notifier notifier;
    std::optional<Config> config;
    try {
        config = load(config_file);
    } catch (const ConfigError& e) {
        std::cerr << "sluice-" << name << ": " << e.what() << "\n";
        return 2;
    }
    if (check_only) {
        std::cout << config_file << ": ok\n";
        return 0;
    }
    if (auto bad = fault::arm_from_environment(); !bad.empty()) {
        std::cerr << "sluice-" << name << ": " << bad << "\n";
        return 2;
    }
    std::signal(SIGPIPE, SIG_IGN);
    try {
        boost::asio::io_context io;
        Service service(io, std::move(*config));
        boost::asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
        std::function<void()> wait_signal;
        wait_signal = [&] {
            signals.async_wait([&](const boost::system::error_code& ec, int signo) {
                if (ec) return;
                if (signo == SIGHUP) {
                    notifier.reloading();
                    try {
                        service.reload();
                    } catch (const std::exception& e) {
                        log_error("config_reload_refused", {{"error", e.what()}});
                    }
                    notifier.ready();
                    wait_signal();
                    return;
                }
                log_info("stopping", {{"signal", signo == SIGTERM ? "SIGTERM" : "SIGINT"}});
                notifier.stopping();
                service.stop();
                io.stop();
            });
        };
        wait_signal();
        // Watchdog: ping at half the interval while the service's own loop is healthy.
        auto watchdog = notifier.watchdog_interval();
        auto period = watchdog ? std::chrono::duration_cast<std::chrono::milliseconds>(*watchdog) / 2
                               : std::chrono::milliseconds(1000);
        if (period < std::chrono::milliseconds(10)) period = std::chrono::milliseconds(10);
        boost::asio::steady_timer timer(io);
        std::function<void()> tick;
        std::string last_status;
        tick = [&] {
            timer.expires_after(period);
            timer.async_wait([&](const boost::system::error_code& ec) {
                if (ec) return;
                auto line = service.status_line();
                if (line != last_status) {
                    notifier.status(line);
                    last_status = line;
                }
                if (watchdog && service.healthy(std::chrono::duration_cast<std::chrono::milliseconds>(*watchdog))) {
                    notifier.watchdog();
                }
                tick();
            });
        };
        tick();
        notifier.ready();
        last_status = service.status_line();
        notifier.status(last_status);
        io.run();
        log_info("stopped");
        return 0;
    } catch (const ConfigError& e) {
        std::cerr << "sluice-" << name << ": " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        log_critical("start_failed", {{"error", e.what()}});
        std::cerr << "sluice-" << name << ": " << e.what() << "\n";
        return 1;
    }
}

}  // namespace sluice::daemon
