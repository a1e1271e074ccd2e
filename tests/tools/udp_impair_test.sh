#!/bin/sh
# Sanity test of the udp_impair proxy (tests/tools/udp_impair.cpp):
#   udp_impair_test.sh PATH/TO/udp_impair
# Sends 10 000 numbered datagrams through the proxy on 127.0.0.1 and checks
#   a) --drop 0.1 --seed 1 drops the same datagrams in two runs (and --seed 2 others),
#   b) the drop ratio is within 0.08-0.12 and matches the proxy's stats file,
#   c) --corrupt 1.0 changes every datagram, --truncate 1.0 shortens every one,
#      --duplicate 1.0 doubles them, --reorder keeps the set but changes the order.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 PATH/TO/udp_impair" >&2; exit 2; }
command -v python3 >/dev/null || { echo "udp_impair_test: python3 is required" >&2; exit 2; }
exec python3 "$(dirname "$0")/udp_impair_test.py" "$1"
