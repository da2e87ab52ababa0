// The directory and topology loader (common/topology.hpp) on any text: it returns a topology or
// throws common::config_error, one line naming the file, the field and the problem; anything else
// that escapes (another exception, a crash) is a bug, and libFuzzer reports an escaping exception
// as a crash. What it accepts is
// valid (docs/design.md section 2: names, homes, delegates, a policy the front-end can make) and
// survives being written out and read again unchanged.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "exsim/common/topology.hpp"
#include "exsim/proxy/policy.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace exsim;

constexpr std::string_view source = "fuzz.json";

void check_valid(const common::topology& t) {
    EXSIM_FUZZ_CHECK(!t.backends.empty() && !t.realm.empty() && !t.ntlm_domain.empty());
    std::set<std::string> backends, users;
    for (const auto& b : t.backends) {
        EXSIM_FUZZ_CHECK(common::is_valid_name(b.name) && backends.insert(b.name).second);
        EXSIM_FUZZ_CHECK(!b.host.empty() && !b.auth_providers.empty());
        for (const auto& p : b.auth_providers) EXSIM_FUZZ_CHECK(p == "Negotiate" || p == "NTLM");
    }
    for (const auto& u : t.users) {
        EXSIM_FUZZ_CHECK(common::is_valid_name(u.name) && users.insert(u.name).second);
        EXSIM_FUZZ_CHECK(!u.password.empty() && !fuzz::has_control(u.password));
        EXSIM_FUZZ_CHECK(t.find_backend(u.home) != nullptr && t.find_user(u.name) == &u);
    }
    for (const auto& u : t.users)
        for (const auto& d : u.delegates) EXSIM_FUZZ_CHECK(users.count(d) == 1);
    std::size_t homed = 0;
    for (const auto& b : t.backends) homed += t.users_of(b.name).size();
    EXSIM_FUZZ_CHECK(homed == t.users.size());
    // Every policy the configuration accepts is one the front-end can make.
    EXSIM_FUZZ_CHECK(proxy::make_policy(t.frontend.policy)->name() == t.frontend.policy);
    EXSIM_FUZZ_CHECK(t.frontend.pool.max_connections >= 1 && t.frontend.pool.max_requests >= 1);
    EXSIM_FUZZ_CHECK(t.frontend.workers <= 256);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    common::topology t;
    try {
        t = common::parse_topology(text, source);
    } catch (const common::config_error& e) {
        // One line "<file>: <field>: <problem>", whatever the file holds.
        const std::string_view what = e.what();
        EXSIM_FUZZ_CHECK(what.starts_with(std::string(source) + ": ") && !fuzz::has_control(what));
        const auto problem = what.find(": ", source.size() + 2);
        EXSIM_FUZZ_CHECK(problem != std::string_view::npos && problem > source.size() + 2 && problem + 2 < what.size());
        return 0;
    }
    check_valid(t);
    const auto written = common::to_json(t);
    EXSIM_FUZZ_CHECK(common::to_json(common::parse_topology(written, source)) == written);
    return 0;
}
