#include "sluice/diode/endpoint.hpp"

#include <algorithm>
#include <charconv>

namespace sluice::diode {

namespace {

Error bad(std::string_view text, std::string_view why) {
    return fail("endpoint \"" + std::string(text) + "\": " + std::string(why));
}

Result<std::uint16_t> parse_port(std::string_view text, std::string_view port) {
    if (port.empty()) return bad(text, "missing port after ':' (expected host:port or [v6]:port)");
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return bad(text, "port \"" + std::string(port) + "\" is not a number from 0 to 65535");
    unsigned value = 0;
    std::from_chars(port.data(), port.data() + port.size(), value);
    if (value > 65535) return bad(text, "port " + std::string(port) + " is above 65535");
    return static_cast<std::uint16_t>(value);
}

}  // namespace

Result<Endpoint> parse_endpoint(std::string_view text) {
    if (text.empty()) return bad(text, "empty (expected host:port or [v6]:port)");
    boost::system::error_code ec;
    if (text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) return bad(text, "'[' without ']' (expected [v6]:port)");
        if (close + 1 >= text.size() || text[close + 1] != ':')
            return bad(text, "expected ':port' after ']' (expected [v6]:port)");
        const std::string host(text.substr(1, close - 1));
        auto port = parse_port(text, text.substr(close + 2));
        if (!port) return port.error();
        const auto address = boost::asio::ip::make_address_v6(host, ec);
        if (ec) return bad(text, "\"" + host + "\" is not a numeric IPv6 address");
        return Endpoint(address, *port);
    }
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad(text, "missing ':port' (expected host:port or [v6]:port)");
    if (text.find(':') != colon)
        return bad(text, "IPv6 addresses must be written in brackets: [addr]:port");
    const std::string host(text.substr(0, colon));
    if (host.empty()) return bad(text, "missing address before ':' (use 0.0.0.0 for any)");
    auto port = parse_port(text, text.substr(colon + 1));
    if (!port) return port.error();
    const auto address = boost::asio::ip::make_address_v4(host, ec);
    if (ec) {
        return bad(text, "\"" + host +
                             "\" is not a numeric IPv4 address (host names are not resolved: "
                             "write the address, e.g. 192.0.2.1:9000)");
    }
    return Endpoint(address, *port);
}

std::string to_string(const Endpoint& endpoint) {
    const auto address = endpoint.address();
    const std::string port = std::to_string(endpoint.port());
    if (address.is_v6()) return "[" + address.to_string() + "]:" + port;
    return address.to_string() + ":" + port;
}

}  // namespace sluice::diode
