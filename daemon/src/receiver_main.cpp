// sluice-receiver: see daemon/include/sluice/daemon/receiver.hpp.
#include "daemon_main.hpp"
#include "sluice/daemon/receiver.hpp"

int main(int argc, char** argv) {
    return sluice::daemon::run_daemon<sluice::daemon::ReceiverService>(argc, argv, "receiver",
                                                                        &sluice::daemon::load_receiver_config);
}
