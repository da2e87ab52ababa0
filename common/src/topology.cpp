#include "exsim/common/topology.hpp"
#include "exsim/common/policies.hpp"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include <boost/json.hpp>
#include <fmt/format.h>

namespace exsim::common {
namespace json = boost::json;

bool backend_config::offers(std::string_view provider) const {
    return std::find(auth_providers.begin(), auth_providers.end(), provider) != auth_providers.end();
}

const user_entry* topology::find_user(std::string_view name) const {
    for (const auto& u : users)
        if (u.name == name) return &u;
    return nullptr;
}

user_index::user_index(const topology& t) {
    by_name_.reserve(t.users.size());
    for (const auto& u : t.users) by_name_.emplace(u.name, &u);
}

const user_entry* user_index::find(std::string_view name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
}

const backend_config* topology::find_backend(std::string_view name) const {
    for (const auto& b : backends)
        if (b.name == name) return &b;
    return nullptr;
}

std::vector<const user_entry*> topology::users_of(std::string_view backend) const {
    std::vector<const user_entry*> out;
    for (const auto& u : users)
        if (u.home == backend) out.push_back(&u);
    return out;
}

bool is_valid_name(std::string_view name) {
    if (name.empty() || name.size() > 64) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
}

namespace {

// A message quotes keys and values of the file, which may hold any character: a control
// character is written as its JSON escape, so that the message stays one line and a NUL does not
// end it early (what() is a C string).
std::string one_line(std::string_view message) {
    std::string out;
    out.reserve(message.size());
    for (const char c : message) {
        const auto b = static_cast<unsigned char>(c);
        if (b < 0x20 || b == 0x7f) out += fmt::format("\\u{:04x}", b);
        else out += c;
    }
    return out;
}

// Reads one JSON object field by field, naming "<source>: <path>" in every error, and refuses
// keys it did not consume (a typo must not be silently ignored).
class object_reader {
public:
    object_reader(const json::value& v, std::string source, std::string path)
        : source_(std::move(source)), path_(std::move(path)) {
        if (!v.is_object()) fail(path_, "must be an object");
        obj_ = &v.as_object();
    }

    [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
        throw config_error(one_line(fmt::format("{}: {}: {}", source_, field.empty() ? "(top level)" : field, problem)));
    }

    std::string field_path(std::string_view key) const {
        return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
    }

    const json::value* find(std::string_view key) {
        seen_.insert(std::string(key));
        auto it = obj_->find(key);
        return it == obj_->end() ? nullptr : &it->value();
    }

    const json::value& require(std::string_view key) {
        auto* v = find(key);
        if (!v) fail(field_path(key), "missing required field");
        return *v;
    }

    std::string string(std::string_view key, const std::string* fallback = nullptr) {
        auto* v = fallback ? find(key) : &require(key);
        if (!v) return *fallback;
        if (!v->is_string()) fail(field_path(key), fmt::format("must be a string, got {}", kind(*v)));
        return std::string(v->as_string());
    }

    bool boolean(std::string_view key, bool fallback) {
        auto* v = find(key);
        if (!v) return fallback;
        if (!v->is_bool()) fail(field_path(key), fmt::format("must be true or false, got {}", kind(*v)));
        return v->as_bool();
    }

    std::size_t count(std::string_view key, std::size_t fallback, std::size_t max) {
        auto* v = find(key);
        if (!v) return fallback;
        if (!v->is_int64() || v->as_int64() < 0 || static_cast<std::uint64_t>(v->as_int64()) > max)
            fail(field_path(key), fmt::format("must be an integer from 0 to {}", max));
        return static_cast<std::size_t>(v->as_int64());
    }

    std::vector<std::string> strings(std::string_view key, const std::vector<std::string>& fallback) {
        auto* v = find(key);
        if (!v) return fallback;
        if (!v->is_array()) fail(field_path(key), fmt::format("must be a list of strings, got {}", kind(*v)));
        std::vector<std::string> out;
        for (std::size_t i = 0; i < v->as_array().size(); ++i) {
            const auto& e = v->as_array()[i];
            if (!e.is_string()) fail(fmt::format("{}[{}]", field_path(key), i), "must be a string");
            out.emplace_back(e.as_string());
        }
        return out;
    }

    const json::array& array(std::string_view key) {
        const auto& v = require(key);
        if (!v.is_array()) fail(field_path(key), fmt::format("must be a list, got {}", kind(v)));
        return v.as_array();
    }

    void no_unknown_keys() const {
        for (const auto& kv : *obj_)
            if (!seen_.count(std::string(kv.key())))
                fail(field_path(kv.key()), "unknown key (check the spelling)");
    }

    static const char* kind(const json::value& v) {
        switch (v.kind()) {
            case json::kind::null: return "null";
            case json::kind::bool_: return "a boolean";
            case json::kind::int64:
            case json::kind::uint64:
            case json::kind::double_: return "a number";
            case json::kind::string: return "a string";
            case json::kind::array: return "a list";
            case json::kind::object: return "an object";
        }
        return "a value";
    }

private:
    std::string source_;
    std::string path_;
    const json::object* obj_ = nullptr;
    std::set<std::string> seen_;
};

void validate(const topology& t, const object_reader& top) {
    auto lower = [](char c) { return c >= 'a' && c <= 'z'; };
    if (t.realm.empty() || std::any_of(t.realm.begin(), t.realm.end(), lower) ||
        t.realm.find_first_of("/@: ") != std::string::npos)
        top.fail("realm", "must be a non-empty upper-case realm name, e.g. EXSIM.TEST");
    if (t.ntlm_domain.empty() || t.ntlm_domain.find_first_of(".\\/:@ ") != std::string::npos)
        top.fail("ntlm_domain", "must be a NetBIOS-style name without dots, e.g. EXSIM");
    if (t.backends.empty()) top.fail("backends", "at least one back-end is required");
    std::set<std::string> names;
    for (std::size_t i = 0; i < t.backends.size(); ++i) {
        const auto& b = t.backends[i];
        auto at = fmt::format("backends[{}]", i);
        if (!is_valid_name(b.name)) top.fail(at + ".name", fmt::format("'{}' must match [a-z0-9_-]{{1,64}}", b.name));
        if (!names.insert(b.name).second) top.fail(at + ".name", fmt::format("duplicate back-end '{}'", b.name));
        if (b.host.empty() || b.host.find_first_of("/@: ") != std::string::npos)
            top.fail(at + ".host", "must be a host name such as be1.exsim.test");
        if (b.auth_providers.empty()) top.fail(at + ".auth_providers", "must list at least one provider");
        for (const auto& p : b.auth_providers)
            if (p != "Negotiate" && p != "NTLM")
                top.fail(at + ".auth_providers", fmt::format("unknown provider '{}' (expected Negotiate or NTLM)", p));
    }
    std::set<std::string> users;
    for (std::size_t i = 0; i < t.users.size(); ++i) {
        const auto& u = t.users[i];
        auto at = fmt::format("users[{}]", i);
        if (!is_valid_name(u.name)) top.fail(at + ".name", fmt::format("'{}' must match [a-z0-9_-]{{1,64}}", u.name));
        if (!users.insert(u.name).second) top.fail(at + ".name", fmt::format("duplicate user '{}'", u.name));
        // Passwords reach kadmin inside double quotes and become NT hashes of ASCII text.
        if (u.password.empty() || !std::all_of(u.password.begin(), u.password.end(), [](char c) {
                return c > 0x20 && c < 0x7f && c != '"' && c != '\\';
            }))
            top.fail(at + ".password", "must be non-empty printable ASCII without spaces, quotes or backslashes");
        if (!t.find_backend(u.home)) top.fail(at + ".home", fmt::format("unknown back-end '{}'", u.home));
    }
    for (std::size_t i = 0; i < t.users.size(); ++i)
        for (const auto& d : t.users[i].delegates)
            if (!users.count(d)) top.fail(fmt::format("users[{}].delegates", i), fmt::format("unknown user '{}'", d));
}

frontend_settings parse_frontend(const json::value& v, std::string_view source) {
    frontend_settings f;
    object_reader r(v, std::string(source), "frontend");
    f.policy = r.string("policy", &f.policy);
    if (!find_policy(f.policy)) r.fail("frontend.policy", unknown_policy(f.policy));
    f.require_kerberos = r.boolean("require_kerberos", f.require_kerberos);
    f.leak_guard = r.boolean("leak_guard", f.leak_guard);
    f.workers = r.count("workers", f.workers, 256);
    if (r.find("pool")) {
        object_reader p(r.require("pool"), std::string(source), "frontend.pool");
        auto& s = f.pool;
        constexpr std::size_t big = 1'000'000'000;
        s.max_connections = p.count("max_connections", s.max_connections, 100'000);
        s.max_idle = p.count("max_idle", s.max_idle, 100'000);
        s.idle_timeout_ms = p.count("idle_timeout_ms", s.idle_timeout_ms, big);
        s.max_requests = p.count("max_requests", s.max_requests, big);
        s.max_lifetime_ms = p.count("max_lifetime_ms", s.max_lifetime_ms, big);
        s.queue_limit = p.count("queue_limit", s.queue_limit, 1'000'000);
        s.queue_timeout_ms = p.count("queue_timeout_ms", s.queue_timeout_ms, big);
        s.pinned_per_client = p.count("pinned_per_client", s.pinned_per_client, 100'000);
        s.pinned_per_user = p.count("pinned_per_user", s.pinned_per_user, 100'000);
        if (s.max_connections == 0) p.fail("frontend.pool.max_connections", "must be at least 1");
        if (s.max_requests == 0) p.fail("frontend.pool.max_requests", "must be at least 1");
        if (s.pinned_per_client == 0) p.fail("frontend.pool.pinned_per_client", "must be at least 1");
        if (s.pinned_per_user == 0) p.fail("frontend.pool.pinned_per_user", "must be at least 1");
        p.no_unknown_keys();
    }
    r.no_unknown_keys();
    return f;
}

}  // namespace

topology parse_topology(std::string_view text, std::string_view source) {
    boost::system::error_code ec;
    json::value root = json::parse(text, ec);
    if (ec) throw config_error(fmt::format("{}: not valid JSON: {}", source, ec.message()));

    topology t;
    object_reader top(root, std::string(source), "");
    t.realm = top.string("realm", &t.realm);
    t.ntlm_domain = top.string("ntlm_domain", &t.ntlm_domain);
    t.seed_messages = top.count("seed_messages", t.seed_messages, 1000);
    const auto& backends = top.array("backends");
    for (std::size_t i = 0; i < backends.size(); ++i) {
        object_reader r(backends[i], std::string(source), fmt::format("backends[{}]", i));
        backend_config b;
        b.name = r.string("name");
        b.host = r.string("host");
        b.auth_providers = r.strings("auth_providers", {"Negotiate", "NTLM"});
        b.persist_kerberos = r.boolean("persist_kerberos", false);
        r.no_unknown_keys();
        t.backends.push_back(std::move(b));
    }
    const auto& users = top.array("users");
    for (std::size_t i = 0; i < users.size(); ++i) {
        object_reader r(users[i], std::string(source), fmt::format("users[{}]", i));
        user_entry u;
        u.name = r.string("name");
        u.password = r.string("password");
        u.home = r.string("home");
        u.delegates = r.strings("delegates", {});
        r.no_unknown_keys();
        t.users.push_back(std::move(u));
    }
    if (top.find("frontend")) t.frontend = parse_frontend(top.require("frontend"), source);
    top.no_unknown_keys();
    validate(t, top);
    return t;
}

topology load_topology(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw config_error(fmt::format("{}: cannot be read", file.string()));
    std::ostringstream text;
    text << in.rdbuf();
    return parse_topology(text.str(), file.string());
}

std::string to_json(const topology& t) {
    json::object root;
    root["realm"] = t.realm;
    root["ntlm_domain"] = t.ntlm_domain;
    root["seed_messages"] = t.seed_messages;
    json::array backends;
    for (const auto& b : t.backends) {
        json::array providers(b.auth_providers.begin(), b.auth_providers.end());
        backends.push_back(json::object{{"name", b.name},
                                        {"host", b.host},
                                        {"auth_providers", std::move(providers)},
                                        {"persist_kerberos", b.persist_kerberos}});
    }
    root["backends"] = std::move(backends);
    json::array users;
    for (const auto& u : t.users) {
        json::object o{{"name", u.name}, {"password", u.password}, {"home", u.home}};
        if (!u.delegates.empty()) o["delegates"] = json::array(u.delegates.begin(), u.delegates.end());
        users.push_back(std::move(o));
    }
    root["users"] = std::move(users);
    const auto& f = t.frontend;
    const auto& p = f.pool;
    root["frontend"] = json::object{
        {"policy", f.policy},
        {"require_kerberos", f.require_kerberos},
        {"leak_guard", f.leak_guard},
        {"workers", f.workers},
        {"pool", json::object{{"max_connections", p.max_connections}, {"max_idle", p.max_idle},
                              {"idle_timeout_ms", p.idle_timeout_ms}, {"max_requests", p.max_requests},
                              {"max_lifetime_ms", p.max_lifetime_ms}, {"queue_limit", p.queue_limit},
                              {"queue_timeout_ms", p.queue_timeout_ms}, {"pinned_per_client", p.pinned_per_client},
                              {"pinned_per_user", p.pinned_per_user}}}};
    return json::serialize(root);
}

topology default_topology() {
    topology t;
    t.backends = {
        {"be1", "be1.exsim.test", {"Negotiate", "NTLM"}, false},
        {"be2", "be2.exsim.test", {"NTLM"}, false},  // the SharePoint misconfiguration
    };
    for (auto [name, home] : {std::pair{"alice", "be1"}, {"bob", "be1"}, {"carol", "be2"}, {"dave", "be2"}})
        t.users.push_back({name, std::string(name) + "-pw", home, {}});
    return t;
}

topology generated_topology(std::size_t extra_users) {
    topology t = default_topology();
    t.users.reserve(t.users.size() + extra_users);
    for (std::size_t i = 1; i <= extra_users; ++i) {
        auto name = fmt::format("user{:05}", i);
        t.users.push_back({name, name + "-pw", t.backends[i % t.backends.size()].name, {}});
    }
    return t;
}

void override_backend_auth(topology& t, std::string_view mode) {
    std::vector<std::string> providers;
    if (mode == "negotiate") providers = {"Negotiate", "NTLM"};
    else if (mode == "ntlm") providers = {"NTLM"};
    else throw config_error(fmt::format("--backend-auth: '{}' is not one of negotiate, ntlm", mode));
    for (auto& b : t.backends) b.auth_providers = providers;
}

}  // namespace exsim::common
