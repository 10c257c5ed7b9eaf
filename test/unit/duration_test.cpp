#include "singleton_lock/duration.hpp"

#include <gtest/gtest.h>

#include "singleton_lock/errors.hpp"

namespace singleton_lock {
namespace {

using namespace std::chrono_literals;

TEST(Duration, ParsesEveryUnit) {
    EXPECT_EQ(parse_duration("250ms"), 250ms);
    EXPECT_EQ(parse_duration("10s"), 10s);
    EXPECT_EQ(parse_duration("2m"), 2min);
    EXPECT_EQ(parse_duration("1h"), 1h);
    EXPECT_EQ(parse_duration("0s"), 0ms);
    EXPECT_EQ(parse_duration("1.5s"), 1500ms);
    EXPECT_EQ(parse_duration("0.25m"), 15s);
}

TEST(Duration, RefusesJunk) {
    for (const char* bad : {"", "10", "s", "-1s", "10 s", " 10s", "10s ", "1.s", ".5s", "10sec",
                            "10S", "1d", "forever", "1e3ms", "99999999999999h", "0x10s"}) {
        EXPECT_THROW(parse_duration(bad), UsageError) << bad;
    }
}

TEST(Duration, RefusesWhatWouldOverflow) {
    EXPECT_EQ(parse_duration("87600h"), max_duration);
    EXPECT_EQ(parse_duration("315360000000ms"), max_duration);
    for (const char* huge : {"87600.001h", "87601h", "99999999999h", "5256001m", "315360000001ms",
                             "18446744073709551616ms", "99999999999999999999999999h"}) {
        try {
            parse_duration(huge);
            ADD_FAILURE() << huge << " was accepted";
        } catch (const UsageError& e) {
            EXPECT_NE(std::string(e.what()).find("too long"), std::string::npos) << e.what();
        }
    }
}

TEST(Duration, WaitAcceptsForever) {
    EXPECT_EQ(parse_wait("forever"), std::nullopt);
    EXPECT_EQ(parse_wait("1s"), std::optional<Duration>(1s));
    EXPECT_THROW(parse_wait("never"), UsageError);
}

TEST(Duration, FormatsShortest) {
    EXPECT_EQ(format_duration(250ms), "250ms");
    EXPECT_EQ(format_duration(10s), "10s");
    EXPECT_EQ(format_duration(2min), "2m");
    EXPECT_EQ(format_duration(1h), "1h");
    EXPECT_EQ(format_duration(1500ms), "1500ms");
    EXPECT_EQ(format_duration(0ms), "0s");
}

TEST(Duration, IntervalLiteral) { EXPECT_EQ(interval_literal(10s), "10000 milliseconds"); }

}  // namespace
}  // namespace singleton_lock
