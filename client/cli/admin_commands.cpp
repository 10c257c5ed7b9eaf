// singleton-lock status / release --force / pause / resume.
#include <algorithm>
#include <cstdio>
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

int admin_error(const std::string& command, const Error& e) {
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
    try {
        if (force_release(args.dsn, args.schema, args.name)) {
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
    try {
        const bool ended = pause(args.dsn, args.schema, args.name, args.reason);
        std::printf("lease \"%s\" paused (%s); nobody leads until `singleton-lock resume`\n",
                    args.name.c_str(),
                    ended ? "its holder's tenure ended" : "nobody held it");
        return exit_code::ok;
    } catch (const Error& e) {
        return admin_error("pause", e);
    }
}

int resume_command(const PauseArgs& args) {
    try {
        if (resume(args.dsn, args.schema, args.name)) {
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
