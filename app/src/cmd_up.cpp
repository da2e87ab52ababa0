// exsim up: realm + KDC + back-ends + front-end of a topology; writes <state-dir>/endpoints.env.

#include <iostream>
#include <optional>
#include <thread>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "exsim/capture/recorder.hpp"
#include "exsim/common/log.hpp"
#include "exsim/lab/capture_notes.hpp"
#include "exsim/lab/endpoints.hpp"
#include "options.hpp"
#include "servers.hpp"
#include "signals.hpp"

namespace exsim::app {
namespace {

namespace fs = std::filesystem;

// exsim up --capture: the recorder, opened before anything starts, and a thread that flushes
// it twice a second so that a file opened mid-run is readable (all but the last 100 ms, so that
// a response's comment still finds its first frame).
struct live_capture {
    std::string file;
    long long max_mib = 64;
    bool force = false;

    std::optional<capture::recorder> recorder;
    std::optional<lab::capture_notes> notes;
    std::jthread flusher;

    void open(const std::string& source) {
        if (file.empty()) return;
        const auto mib = count_option("capture-max-mib", max_mib, 1, 1 << 20);
        recorder.emplace(capture::recorder_options{file, "--capture", force, mib << 20,
                                                   fmt::format("exsim up: {}", source)});
        notes.emplace(*recorder);
        flusher = std::jthread([this](std::stop_token stop) {
            while (!stop.stop_requested()) {
                std::this_thread::sleep_for(std::chrono::milliseconds(500));
                recorder->flush(std::chrono::milliseconds(100));  // an answer's note comes within microseconds
            }
        });
    }
    void connect(proxy::proxy_options& o) {
        if (!recorder) return;
        o.tap = &*recorder;
        o.trace = notes->sink();
    }
};

// The endpoints.env that 'exsim load', the scripts and a trainer's shell read.
std::string endpoints_env(const common::topology& t, const auth::realm& r, const fs::path& directory,
                          const std::vector<std::unique_ptr<backend::server>>& backends, const proxy::server& frontend,
                          const live_capture& capture) {
    std::string env = fmt::format("export KRB5_CONFIG={}\nexport EXSIM_REALM={}\nexport EXSIM_NTLM_DOMAIN={}\n"
                                  "export EXSIM_DIRECTORY={}\nexport EXSIM_KDC_ADDR=127.0.0.1:{}\n",
                                  r.paths().krb5_conf().string(), t.realm, t.ntlm_domain, directory.string(),
                                  r.kdc_port());
    for (std::size_t i = 0; i < t.backends.size(); ++i) {
        const auto& b = t.backends[i];
        const auto port = backends[i]->port();
        env += fmt::format("export EXSIM_BACKEND_{0}_URL=http://{1}:{2}\nexport EXSIM_BACKEND_{0}_ADDR=127.0.0.1:{2}\n",
                           lab::env_name(b.name), b.host, port);
    }
    env += fmt::format("export EXSIM_PROXY_URL={}\nexport EXSIM_METRICS_URL={}\nexport EXSIM_POLICY={}\n",
                       frontend.url(), frontend.metrics_url(), frontend.policy());
    if (capture.recorder) env += fmt::format("export EXSIM_CAPTURE={}\n", fs::absolute(capture.file).string());
    return env;
}

}  // namespace

int cmd_up(const arguments& args) {
    common_options o;
    frontend_options f;
    live_capture capture;
    std::size_t threads = 2;
    po::options_description d("exsim up");
    add_common(d, o);
    add_frontend(d, f);
    d.add_options()("threads", po::value(&threads)->default_value(2), "worker threads per back-end")(
        "capture", po::value(&capture.file),
        "record the front-end's client and back-end connections to FILE (pcapng, narrated in packet comments)")(
        "capture-max-mib", po::value(&capture.max_mib)->default_value(capture.max_mib),
        "stop recording when the capture reaches this many MiB")(
        "force", po::bool_switch(&capture.force), "overwrite the --capture file if it exists");
    po::variables_map vm;
    if (!parse(args, d, "up", &vm)) return 0;
    if (!vm.count("capture") && (capture.force || !vm["capture-max-mib"].defaulted()))
        throw usage_error("exsim up: --force and --capture-max-mib apply to --capture, which is not given");
    if (vm.count("capture") && capture.file.empty()) throw common::config_error("--capture: an empty file name");
    auto t = topology_of(o);
    apply_frontend_options(t, f);
    capture.open(topology_source(o));
    auto signals = block_stop_signals();
    const fs::path state = fs::absolute(o.state_dir);
    fs::create_directories(state);
    auto r = auth::realm::create(t, state);
    r.apply_environment();
    r.start_kdc();

    std::vector<std::unique_ptr<backend::server>> backends;
    std::map<std::string, std::string> addresses;
    for (const auto& b : t.backends) {
        backends.push_back(make_backend(t, r, b.name, state, 0, threads, o.reset));
        backends.back()->start();
        addresses[b.name] = fmt::format("127.0.0.1:{}", backends.back()->port());
    }
    auto frontend = make_frontend(t, f, state, addresses, [&](proxy::proxy_options& po) { capture.connect(po); });
    frontend->start();

    const auto directory = state / "directory.json";
    lab::write_file(directory, common::to_json(t) + "\n");
    const auto env = endpoints_env(t, r, directory, backends, *frontend, capture);
    const auto env_file = state / "endpoints.env";
    lab::write_file(env_file, env);
    common::logger("exsim")->info("everything listens; wrote {}", env_file.string());
    std::cout << env << std::flush;
    wait_for_stop(signals);
    frontend->stop();
    for (auto& be : backends) be->stop();
    r.stop_kdc();
    if (capture.recorder) {
        capture.flusher = {};
        capture.recorder->flush();
        std::cerr << lab::capture_hint(capture.file, capture.recorder->written().frames);
    }
    return 0;
}

}  // namespace exsim::app
