/* lease_internal.h — what the three files of the state machine share:
 * lease.c (inputs, the campaign, accessors), lease_term.c (a term: won,
 * renewed, ended, drained, released) and lease_holder.c (what is known of
 * the key's holder).  Nothing else includes it.  Like them it is pure: no
 * clock, no I/O, no allocation, no static data. */
#ifndef LEASEHOLD_LEASE_INTERNAL_H
#define LEASEHOLD_LEASE_INTERNAL_H

#include "lease.h"

/* ------------------------------------------------------------- lease.c */

/* The one way to change state: sets it and clears the per-state part, so
 * nothing of the state left behind is read in the next one. */
void lease_enter(lease *l, lease_state state);

/* Queues an action for lease_next_action(). */
void lease_push(lease *l, lease_action a);

/* Emits a command (LEASE_SEND_*) and marks it in flight.  The caller sends
 * it right after this input, so now_ms is a lower bound of the instant
 * Redis runs it: the safety rule builds on that. */
void lease_queue_send(lease *l, uint64_t now_ms, lease_action_kind kind, uint64_t epoch);

/* True only for the reply to the command still awaited (same seq, same
 * kind), which frees the slot. */
bool lease_take_reply(lease *l, uint32_t seq, lease_action_kind kind);

/* A wait in [3/4, 1] x base_ms, from the lease's own generator. */
uint32_t lease_jittered(lease *l, uint32_t base_ms);

/* The margin taken off every lease for clock-rate differences with Redis:
 * lease_ms * drift_ppm / 10^6 + 2 ms. */
uint64_t lease_drift_ms(const lease_config *cfg);

/* Halts the election on a permanent error, reported as `error` (see
 * lease_halt); already halted: nothing happens. */
void lease_halt_with(lease *l, uint64_t now_ms, lease_action error);

/* Reports an error reply; halts the election when no retry can fix it. */
void lease_reply_error(lease *l, uint64_t now_ms, int code);

/* Waits delay_ms before the next claim (or read) or, when the campaign is
 * ending, becomes IDLE with LEASE_STOPPED. */
void lease_become_follower(lease *l, uint64_t now_ms, uint32_t delay_ms);

/* ------------------------------------------------------ lease_holder.c */

/* Notes an epoch seen anywhere: the next claim asks for one above it. */
void lease_see_epoch(lease *l, uint64_t epoch);

/* Records the holder seen on Redis (NULL: nobody) and reports a change
 * (LEASE_LEADER_CHANGED); `gone` says how a term seen to end ended. */
void lease_note_holder(lease *l, const char *holder, size_t len, uint64_t epoch,
                       leasehold_change gone);

/* A `released` message: true when it ends the term of the holder we know
 * of, which is then reported gone (LEASEHOLD_CHANGE_RELEASED). */
bool lease_note_release(lease *l, const char *token, size_t token_len, uint64_t epoch);

/* Checks a holder named in a reply: a value without TTL halts the election
 * (LEASEHOLD_ENOTLEASE), a foreign value is reported once (_EFOREIGN). */
void lease_check_holder(lease *l, uint64_t now_ms, const lease_reply *r);

/* -------------------------------------------------------- lease_term.c */

/* Ends a leader's term whose valid_until or renew deadline has passed.
 * Every input calls it first. */
void lease_check_term(lease *l, uint64_t now_ms);

/* The acquire sent at sent_ms won the term `epoch`: LEADER, or a release
 * when the term cannot be taken (stopping, resigned, too late). */
void lease_won(lease *l, uint64_t now_ms, uint64_t sent_ms, uint64_t epoch, uint64_t redis_time_us);

/* Ends a leader's term (LEADER to DRAINING, LEASE_REVOKED with reason). */
void lease_revoke(lease *l, uint64_t now_ms, leasehold_reason reason);

/* Ends a leader's term on evidence that the key may not be ours any more:
 * as lease_revoke, and the term's deadline is now. */
void lease_lose(lease *l, uint64_t now_ms, leasehold_reason reason);

/* Sends the release of the term `epoch` (RELEASING); once answered the
 * follower claims claim_delay_ms later. */
void lease_send_release(lease *l, uint64_t now_ms, uint64_t epoch, uint32_t claim_delay_ms);

/* The term's steps that are due: the end of a drain, a renewal. */
void lease_term_advance(lease *l, uint64_t now_ms);

/* The next instant the term has work (LEADER, DRAINING); UINT64_MAX for none. */
uint64_t lease_term_wake_at(const lease *l);

#endif
