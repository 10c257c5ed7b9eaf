// singleton-lock status / release --force.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "commands.hpp"
#include "exit_codes.hpp"
#include "singleton_lock/admin.hpp"
#include "singleton_lock/errors.hpp"

namespace singleton_lock::cli {

int status_command(const StatusArgs& args) {
    std::vector<LeaseStatus> rows;
    try {
        rows = list_leases(args.dsn, args.schema, args.name);
    } catch (const Error& e) {
        std::fprintf(stderr, "singleton-lock status: %s\n", e.what());
        return exit_code::error;
    }
    if (rows.empty()) {
        std::printf(args.name ? "no lease named \"%s\"\n" : "no leases%s\n",
                    args.name ? args.name->c_str() : "");
        return args.name ? exit_code::error : exit_code::ok;
    }
    const std::vector<std::string> head = {"NAME",       "STATE",      "HOLDER",      "TOKEN",
                                           "EXPIRES IN", "EXPIRES AT", "TTL",         "PID",
                                           "TENURES",    "LAST ENDED", "ACQUIRED AT", "RENEWED AT"};
    std::vector<std::vector<std::string>> table;
    for (const auto& r : rows)
        table.push_back({r.name, r.state, r.holder, r.token, r.expires_in, r.expires_at, r.ttl,
                         r.holder_pid, r.transitions, r.last_transition, r.acquired_at,
                         r.renewed_at});
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
        std::fprintf(stderr, "singleton-lock release: %s\n", e.what());
        return exit_code::error;
    }
}

}  // namespace singleton_lock::cli
