// sluice: parse the command line, run one command, map the outcome to an exit code.
#include "app.hpp"

int main(int argc, char** argv) { return sluice::cli::run(argc, argv); }
