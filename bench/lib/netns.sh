# shellcheck shell=bash
# bench/lib/netns.sh: a two-namespace test link with random UDP loss, for
# benchmarks that need packet loss on a kernel without netem. Source it:
#
#   . bench/lib/netns.sh
#   netns_up 5                      # create the link; 5 % of UDP datagrams dropped
#   in_rx_ns udp-receiver ...       # run a command in the receiver namespace
#   in_tx_ns udp-sender ...         # ... and in the sender namespace
#   netns_drop_count                # datagrams the rule has dropped so far
#   netns_down                      # remove everything (idempotent)
#
# Layout: two network namespaces joined by a veth pair (MTU 1500)
#
#   [ $NETNS_TX  $NETNS_TX_IF $NETNS_TX_ADDR ] <--veth--> [ $NETNS_RX_IF $NETNS_RX_ADDR  $NETNS_RX ]
#
# with, in the receiver namespace, the nftables rule
#   table inet sluice_loss { chain input { type filter hook input priority -300;
#       meta l4proto udp numgen random mod 1000 < PERMILLE counter drop } }
# Only UDP is dropped (TCP, e.g. iperf3's control connection, is not), and
# only on the way into the receiver namespace. Both ends live in namespaces,
# so the host's own interfaces and routes are never touched.
#
# Needs root (CAP_NET_ADMIN), iproute2 and nft. Names carry NETNS_TAG
# (default "sl<pid>") so that several runs can coexist. The caller should
# `trap netns_down EXIT` (netns_down also ends processes still running inside
# the two namespaces, which are the caller's own).

NETNS_TAG=${NETNS_TAG:-sl$$}
NETNS_TX=${NETNS_TAG}-tx
NETNS_RX=${NETNS_TAG}-rx
NETNS_TX_IF=${NETNS_TAG}t      # interface names: at most 15 characters
NETNS_RX_IF=${NETNS_TAG}r
NETNS_TX_ADDR=${NETNS_TX_ADDR:-10.213.77.1}
NETNS_RX_ADDR=${NETNS_RX_ADDR:-10.213.77.2}
NETNS_LOSS_PCT=0   # set by netns_up; for the caller

in_tx_ns() { ip netns exec "$NETNS_TX" "$@"; }
in_rx_ns() { ip netns exec "$NETNS_RX" "$@"; }

# netns_up LOSS_PCT: creates the namespaces, the link and the drop rule.
# LOSS_PCT is a percentage with at most one decimal (0, 1, 2.5, 5 ...).
netns_up() {
    local pct=${1:?netns_up LOSS_PCT}
    [[ $pct =~ ^[0-9]{1,2}(\.[0-9])?$|^100$ ]] || { echo "netns_up: bad loss percentage '$pct'" >&2; return 2; }
    local permille
    permille=$(awk -v p="$pct" 'BEGIN { printf "%d", p * 10 + 0.5 }')
    ((${#NETNS_TX_IF} <= 15)) || { echo "netns_up: NETNS_TAG '$NETNS_TAG' is too long" >&2; return 2; }
    netns_down
    ip netns add "$NETNS_TX"
    ip netns add "$NETNS_RX"
    ip link add "$NETNS_TX_IF" netns "$NETNS_TX" type veth peer name "$NETNS_RX_IF" netns "$NETNS_RX"
    in_tx_ns ip link set lo up
    in_rx_ns ip link set lo up
    in_tx_ns ip addr add "$NETNS_TX_ADDR/30" dev "$NETNS_TX_IF"
    in_rx_ns ip addr add "$NETNS_RX_ADDR/30" dev "$NETNS_RX_IF"
    # One datagram per packet on the wire, as on a real diode: without this a
    # veth carries a sender's UDP GSO super-packet (up to 64 datagrams) as one
    # skb, and the nft rule below would drop 64 datagrams at a time.
    in_tx_ns ip link set "$NETNS_TX_IF" gso_max_segs 1
    in_tx_ns ip link set "$NETNS_TX_IF" up
    in_rx_ns ip link set "$NETNS_RX_IF" up
    in_rx_ns nft -f - <<NFT
table inet sluice_loss {
    chain input {
        type filter hook input priority -300; policy accept;
        meta l4proto udp numgen random mod 1000 < $permille counter drop
    }
}
NFT
    # shellcheck disable=SC2034  # read by the caller
    NETNS_LOSS_PCT=$pct
    # The link is usable once both ends report carrier (a veth needs a moment).
    local i
    for ((i = 0; i < 50; i++)); do
        if [[ $(in_tx_ns cat "/sys/class/net/$NETNS_TX_IF/operstate") == up &&
              $(in_rx_ns cat "/sys/class/net/$NETNS_RX_IF/operstate") == up ]]; then
            return 0
        fi
        sleep 0.1
    done
    echo "netns_up: the veth pair $NETNS_TX_IF/$NETNS_RX_IF did not come up" >&2
    return 1
}

# netns_drop_count: datagrams dropped by the rule since netns_up.
netns_drop_count() {
    in_rx_ns nft list chain inet sluice_loss input 2>/dev/null |
        awk '/counter packets/ { for (i = 1; i <= NF; i++) if ($i == "packets") { print $(i + 1); exit } }'
}

# netns_down: ends the processes left in the namespaces and deletes them
# (the veth pair goes with them). Safe to call at any time, more than once.
netns_down() {
    local ns pid
    for ns in "$NETNS_TX" "$NETNS_RX"; do
        [[ -e /run/netns/$ns ]] || continue
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill "$pid" 2>/dev/null || true
        done
    done
    for ns in "$NETNS_TX" "$NETNS_RX"; do
        [[ -e /run/netns/$ns ]] || continue
        # Give the processes just signalled a moment before their namespace goes.
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            [[ -z $(ip netns pids "$ns" 2>/dev/null) ]] && break
            sleep 0.1
        done
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null || true
        done
        ip netns delete "$ns" 2>/dev/null || true
    done
    return 0
}
