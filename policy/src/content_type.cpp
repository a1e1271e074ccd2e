// Content types by libmagic. A magic_t is not thread-safe, so each thread that
// types files keeps its own, loaded once from the system database.
#include <magic.h>

#include <memory>

#include "sluice/policy/rules.hpp"

namespace sluice::policy {
namespace {

struct MagicClose {
    void operator()(magic_t m) const { magic_close(m); }
};
using Magic = std::unique_ptr<std::remove_pointer_t<magic_t>, MagicClose>;

Result<magic_t> thread_magic() {
    thread_local Magic magic;
    thread_local std::string load_error;
    if (magic) return magic.get();
    if (!load_error.empty()) return fail(load_error);
    // MAGIC_NO_CHECK_COMPRESS: type the bytes as they are (a .gz is application/gzip),
    // not what they would be once decompressed.
    Magic m(magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR | MAGIC_NO_CHECK_COMPRESS));
    if (!m) return fail(load_error = "libmagic: cannot allocate a magic cookie");
    if (magic_load(m.get(), nullptr) != 0) {
        const char* e = magic_error(m.get());
        return fail(load_error = std::string("libmagic: cannot load the magic database (is libmagic-mgc installed?): ") +
                                 (e ? e : "unknown error"));
    }
    magic = std::move(m);
    return magic.get();
}

}  // namespace

Result<std::string> content_type(const std::filesystem::path& file) {
    auto m = thread_magic();
    if (!m) return m.error();
    const char* type = magic_file(*m, file.c_str());
    if (type == nullptr) {
        const char* e = magic_error(*m);
        return fail(file.string() + ": cannot determine the content type: " + (e ? e : "unknown error"));
    }
    return std::string(type);
}

bool type_matches(std::string_view pattern, std::string_view type) {
    if (pattern == "*/*" || pattern == "*") return true;
    if (pattern.size() >= 2 && pattern.substr(pattern.size() - 2) == "/*") {
        auto family = pattern.substr(0, pattern.size() - 1);  // "text/"
        return type.substr(0, family.size()) == family;
    }
    return pattern == type;
}

}  // namespace sluice::policy
