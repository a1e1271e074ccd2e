#pragma once
// Lane endpoints: numeric "a.b.c.d:port" or "[v6]:port" strings from the
// configuration. Host names are refused on purpose: a diode link is
// configured with addresses, and a resolver is not something a one-way
// appliance should depend on.

#include <string>
#include <string_view>

#include <boost/asio/ip/udp.hpp>

#include "sluice/core/result.hpp"

namespace sluice::diode {

using Endpoint = boost::asio::ip::udp::endpoint;

/// Parses "192.0.2.1:9000", "[2001:db8::1]:9000" or "[fe80::1%eth0]:9000".
/// Port 0 is accepted (bind to any port); the sender refuses it. Fails with a
/// message that quotes the string and says what form is expected.
[[nodiscard]] Result<Endpoint> parse_endpoint(std::string_view text);

/// "192.0.2.1:9000" or "[2001:db8::1]:9000" (the form parse_endpoint reads).
[[nodiscard]] std::string to_string(const Endpoint& endpoint);

}  // namespace sluice::diode
