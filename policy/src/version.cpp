#include "sluice/policy/version.hpp"

#include <cstddef>

namespace sluice::policy {
namespace {

// A version is read as  MAIN [ '-' PRE ] [ '+' BUILD ]:
//   "1.2.0-rc1+b7"  →  main "1.2.0", pre-release "rc1", build "b7" (ignored).
// MAIN and PRE are each a list of pieces split at '.', '-' and '_'. Comparing
// them as infinite sequences (the real pieces, then zeros for ever) is what
// makes "1.2" == "1.2.0" and keeps the order a total preorder, so it is safe
// for std::sort.

bool is_separator(char c) { return c == '.' || c == '-' || c == '_'; }

bool is_digits(std::string_view s) {
    for (char c : s) {
        if (c < '0' || c > '9') return false;
    }
    return true;
}

/// One piece; an empty piece ("1..2") stands for a missing one, i.e. 0.
int compare_pieces(std::string_view a, std::string_view b) {
    const bool a_num = a.empty() || is_digits(a);
    const bool b_num = b.empty() || is_digits(b);
    if (a_num != b_num) return a_num ? 1 : -1;  // a numeric piece > a text piece
    if (a_num) {
        // Compare as numbers without converting, so any length works:
        // drop leading zeros, then the longer number is the larger.
        auto strip = [](std::string_view s) {
            std::size_t i = 0;
            while (i < s.size() && s[i] == '0') ++i;
            return s.substr(i);
        };
        a = strip(a);
        b = strip(b);
        if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
    }
    int c = a.compare(b);
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

/// Splits off the next piece of `rest` (consuming its separator).
std::string_view next_piece(std::string_view& rest) {
    std::size_t i = 0;
    while (i < rest.size() && !is_separator(rest[i])) ++i;
    std::string_view piece = rest.substr(0, i);
    rest.remove_prefix(i < rest.size() ? i + 1 : i);
    return piece;
}

/// Piece by piece; a list that runs out continues with zeros.
int compare_piece_lists(std::string_view a, std::string_view b) {
    while (!a.empty() || !b.empty()) {
        // An exhausted side yields "" (0) from next_piece.
        if (int c = compare_pieces(next_piece(a), next_piece(b)); c != 0) return c;
    }
    return 0;
}

struct Parts {
    std::string_view main;
    std::string_view pre;
    bool has_pre = false;
};

Parts split(std::string_view v) {
    v = v.substr(0, v.find('+'));  // build metadata does not take part in the order
    Parts p;
    std::size_t dash = v.find('-');
    p.main = v.substr(0, dash);
    if (dash != std::string_view::npos) {
        p.has_pre = true;
        p.pre = v.substr(dash + 1);
    }
    return p;
}

}  // namespace

int compare_versions(std::string_view a, std::string_view b) {
    const Parts pa = split(a);
    const Parts pb = split(b);
    if (int c = compare_piece_lists(pa.main, pb.main); c != 0) return c;
    // Same release: a pre-release comes before the release itself.
    if (pa.has_pre != pb.has_pre) return pa.has_pre ? -1 : 1;
    return compare_piece_lists(pa.pre, pb.pre);
}

}  // namespace sluice::policy
