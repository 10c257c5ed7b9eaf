// The lease state machine, without a server.
#include "lease_rules.hpp"

#include <gtest/gtest.h>

using namespace singleton_lock;

namespace {

constexpr Micros kNow = 1'000'000'000;
constexpr std::uint32_t kApp = 16384;
constexpr std::uint32_t kOtherRole = 16385;

LeaseRow held_by(std::string_view holder, Micros expires_at, Binding binding = Binding::Unbound,
                 std::uint32_t role = kApp) {
    LeaseRow row;
    row.exists = true;
    row.released = false;
    row.holder = holder;
    row.role = role;
    row.token = 7;
    row.expires_at = expires_at;
    row.ttl = 10;
    row.binding = binding;
    return row;
}

Caller me{"me", kApp};

}  // namespace

TEST(Classify, MissingOrReleasedIsFree) {
    EXPECT_EQ(classify(LeaseRow{}, kNow), LeaseState::Free);
    LeaseRow released = held_by("a", kNow + 10);
    released.released = true;
    EXPECT_EQ(classify(released, kNow), LeaseState::Free);
}

TEST(Classify, OrphanedBeforeExpiredBeforeHeld) {
    EXPECT_EQ(classify(held_by("a", kNow + 10, Binding::Ended), kNow), LeaseState::Orphaned);
    EXPECT_EQ(classify(held_by("a", kNow - 1, Binding::Ended), kNow), LeaseState::Orphaned);
    EXPECT_EQ(classify(held_by("a", kNow - 1, Binding::Live), kNow), LeaseState::Expired);
    EXPECT_EQ(classify(held_by("a", kNow, Binding::Unbound), kNow), LeaseState::Expired);
    EXPECT_EQ(classify(held_by("a", kNow + 1, Binding::Live), kNow), LeaseState::Held);
    EXPECT_EQ(classify(held_by("a", kNow + 1, Binding::Unbound), kNow), LeaseState::Held);
}

TEST(Classify, PausedComesFirstAndRefusesEveryone) {
    LeaseRow row = held_by("me", kNow + 10, Binding::Live);
    row.paused = true;
    row.released = true;  // pausing ends the tenure
    EXPECT_EQ(classify(row, kNow), LeaseState::Paused);
    EXPECT_EQ(decide_acquire(row, me, kNow).outcome, AcquireOutcome::Refuse);
    EXPECT_FALSE(needs_binding_check(row));
    EXPECT_STREQ(state_name(LeaseState::Paused), "paused");
    EXPECT_STREQ(tenure_end_name(TenureEnd::Paused), "paused");
}

TEST(Classify, SessionsOfAFormerPrimaryLeaveTheLeaseOrphanedAtOnce) {
    EXPECT_EQ(classify(held_by("a", kNow + 10, Binding::EndedByFailover), kNow),
              LeaseState::Orphaned);
}

// The holder lost its connection no later than the restart and stops acting
// by (last heartbeat sent + ttl) < (restart + ttl): until then the lease stays
// its own, even if the stored expiry (say, of a heartbeat lost in the crash)
// is earlier.
TEST(Classify, ARestartKeepsTheLeaseUntilServerStartPlusTtl) {
    LeaseRow row = held_by("a", kNow - 5, Binding::EndedByRestart);
    row.ttl = 100;
    row.server_epoch = kNow - 50;
    EXPECT_EQ(classify(row, kNow), LeaseState::Held);
    EXPECT_EQ(lease_deadline(row), kNow + 50);
    EXPECT_EQ(classify(row, kNow + 50), LeaseState::Expired);
    // A stored expiry later than that still counts.
    row.expires_at = kNow + 80;
    EXPECT_EQ(lease_deadline(row), kNow + 80);
    EXPECT_EQ(classify(row, kNow + 60), LeaseState::Held);
}

TEST(BindingCheck, OnlyForBoundUnreleasedLeases) {
    EXPECT_FALSE(needs_binding_check(LeaseRow{}));
    EXPECT_FALSE(needs_binding_check(held_by("a", kNow + 1, Binding::Unbound)));
    EXPECT_TRUE(needs_binding_check(held_by("a", kNow + 1, Binding::Live)));
    LeaseRow released = held_by("a", kNow + 1, Binding::Live);
    released.released = true;
    EXPECT_FALSE(needs_binding_check(released));
}

TEST(DecideAcquire, FreeLeaseIsTaken) {
    AcquireDecision d = decide_acquire(LeaseRow{}, me, kNow);
    EXPECT_EQ(d.outcome, AcquireOutcome::TakeNew);
    EXPECT_EQ(d.previous_end, TenureEnd::None);
}

TEST(DecideAcquire, StaleLeasesAreTakenWithTheReason) {
    EXPECT_EQ(decide_acquire(held_by("other", kNow - 1), me, kNow).previous_end,
              TenureEnd::Expired);
    EXPECT_EQ(decide_acquire(held_by("other", kNow + 99, Binding::Ended), me, kNow).previous_end,
              TenureEnd::Orphaned);
    EXPECT_EQ(decide_acquire(held_by("other", kNow - 1), me, kNow).outcome,
              AcquireOutcome::TakeNew);
}

TEST(DecideAcquire, LiveLeaseIsRenewedForItsHolderAndRefusedToOthers) {
    EXPECT_EQ(decide_acquire(held_by("me", kNow + 1), me, kNow).outcome, AcquireOutcome::Renew);
    EXPECT_EQ(decide_acquire(held_by("other", kNow + 1), me, kNow).outcome,
              AcquireOutcome::Refuse);
    // Holder ids compare exactly.
    EXPECT_EQ(decide_acquire(held_by("me ", kNow + 1), me, kNow).outcome, AcquireOutcome::Refuse);
}

// A holder id seen by (or guessed by) another role is no credential there.
TEST(DecideAcquire, TheSameHolderIdOfAnotherRoleIsSomeoneElse) {
    EXPECT_EQ(decide_acquire(held_by("me", kNow + 1, Binding::Live, kOtherRole), me, kNow).outcome,
              AcquireOutcome::Refuse);
}

TEST(DecideAcquire, SameHolderAfterExpiryStartsANewTenure) {
    EXPECT_EQ(decide_acquire(held_by("me", kNow), me, kNow).outcome, AcquireOutcome::TakeNew);
}

TEST(TokenAuthority, OnlyTheAcquiringRoleWithTheCurrentTokenOfALiveLease) {
    LeaseRow row = held_by("me", kNow + 10, Binding::Live);
    EXPECT_TRUE(token_authorizes(row, 7, kApp, kNow));
    EXPECT_FALSE(token_authorizes(row, 8, kApp, kNow));
    EXPECT_FALSE(token_authorizes(row, 7, kOtherRole, kNow));
    EXPECT_FALSE(token_authorizes(row, 7, kApp, kNow + 10));
    row.released = true;
    EXPECT_FALSE(token_authorizes(row, 7, kApp, kNow));
}

namespace {
constexpr std::int64_t timeline_base(std::int64_t timeline) {
    return timeline << kTokenTimelineShift;
}
}  // namespace

TEST(Tokens, CarryTheTimelineAndTheWalPosition) {
    auto first = next_token(0, 1, 6400);
    ASSERT_TRUE(first);
    EXPECT_EQ(*first, timeline_base(1) | 100);
    EXPECT_EQ(token_timeline(*first), 1u);
}

TEST(Tokens, StrictlyIncreaseEvenWhenTheWalDidNotMove) {
    auto first = next_token(0, 1, 6400);
    auto second = next_token(*first, 1, 6400);
    ASSERT_TRUE(second);
    EXPECT_EQ(*second, *first + 1);
}

// Dropping and creating the extension again (or deleting a row) loses the
// previous token; the WAL position, which only grows, still puts the next
// token above every token issued before.
TEST(Tokens, TheWalFloorSurvivesALostRow) {
    std::uint64_t wal = 64 * 1000;
    std::int64_t last = 0;
    for (int i = 0; i < 50; i++) {
        last = *next_token(last, 1, wal);
        wal += 128;  // every acquisition writes more than 64 bytes of WAL
    }
    auto after_recreate = next_token(0, 1, wal);
    ASSERT_TRUE(after_recreate);
    EXPECT_GT(*after_recreate, last);
}

TEST(Tokens, APromotedTimelineBeatsEveryTokenOfTheOldOne) {
    // The old primary issued many tokens the replica never saw.
    std::int64_t lost_on_old_primary = timeline_base(1) | 999'999'999;
    std::int64_t replicated = timeline_base(1) | 5;
    auto after_promotion = next_token(replicated, 2, 64 * 6);
    ASSERT_TRUE(after_promotion);
    EXPECT_GT(*after_promotion, lost_on_old_primary);
    EXPECT_EQ(token_timeline(*after_promotion), 2u);
}

TEST(Tokens, NeverGoBackwardsEvenFromALaterTimelineRow) {
    std::int64_t from_timeline_3 = timeline_base(3) | 10;
    auto next = next_token(from_timeline_3, 2, 0);
    ASSERT_TRUE(next);
    EXPECT_GT(*next, from_timeline_3);
}

TEST(Tokens, AHugeWalPositionSaturatesInsteadOfSpillingIntoTheTimeline) {
    auto token = next_token(0, 1, UINT64_MAX);
    ASSERT_TRUE(token);
    EXPECT_EQ(token_timeline(*token), 1u);
}

TEST(Tokens, ExhaustionIsReportedNotWrapped) {
    EXPECT_FALSE(next_token(INT64_MAX, 1, 0));
    EXPECT_FALSE(next_token(0, 0, 0));
    EXPECT_FALSE(next_token(-1, 1, 0));
    EXPECT_FALSE(next_token(0, 1u << 20, 0));
}

TEST(Durations, IntervalsAreFixedLengths) {
    EXPECT_EQ(interval_micros(1'500'000, 0, 0), 1'500'000);
    EXPECT_EQ(interval_micros(0, 1, 0), 86'400'000'000LL);
    EXPECT_EQ(interval_micros(0, 0, 1), 30 * 86'400'000'000LL);
    EXPECT_EQ(interval_micros(-1, 0, 0), -1);
    EXPECT_FALSE(interval_micros(0, 0, INT32_MAX));
    EXPECT_FALSE(interval_micros(INT64_MAX, 1, 0));
}

TEST(Durations, ExpiryOverflowIsDetected) {
    EXPECT_EQ(expiry_after(kNow, 5), kNow + 5);
    EXPECT_FALSE(expiry_after(INT64_MAX - 1, 5));
}

TEST(Labels, CountCharactersNotBytes) {
    EXPECT_EQ(check_label("\xc3\xa9t\xc3\xa9", true, 255).characters, 3);
    EXPECT_EQ(check_label("\xc3\xa9t\xc3\xa9", true, 2).problem, LabelProblem::TooLong);
    EXPECT_EQ(check_label("", true, 255).problem, LabelProblem::Empty);
}

TEST(Labels, RefuseWhiteSpaceOnlyAndControlCharacters) {
    EXPECT_EQ(check_label("   ", true, 255).problem, LabelProblem::OnlyWhiteSpace);
    EXPECT_EQ(check_label("\xc2\xa0\xe2\x80\x83", true, 255).problem,
              LabelProblem::OnlyWhiteSpace);  // no-break space, em space
    EXPECT_EQ(check_label("a\tb", true, 255).problem, LabelProblem::ControlCharacter);
    EXPECT_EQ(check_label("a\x7f", true, 255).problem, LabelProblem::ControlCharacter);
    EXPECT_EQ(check_label("a\xc2\x85", true, 255).problem,
              LabelProblem::ControlCharacter);  // C1 NEL
    EXPECT_EQ(check_label(" a b ", true, 255).problem, LabelProblem::None);
    // Another server encoding: only ASCII is judged.
    EXPECT_EQ(check_label("\xa0\xa0", false, 255).problem, LabelProblem::None);
    EXPECT_EQ(check_label("\x01", false, 255).problem, LabelProblem::ControlCharacter);
}

TEST(Names, MatchTheSqlContract) {
    EXPECT_STREQ(state_name(LeaseState::Free), "free");
    EXPECT_STREQ(state_name(LeaseState::Orphaned), "orphaned");
    EXPECT_STREQ(state_name(LeaseState::Expired), "expired");
    EXPECT_STREQ(state_name(LeaseState::Held), "held");
    EXPECT_EQ(tenure_end_name(TenureEnd::None), nullptr);
    EXPECT_STREQ(tenure_end_name(TenureEnd::Released), "released");
    EXPECT_STREQ(tenure_end_name(TenureEnd::Expired), "expired");
    EXPECT_STREQ(tenure_end_name(TenureEnd::Orphaned), "orphaned");
    EXPECT_STREQ(tenure_end_name(TenureEnd::Forced), "forced");
}
