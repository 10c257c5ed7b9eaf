// The lease state machine, without a server.
#include "lease_rules.hpp"

#include <gtest/gtest.h>

using namespace singleton_lock;

namespace {

constexpr Micros kNow = 1'000'000'000;

LeaseRow held_by(std::string_view holder, Micros expires_at, bool bound = false,
                 bool alive = true) {
    LeaseRow row;
    row.exists = true;
    row.released = false;
    row.holder = holder;
    row.token = 7;
    row.expires_at = expires_at;
    row.session_bound = bound;
    row.bound_session_alive = alive;
    return row;
}

}  // namespace

TEST(Classify, MissingOrReleasedIsFree) {
    EXPECT_EQ(classify(LeaseRow{}, kNow), LeaseState::Free);
    LeaseRow released = held_by("a", kNow + 10);
    released.released = true;
    EXPECT_EQ(classify(released, kNow), LeaseState::Free);
}

TEST(Classify, OrphanedBeforeExpiredBeforeHeld) {
    EXPECT_EQ(classify(held_by("a", kNow + 10, true, false), kNow), LeaseState::Orphaned);
    EXPECT_EQ(classify(held_by("a", kNow - 1, true, false), kNow), LeaseState::Orphaned);
    EXPECT_EQ(classify(held_by("a", kNow - 1, true, true), kNow), LeaseState::Expired);
    EXPECT_EQ(classify(held_by("a", kNow, false), kNow), LeaseState::Expired);
    EXPECT_EQ(classify(held_by("a", kNow + 1, true, true), kNow), LeaseState::Held);
    EXPECT_EQ(classify(held_by("a", kNow + 1, false), kNow), LeaseState::Held);
}

TEST(Classify, UnboundLeaseIgnoresSessionLiveness) {
    EXPECT_EQ(classify(held_by("a", kNow + 1, false, false), kNow), LeaseState::Held);
}

TEST(LivenessCheck, OnlyForBoundUnreleasedLeases) {
    EXPECT_FALSE(needs_liveness_check(LeaseRow{}));
    EXPECT_FALSE(needs_liveness_check(held_by("a", kNow + 1, false)));
    EXPECT_TRUE(needs_liveness_check(held_by("a", kNow + 1, true)));
    LeaseRow released = held_by("a", kNow + 1, true);
    released.released = true;
    EXPECT_FALSE(needs_liveness_check(released));
}

TEST(DecideAcquire, FreeLeaseIsTaken) {
    AcquireDecision d = decide_acquire(LeaseRow{}, "me", kNow);
    EXPECT_EQ(d.outcome, AcquireOutcome::TakeNew);
    EXPECT_EQ(d.previous_end, TenureEnd::None);
}

TEST(DecideAcquire, StaleLeasesAreTakenWithTheReason) {
    EXPECT_EQ(decide_acquire(held_by("other", kNow - 1), "me", kNow).previous_end,
              TenureEnd::Expired);
    EXPECT_EQ(decide_acquire(held_by("other", kNow + 99, true, false), "me", kNow).previous_end,
              TenureEnd::Orphaned);
    EXPECT_EQ(decide_acquire(held_by("other", kNow - 1), "me", kNow).outcome,
              AcquireOutcome::TakeNew);
}

TEST(DecideAcquire, LiveLeaseIsRenewedForItsHolderAndRefusedToOthers) {
    EXPECT_EQ(decide_acquire(held_by("me", kNow + 1), "me", kNow).outcome, AcquireOutcome::Renew);
    EXPECT_EQ(decide_acquire(held_by("other", kNow + 1), "me", kNow).outcome,
              AcquireOutcome::Refuse);
    // Holder ids compare exactly.
    EXPECT_EQ(decide_acquire(held_by("me ", kNow + 1), "me", kNow).outcome, AcquireOutcome::Refuse);
}

TEST(DecideAcquire, SameHolderAfterExpiryStartsANewTenure) {
    EXPECT_EQ(decide_acquire(held_by("me", kNow), "me", kNow).outcome, AcquireOutcome::TakeNew);
}

TEST(Tokens, StrictlyIncreaseWithinATimeline) {
    auto first = next_token(0, 1);
    ASSERT_TRUE(first);
    EXPECT_EQ(*first, (std::int64_t{1} << kTokenSequenceBits) | 1);
    auto second = next_token(*first, 1);
    ASSERT_TRUE(second);
    EXPECT_EQ(*second, *first + 1);
    EXPECT_EQ(token_timeline(*second), 1u);
}

TEST(Tokens, APromotedTimelineBeatsEveryTokenOfTheOldOne) {
    // The old primary issued many tokens the replica never saw.
    std::int64_t lost_on_old_primary = (std::int64_t{1} << kTokenSequenceBits) | 999'999;
    std::int64_t replicated = (std::int64_t{1} << kTokenSequenceBits) | 5;
    auto after_promotion = next_token(replicated, 2);
    ASSERT_TRUE(after_promotion);
    EXPECT_GT(*after_promotion, lost_on_old_primary);
    EXPECT_EQ(token_timeline(*after_promotion), 2u);
}

TEST(Tokens, NeverGoBackwardsEvenFromALaterTimelineRow) {
    std::int64_t from_timeline_3 = (std::int64_t{3} << kTokenSequenceBits) | 10;
    auto next = next_token(from_timeline_3, 2);
    ASSERT_TRUE(next);
    EXPECT_GT(*next, from_timeline_3);
}

TEST(Tokens, ExhaustionIsReportedNotWrapped) {
    std::int64_t last =
        (std::int64_t{1} << kTokenSequenceBits) | ((std::int64_t{1} << kTokenSequenceBits) - 1);
    EXPECT_FALSE(next_token(last, 1));
    EXPECT_FALSE(next_token(0, 0));
    EXPECT_FALSE(next_token(-1, 1));
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
