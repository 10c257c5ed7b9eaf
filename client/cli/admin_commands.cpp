// singleton-lock status / release --force / pause / resume.
#include <signal.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "commands.hpp"
#include "exit_codes.hpp"
#include "singleton_lock/admin.hpp"
#include "singleton_lock/errors.hpp"

namespace singleton_lock::cli {

namespace {

// Bad input found before the server was asked (a name that is not UTF-8) is a
// usage error, like a bad flag.
int exit_for(const Error& e) {
    return dynamic_cast<const UsageError*>(&e) != nullptr ? exit_code::usage : exit_code::error;
}

// What an operator needs to know when the server refuses: who may (command:
// "status", "release", "pause" or "resume").
std::string permission_hint(const std::string& command) {
    const std::string who = "for administrators: a superuser, the extension's owner, or a role "
                            "granted ";
    if (command == "status")
        return " (status reads the view singleton_leases, " + who +
               "SELECT on it and EXECUTE on singleton_lock_state)";
    if (command == "release")
        return " (release --force is " + who +
               "EXECUTE on singleton_force_release(text) and singleton_lock_state)";
    return " (pause and resume are " + who +
           "EXECUTE on singleton_pause(text, text) and singleton_resume(text))";
}

// SIGINT, SIGTERM, SIGHUP while a call waits in the server: cancel it there
// (it then changes nothing), instead of dying and leaving its backend queued
// for the lease, to act when whatever held it up ends. A second signal, or one
// before the call was sent, has its default effect. A signal ignored when we
// started (nohup, a background job of a script) stays ignored.
volatile std::sig_atomic_t stop_signal = 0;

extern "C" void on_stop_signal(int sig) {
    if (stop_signal == 0 && cancel_admin_call()) {
        stop_signal = sig;
        return;
    }
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

class CancelOnSignals {
  public:
    CancelOnSignals() {
        struct sigaction sa = {};
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        for (std::size_t i = 0; i < kCount; ++i) {
            ::sigaction(kSignals[i], nullptr, &old_[i]);
            installed_[i] = old_[i].sa_handler != SIG_IGN;
            if (installed_[i]) ::sigaction(kSignals[i], &sa, nullptr);
        }
    }
    ~CancelOnSignals() {
        for (std::size_t i = 0; i < kCount; ++i)
            if (installed_[i]) ::sigaction(kSignals[i], &old_[i], nullptr);
    }
    CancelOnSignals(const CancelOnSignals&) = delete;
    CancelOnSignals& operator=(const CancelOnSignals&) = delete;

  private:
    static constexpr std::size_t kCount = 3;
    static constexpr int kSignals[kCount] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction old_[kCount] = {};
    bool installed_[kCount] = {};
};

// Said once the call has waited a second: who holds it up, and the way out.
AdminWaitHooks waiting_note(const std::string& command) {
    AdminWaitHooks hooks;
    hooks.on_waiting = [command](const std::vector<BlockingSession>& blockers) {
        std::string who;
        for (const auto& b : blockers) {
            who += who.empty() ? " by " : ", ";
            who += "pid " + std::to_string(b.pid);
            std::string what = b.application_name;
            if (!b.state.empty()) what += (what.empty() ? "" : ", ") + b.state;
            if (!b.xact_age.empty())
                what += (what.empty() ? "" : ", ") + b.xact_age + " into its transaction";
            if (!what.empty()) who += " (" + what + ")";
        }
        std::fprintf(stderr,
                     "singleton-lock %s: waiting for the lease, held up%s: transactions that "
                     "asserted it (fenced work) or another call on it must end first "
                     "(pg_terminate_backend ends one); Ctrl-C gives up and changes nothing\n",
                     command.c_str(), who.empty() ? "" : who.c_str());
    };
    return hooks;
}

int admin_error(const std::string& command, const Error& e) {
    if (stop_signal != 0 && dynamic_cast<const QueryCanceledError*>(&e)) {
        const std::string name = std::string("SIG") + sigabbrev_np(stop_signal);
        std::fprintf(stderr,
                     "singleton-lock %s: stopped by %s: the server cancelled the call, nothing "
                     "was changed\n",
                     command.c_str(), name.c_str());
        return exit_code::signal_base + stop_signal;
    }
    std::string hint;
    if (dynamic_cast<const PermissionDeniedError*>(&e))
        hint = permission_hint(command);
    else if (const auto* missing = dynamic_cast<const ExtensionMissingError*>(&e);
             missing && missing->sqlstate() == "42883" &&  // (not 42704: none installed)
             (command == "pause" || command == "resume"))
        hint = " (pause and resume need extension version 1.1: ALTER EXTENSION singleton_lock "
               "UPDATE)";
    std::fprintf(stderr, "singleton-lock %s: %s%s\n", command.c_str(), e.what(), hint.c_str());
    return exit_for(e);
}

}  // namespace

int status_command(const StatusArgs& args) {
    std::vector<LeaseStatus> rows;
    try {
        rows = list_leases(args.dsn, args.schema, args.name);
    } catch (const Error& e) {
        return admin_error("status", e);
    }
    if (rows.empty()) {
        std::printf(args.name ? "no lease named \"%s\"\n" : "no leases%s\n",
                    args.name ? args.name->c_str() : "");
        return args.name ? exit_code::error : exit_code::ok;
    }
    const std::vector<std::string> head = {
        "NAME",    "STATE",      "HOLDER",      "TOKEN",      "EXPIRES IN", "EXPIRES AT",
        "TTL",     "PID",        "PRIORITY",    "TENURES",    "LAST ENDED", "ACQUIRED AT",
        "RENEWED AT", "PAUSED BY", "PAUSE REASON"};
    std::vector<std::vector<std::string>> table;
    for (const auto& r : rows)
        table.push_back({r.name, r.state, r.holder, r.token, r.expires_in, r.expires_at, r.ttl,
                         r.holder_pid, r.priority, r.transitions, r.last_transition,
                         r.acquired_at, r.renewed_at, r.paused_by, r.paused_reason});
    std::vector<std::size_t> width(head.size());
    for (std::size_t c = 0; c < head.size(); ++c) {
        width[c] = head[c].size();
        for (const auto& row : table) width[c] = std::max(width[c], row[c].size());
    }
    const auto print_row = [&](const std::vector<std::string>& row) {
        std::string line;
        for (std::size_t c = 0; c < row.size(); ++c) {
            line += row[c];
            if (c + 1 < row.size()) line += std::string(width[c] - row[c].size() + 2, ' ');
        }
        std::printf("%s\n", line.c_str());
    };
    print_row(head);
    for (const auto& row : table) print_row(row);
    return exit_code::ok;
}

int release_command(const ReleaseArgs& args) {
    CancelOnSignals cancel_on_signals;
    try {
        if (force_release(args.dsn, args.schema, args.name, waiting_note("release"))) {
            std::printf("lease \"%s\" released\n", args.name.c_str());
            return exit_code::ok;
        }
        std::printf("lease \"%s\" was not held\n", args.name.c_str());
        return exit_code::not_held;
    } catch (const Error& e) {
        return admin_error("release", e);
    }
}

}  // namespace singleton_lock::cli

namespace singleton_lock::cli {

int pause_command(const PauseArgs& args) {
    CancelOnSignals cancel_on_signals;
    try {
        const bool ended =
            pause(args.dsn, args.schema, args.name, args.reason, waiting_note("pause"));
        std::printf("lease \"%s\" paused (%s); nobody leads until `singleton-lock resume`\n",
                    args.name.c_str(),
                    ended ? "its holder's tenure ended" : "nobody held it");
        return exit_code::ok;
    } catch (const Error& e) {
        return admin_error("pause", e);
    }
}

int resume_command(const PauseArgs& args) {
    CancelOnSignals cancel_on_signals;
    try {
        if (resume(args.dsn, args.schema, args.name, waiting_note("resume"))) {
            std::printf("lease \"%s\" resumed (handed to the best waiting standby, if any)\n",
                        args.name.c_str());
            return exit_code::ok;
        }
        std::printf("lease \"%s\" was not paused\n", args.name.c_str());
        return exit_code::not_held;
    } catch (const Error& e) {
        return admin_error("resume", e);
    }
}

}  // namespace singleton_lock::cli
