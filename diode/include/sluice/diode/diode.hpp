#pragma once
// sluice::diode — the UDP carrier across a one-way data diode.
//
//  SOURCE SIDE (send thread)                         DESTINATION SIDE (io_context)
//
//  frames ──► UdpSender::send(datagrams)             UdpReceiver ──► Handler(datagrams)
//               │ cut into runs: ≤64 equal-size         ▲ split GRO super-packets at the
//               │ datagrams, ≤ 64 KiB                   │ segment size from the UDP_GRO cmsg
//               │ stripe runs round-robin over lanes    │ recvmmsg(MSG_DONTWAIT) × batch
//               │ Pacer: sleep until the bucket         │ async_wait(wait_read) per lane
//               │ holds the round's wire bytes          │ SO_RCVBUF(FORCE), SO_RXQ_OVFL drops
//               ▼ sendmmsg, one UDP_SEGMENT               │
//     lane 0 ─── super-packet per run (GSO) ──────────► lane 0 socket
//     lane 1 ────────────────────────────────────────► lane 1 socket   (no return path:
//     ...                                                               no acks, no ICMP)
//
// One datagram = one transfer::Frame (see sluice/transfer/frame.hpp); this
// module never looks inside. Wire bytes = payload + 28 (IPv4+UDP) or + 48
// (IPv6+UDP); the configured rate counts wire bytes.
//
// Loss is expected (there is nothing to ask again): the FEC in transfer/
// repairs it, and the counters here (ENOBUFS waits on the sender, kernel drops
// and truncations on the receiver) tell the operator where it happened.

#include "sluice/diode/endpoint.hpp"
#include "sluice/diode/pacer.hpp"
#include "sluice/diode/udp_receiver.hpp"
#include "sluice/diode/udp_sender.hpp"
