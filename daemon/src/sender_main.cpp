// sluice-sender: see daemon/include/sluice/daemon/sender.hpp.
#include "daemon_main.hpp"
#include "sluice/daemon/sender.hpp"

int main(int argc, char** argv) {
    return sluice::daemon::run_daemon<sluice::daemon::SenderService>(argc, argv, "sender",
                                                                      &sluice::daemon::load_sender_config);
}
