#include "app.hpp"

#include <clocale>
#include <exception>
#include <iostream>

#include "audit_commands.hpp"
#include "bundle_commands.hpp"
#include "daemon_commands.hpp"
#include "import_commands.hpp"
#include "media_commands.hpp"
#include "output.hpp"
#include "sluice/core/version.hpp"

namespace sluice::cli {

int run(int argc, char** argv) {
    std::setlocale(LC_ALL, "C");  // byte-exact, locale-independent text and sorting
    CLI::App app{"Sluice: signed release bundles across one-way links and removable media"};
    app.name("sluice");
    app.set_version_flag("-V,--version", std::string("sluice ") + kVersion);
    app.require_subcommand(1);
    int exit_code = kExitOk;
    add_keygen_command(app, exit_code);
    add_bundle_commands(app, exit_code);
    add_daemon_commands(app, exit_code);
    add_train_command(app, exit_code);
    add_import_commands(app, exit_code);
    add_audit_commands(app, exit_code);
    add_media_commands(app, exit_code);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? kExitOk : kExitUsage;
    } catch (const std::exception& e) {
        return report_error(Error{e.what()});
    }
    return exit_code;
}

}  // namespace sluice::cli
