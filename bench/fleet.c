/* fleet.c — the candidates of one benchmark configuration, seen from the
 * bench: starting them, reading what they report, stopping them.
 *
 * Each candidate is this binary re-executed with --candidate, through
 * test_process_spawn() (signals blocked across fork, PR_SET_PDEATHSIG, reaped
 * by pid), with its stdout on a pipe the bench polls.  Waits are bounded by
 * EVENT_WAIT_MS: a benchmark that stops hearing from its candidates says so
 * and exits instead of hanging.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EVENT_WAIT_MS 30000 /* longest wait for any one event before giving up */

typedef enum event_kind { EV_READY, EV_ELECTED, EV_REVOKED, EV_ERROR, EV_EOF } event_kind;

typedef struct event {
    event_kind kind;
    int slot;
    uint64_t ns;
} event;

void fleet_init(fleet *f, const candidate_setup *setup)
{
    memset(f, 0, sizeof *f);
    f->setup = setup;
    for (int i = 0; i < BENCH_MAX_CANDIDATES; i++)
        f->cand[i].fd = -1;
}

/* Parses the next complete line of slot's buffer into ev; false if none. */
static bool next_line(fleet *f, int slot, event *ev)
{
    candidate *c = &f->cand[slot];
    char *nl = memchr(c->buf, '\n', c->len);
    if (!nl)
        return false;
    *nl = '\0';
    unsigned long long epoch = 0, t = 0;
    char reason[32];
    *ev = (event){.slot = slot};
    if (sscanf(c->buf, "ready %llu", &t) == 1) {
        *ev = (event){.kind = EV_READY, .slot = slot, .ns = t};
    } else if (sscanf(c->buf, "elected %llu %llu", &epoch, &t) == 2) {
        *ev = (event){.kind = EV_ELECTED, .slot = slot, .ns = t};
    } else if (sscanf(c->buf, "revoked %31s %llu", reason, &t) == 2) {
        *ev = (event){.kind = EV_REVOKED, .slot = slot, .ns = t};
        if (strcmp(reason, "resigned") != 0) {
            fprintf(stderr, "failover: candidate %s: term ended: %s\n", c->id, reason);
            f->revocations++;
        }
    } else {
        fprintf(stderr, "failover: candidate %s: %s\n", c->id, c->buf);
        ev->kind = EV_ERROR;
    }
    size_t used = (size_t)(nl + 1 - c->buf);
    memmove(c->buf, nl + 1, c->len - used);
    c->len -= used;
    return true;
}

/* Monotonic ms for the bench's own deadlines. */
static uint64_t now_ms(void)
{
    return bench_now_ns() / 1000000u;
}

/*
 * The next event of any running candidate, waiting up to wait_ms; false when
 * none came.  A candidate whose pipe closed gives EV_EOF once (its fd is then
 * closed).
 */
static bool next_event(fleet *f, event *ev, uint64_t wait_ms)
{
    uint64_t deadline = now_ms() + wait_ms;
    for (;;) {
        struct pollfd pfds[BENCH_MAX_CANDIDATES];
        int slots[BENCH_MAX_CANDIDATES], n = 0;
        for (int i = 0; i < BENCH_MAX_CANDIDATES; i++) {
            if (f->cand[i].fd < 0)
                continue;
            if (next_line(f, i, ev))
                return true;
            pfds[n] = (struct pollfd){.fd = f->cand[i].fd, .events = POLLIN};
            slots[n++] = i;
        }
        uint64_t now = now_ms();
        if (n == 0)
            return false;
        int r = poll(pfds, (nfds_t)n, now >= deadline ? 0 : (int)(deadline - now));
        if (r < 0 && errno != EINTR)
            return false;
        if (r == 0 && now >= deadline)
            return false;
        for (int k = 0; k < n && r > 0; k++) {
            if (!pfds[k].revents)
                continue;
            candidate *c = &f->cand[slots[k]];
            ssize_t got = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
            if (got > 0) {
                c->len += (size_t)got;
            } else if (got == 0 || errno != EINTR) {
                close(c->fd);
                c->fd = -1;
                *ev = (event){.kind = EV_EOF, .slot = slots[k]};
                return true;
            }
        }
    }
}

/* Records ev in the fleet. */
static void apply(fleet *f, const event *ev)
{
    if (ev->kind == EV_READY)
        f->cand[ev->slot].ready = true;
    else if (ev->kind == EV_ELECTED)
        f->cand[ev->slot].elected_ns = ev->ns;
}

/* Takes in the next event; exits the bench when none comes in time. */
static void pump(fleet *f, const char *waiting_for)
{
    event ev;
    if (!next_event(f, &ev, EVENT_WAIT_MS)) {
        fprintf(stderr, "failover: no %s within %d ms; giving up\n", waiting_for, EVENT_WAIT_MS);
        exit(1);
    }
    apply(f, &ev);
}

void fleet_drain(fleet *f)
{
    event ev;
    while (next_event(f, &ev, 0))
        apply(f, &ev);
}

int fleet_wait_elected(fleet *f, uint64_t t0_ns, int not_slot)
{
    for (;;) {
        int best = -1;
        for (int i = 0; i < BENCH_MAX_CANDIDATES; i++)
            if (i != not_slot && f->cand[i].elected_ns > t0_ns &&
                (best < 0 || f->cand[i].elected_ns < f->cand[best].elected_ns))
                best = i;
        if (best >= 0)
            return best;
        pump(f, "election");
    }
}

void fleet_start(fleet *f, int slot)
{
    const candidate_setup *s = f->setup;
    candidate *c = &f->cand[slot];
    snprintf(c->id, sizeof c->id, "c%d.%u", slot, ++f->generation);
    char num[6][16];
    snprintf(num[0], sizeof num[0], "%" PRIu32, s->lease_ms);
    snprintf(num[1], sizeof num[1], "%" PRIu32, s->renew_ms);
    snprintf(num[2], sizeof num[2], "%" PRIu32, s->retry_ms);
    snprintf(num[3], sizeof num[3], "%" PRIu32, s->renew_deadline_ms);
    snprintf(num[4], sizeof num[4], "%" PRIu32, s->command_timeout_ms);
    char *argv[] = {(char *)test_process_self(),
                    "--candidate",
                    (char *)s->url,
                    c->id,
                    (char *)s->key,
                    num[0],
                    num[1],
                    num[2],
                    num[3],
                    num[4],
                    s->original_timing ? "1" : "0",
                    s->debug ? "1" : "0",
                    NULL};
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        perror("failover: pipe2");
        exit(1);
    }
    c->pid = test_process_spawn(argv, fds[1]);
    close(fds[1]);
    c->fd = fds[0];
    c->len = 0;
    c->ready = false;
    c->elected_ns = 0;
    if (c->pid < 0)
        exit(1);
    while (!c->ready) {
        if (c->fd < 0) {
            fprintf(stderr, "failover: candidate %s exited before campaigning\n", c->id);
            exit(1);
        }
        pump(f, "ready candidate");
    }
}

void fleet_kill(fleet *f, int slot)
{
    candidate *c = &f->cand[slot];
    if (c->pid > 0)
        test_process_kill(c->pid);
    c->pid = 0;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->elected_ns = 0;
}

void fleet_stop(fleet *f, int slot)
{
    if (f->cand[slot].pid <= 0)
        return;
    test_process_signal(f->cand[slot].pid, SIGTERM);
    while (f->cand[slot].fd >= 0)
        pump(f, "exit of a stopped candidate");
    fleet_kill(f, slot); /* reaps; SIGKILL only if it hung after closing stdout */
}
