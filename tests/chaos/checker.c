/*
 * checker.c — the rules of checker.h over the logs of a chaos run.
 *
 * Reading is strict: a line the checker does not understand is bad input,
 * never skipped, so that a driver or probe that changed its format cannot
 * make a run pass by saying nothing the checker counts.
 */
#include "checker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_MS 1000000ull

/* ------------------------------------------------------------- reading */

/* A growable array of n items of size sz at *items; false when out of memory. */
static bool grow(void **items, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap)
        return true;
    size_t want = *cap ? 2 * *cap : 64;
    void *p = realloc(*items, want * sz);
    if (!p)
        return false;
    *items = p;
    *cap = want;
    return true;
}

/* Where a reader is, for messages. */
typedef struct source {
    const char *path;
    size_t line;
    char *why;
    size_t why_len;
} source;

__attribute__((format(printf, 2, 3))) static int fail(const source *src, const char *fmt, ...)
{
    int n = snprintf(src->why, src->why_len, "%s:%zu: ", src->path, src->line);
    if (n < 0 || (size_t)n >= src->why_len)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(src->why + n, src->why_len - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Parses a decimal uint64 that is the whole of s. */
static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0')
        return false;
    *out = v;
    return true;
}

/* Splits line at spaces into at most max words; the last word takes the rest
 * of the line (spaces included) when rest is true.  Returns the word count. */
static size_t split(char *line, char **words, size_t max, bool rest)
{
    size_t n = 0;
    char *p = line;
    while (n < max) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        words[n++] = p;
        if (rest && n == max)
            break;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (*p == '\0')
            break;
        *p++ = '\0';
    }
    if (n == max && !rest) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p)
            return max + 1; /* too many words */
    }
    return n;
}

static void note_time(checker_history *h, uint64_t ns)
{
    if (ns < h->start_ns)
        h->start_ns = ns;
    if (ns > h->end_ns)
        h->end_ns = ns;
}

/* The probe file being read: its id, once a line has named it. */
typedef struct probe_file {
    size_t id;
    bool named;
} probe_file;

typedef struct loader {
    checker_history *h;
    size_t faults_cap, events_cap, ids_cap;
    bool has_end;
    uint64_t end_line_ns;
    probe_file probe;
} loader;

/* Reads a file line by line into fn(ld, src, line).  Returns 0 or -1. */
static int read_lines(loader *ld, source *src, int (*fn)(loader *, const source *, char *))
{
    FILE *f = fopen(src->path, "r");
    if (!f) {
        snprintf(src->why, src->why_len, "%s: %s", src->path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        src->line++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (strspn(line, " \t") == (size_t)len)
            continue;
        rc = fn(ld, src, line);
    }
    free(line);
    fclose(f);
    return rc;
}

/* One line of the fault log. */
static int fault_line(loader *ld, const source *src, char *line)
{
    checker_history *h = ld->h;
    char *w[4];
    size_t n = split(line, w, 4, true);
    uint64_t ns;
    if (strcmp(w[0], "end") == 0) {
        if (n != 2 || !parse_u64(w[1], &ns))
            return fail(src, "end line wants <ns>");
        ld->has_end = true;
        ld->end_line_ns = ns;
        note_time(h, ns);
        return 0;
    }
    bool heal = strcmp(w[0], "heal") == 0;
    if (!heal && strcmp(w[0], "fault") != 0)
        return fail(src, "'%s' is not fault, heal or end", w[0]);
    if (n < 3 || !parse_u64(w[1], &ns) || (heal && n != 3))
        return fail(src, heal ? "heal line wants <ns> <type>"
                              : "fault line wants <ns> <type> "
                                "[<detail>]");
    if (strlen(w[2]) >= sizeof h->faults[0].type)
        return fail(src, "fault type '%s' is too long", w[2]);
    if (!grow((void **)&h->faults, &ld->faults_cap, h->n_faults, sizeof *h->faults))
        return fail(src, "out of memory");
    checker_fault *f = &h->faults[h->n_faults++];
    *f = (checker_fault){.kind = heal ? CHECKER_HEAL : CHECKER_FAULT, .ns = ns};
    strcpy(f->type, w[2]);
    if (n == 4)
        snprintf(f->detail, sizeof f->detail, "%s", w[3]);
    note_time(h, ns);
    return 0;
}

/* The index of id among the history's ids, added if new; SIZE_MAX when out
 * of memory. */
static size_t intern_id(loader *ld, const char *id)
{
    checker_history *h = ld->h;
    for (size_t i = 0; i < h->n_ids; i++)
        if (strcmp(h->ids[i], id) == 0)
            return i;
    char *copy = strdup(id);
    if (!copy || !grow((void **)&h->ids, &ld->ids_cap, h->n_ids, sizeof *h->ids)) {
        free(copy);
        return SIZE_MAX;
    }
    h->ids[h->n_ids] = copy;
    return h->n_ids++;
}

/* One line of a probe log. */
static int probe_line(loader *ld, const source *src, char *line)
{
    checker_history *h = ld->h;
    char *w[5];
    bool revoked = strncmp(line, "revoked", 7) == 0;
    size_t n = split(line, w, revoked ? 3 : 4, revoked); /* a reason may hold spaces */
    checker_event ev = {0};
    const char *id = NULL;
    if (strcmp(w[0], "elected") == 0 || strcmp(w[0], "action") == 0) {
        ev.kind = w[0][0] == 'e' ? CHECKER_ELECTED : CHECKER_ACTION;
        if (n != 4 || !parse_u64(w[1], &ev.ns) || !parse_u64(w[2], &ev.epoch))
            return fail(src, "%s line wants <ns> <epoch> <id>", w[0]);
        id = w[3];
    } else if (strcmp(w[0], "revoked") == 0) {
        ev.kind = CHECKER_REVOKED;
        if (n != 3 || !parse_u64(w[1], &ev.ns))
            return fail(src, "revoked line wants <ns> <reason>");
    } else if (strcmp(w[0], "exit") == 0) {
        ev.kind = CHECKER_EXIT;
        if (n != 2 || !parse_u64(w[1], &ev.ns))
            return fail(src, "exit line wants <ns>");
    } else {
        return fail(src, "'%s' is not elected, revoked, action or exit", w[0]);
    }
    if (id) {
        size_t idx = intern_id(ld, id);
        if (idx == SIZE_MAX)
            return fail(src, "out of memory");
        if (ld->probe.named && ld->probe.id != idx)
            return fail(src, "id %s, but this file already holds id %s", id, h->ids[ld->probe.id]);
        ld->probe = (probe_file){.id = idx, .named = true};
    }
    ev.id = ld->probe.id; /* lines before the first id: set by checker_load */
    if (!grow((void **)&h->events, &ld->events_cap, h->n_events, sizeof *h->events))
        return fail(src, "out of memory");
    h->events[h->n_events++] = ev;
    note_time(h, ev.ns);
    return 0;
}

void checker_history_free(checker_history *h)
{
    for (size_t i = 0; i < h->n_ids; i++)
        free(h->ids[i]);
    free(h->ids);
    free(h->faults);
    free(h->events);
    *h = (checker_history){0};
}

/* Sorts the faults by time, keeping file order among equal times (an
 * insertion sort: the driver writes them nearly in order already). */
static void sort_faults(checker_history *h)
{
    for (size_t i = 1; i < h->n_faults; i++) {
        checker_fault f = h->faults[i];
        size_t j = i;
        for (; j > 0 && h->faults[j - 1].ns > f.ns; j--)
            h->faults[j] = h->faults[j - 1];
        h->faults[j] = f;
    }
}

int checker_load(checker_history *h, const char *fault_log, const char *const *probe_logs,
                 size_t n_probe_logs, char *why, size_t why_len)
{
    *h = (checker_history){.start_ns = UINT64_MAX};
    loader ld = {.h = h};
    source src = {.path = fault_log, .why = why, .why_len = why_len};
    if (read_lines(&ld, &src, fault_line) != 0)
        goto bad;
    for (size_t i = 0; i < n_probe_logs; i++) {
        size_t first_event = h->n_events;
        ld.probe = (probe_file){0};
        src = (source){.path = probe_logs[i], .why = why, .why_len = why_len};
        if (read_lines(&ld, &src, probe_line) != 0)
            goto bad;
        /* Lines without an id (revoked, exit) belong to the file's id; a file
         * that never named one has no action either and only its times count. */
        for (size_t j = first_event; j < h->n_events; j++)
            h->events[j].id = ld.probe.id;
    }
    if (h->n_faults + h->n_events == 0 && !ld.has_end) {
        snprintf(why, why_len, "%s and the probe logs hold no line at all", fault_log);
        goto bad;
    }
    if (ld.has_end)
        h->end_ns = ld.end_line_ns > h->end_ns ? ld.end_line_ns : h->end_ns;
    h->n_logs = n_probe_logs;
    sort_faults(h);
    return 0;
bad:
    checker_history_free(h);
    return -1;
}

/* ------------------------------------------------------------ analysis */

uint64_t checker_liveness_bound_ms(const checker_opts *o)
{
    return o->lease_ms + o->retry_ms + 1000 + o->settle_ms;
}

static int by_time(const void *a, const void *b)
{
    const checker_event *x = a, *y = b;
    if (x->ns != y->ns)
        return x->ns < y->ns ? -1 : 1;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return x->epoch < y->epoch ? -1 : x->epoch > y->epoch;
}

static int by_term(const void *a, const void *b)
{
    const checker_event *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    if (x->epoch != y->epoch)
        return x->epoch < y->epoch ? -1 : 1;
    return x->ns < y->ns ? -1 : x->ns > y->ns;
}

static int by_first_action(const void *a, const void *b)
{
    const checker_term *x = a, *y = b;
    if (x->first_ns != y->first_ns)
        return x->first_ns < y->first_ns ? -1 : 1;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return x->epoch < y->epoch ? -1 : x->epoch > y->epoch;
}

/* The index of the last "fault" line at or before ns, or -1. */
static long fault_before(const checker_history *h, uint64_t ns)
{
    long found = -1;
    for (size_t i = 0; i < h->n_faults && h->faults[i].ns <= ns; i++)
        if (h->faults[i].kind == CHECKER_FAULT)
            found = (long)i;
    return found;
}

/* The first index in sorted events (by time) whose time is >= ns. */
static size_t first_at_or_after(const checker_event *ev, size_t n, uint64_t ns)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ev[mid].ns < ns)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool add_violation(checker_result *r, size_t *cap, const checker_violation *v)
{
    if (!grow((void **)&r->violations, cap, r->n_violations, sizeof *r->violations))
        return false;
    r->violations[r->n_violations++] = *v;
    return true;
}

static bool add_tolerated(checker_result *r, size_t *cap, const checker_violation *v)
{
    if (!grow((void **)&r->tolerated, cap, r->n_tolerated, sizeof *r->tolerated))
        return false;
    r->tolerated[r->n_tolerated++] = *v;
    return true;
}

/* True when ns falls between a `clock-step` fault line and the next
 * `clock-step` heal line (or the end of the log, if it was never healed). */
static bool during_clock_step(const checker_history *h, uint64_t ns)
{
    bool open = false;
    for (size_t i = 0; i < h->n_faults && h->faults[i].ns <= ns; i++)
        if (strcmp(h->faults[i].type, "clock-step") == 0)
            open = h->faults[i].kind == CHECKER_FAULT;
    return open;
}

/* Groups the actions (sorted by term) into terms, sorted by first action. */
static checker_term *collect_terms(const checker_event *by_term_order, size_t n, size_t *n_terms)
{
    checker_term *terms = malloc((n ? n : 1) * sizeof *terms);
    if (!terms)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const checker_event *e = &by_term_order[i];
        if (k == 0 || terms[k - 1].id != e->id || terms[k - 1].epoch != e->epoch)
            terms[k++] = (checker_term){.id = e->id, .epoch = e->epoch, .first_ns = e->ns};
        terms[k - 1].last_ns = e->ns;
        terms[k - 1].actions++;
    }
    qsort(terms, k, sizeof *terms, by_first_action);
    *n_terms = k;
    return terms;
}

/*
 * Safety.  With the terms in the order they began, term j interleaves with
 * an earlier term i exactly when j's first action comes no later than i's
 * last (equal stamps of two terms are counted too: their order is unknown).
 * Every such pair is a violation, unless the later term began during a
 * clock step and the overlap is within its bound (then it is tolerated); so
 * is every step to the next term whose epoch does not rise.
 */
static int check_safety(const checker_history *h, const checker_opts *o, const checker_term *terms,
                        size_t n, checker_result *r)
{
    size_t cap = 0, tolerated_cap = 0;
    uint64_t step_bound_ns = o->clock_step_bound_ms * NS_PER_MS;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n && terms[j].first_ns <= terms[i].last_ns; j++) {
            uint64_t until =
                terms[i].last_ns < terms[j].last_ns ? terms[i].last_ns : terms[j].last_ns;
            checker_violation v = {.kind = CHECKER_OVERLAP,
                                   .a = terms[i],
                                   .b = terms[j],
                                   .at_ns = terms[j].first_ns,
                                   .overlap_ns = until - terms[j].first_ns,
                                   .fault = fault_before(h, terms[j].first_ns)};
            bool tolerated = v.overlap_ns <= step_bound_ns && during_clock_step(h, v.at_ns);
            if (!(tolerated ? add_tolerated(r, &tolerated_cap, &v) : add_violation(r, &cap, &v)))
                return -1;
        }
        if (i + 1 < n && terms[i + 1].epoch <= terms[i].epoch) {
            checker_violation v = {.kind = CHECKER_EPOCH_ORDER,
                                   .a = terms[i],
                                   .b = terms[i + 1],
                                   .at_ns = terms[i + 1].first_ns,
                                   .fault = fault_before(h, terms[i + 1].first_ns)};
            if (!add_violation(r, &cap, &v))
                return -1;
        }
    }
    return 0;
}

/*
 * Liveness and time to leader, heal by heal.  leaders: elected and action
 * events by time; actions: action events by time.
 */
static int check_heals(const checker_history *h, const checker_opts *o,
                       const checker_event *leaders, size_t n_leaders, const checker_event *actions,
                       size_t n_actions, checker_result *r)
{
    size_t n = 0;
    for (size_t i = 0; i < h->n_faults; i++)
        n += h->faults[i].kind == CHECKER_HEAL;
    r->heals = calloc(n ? n : 1, sizeof *r->heals);
    if (!r->heals)
        return -1;
    uint64_t bound_ns = checker_liveness_bound_ms(o) * NS_PER_MS;
    for (size_t i = 0; i < h->n_faults; i++) {
        const checker_fault *f = &h->faults[i];
        if (f->kind != CHECKER_HEAL)
            continue;
        checker_heal *heal = &r->heals[r->n_heals++];
        heal->fault = i;
        size_t l = first_at_or_after(leaders, n_leaders, f->ns);
        if (l < n_leaders && leaders[l].ns <= f->ns + bound_ns) {
            heal->liveness = CHECKER_LIVE;
        } else if (h->end_ns < f->ns + bound_ns) {
            heal->liveness = CHECKER_UNJUDGED;
            r->n_unjudged++;
        } else {
            heal->liveness = CHECKER_MISS;
            r->n_misses++;
        }
        size_t a = first_at_or_after(actions, n_actions, f->ns);
        if (a == n_actions)
            continue;
        heal->led = true;
        const checker_event *next = &actions[a], *prev = a > 0 ? &actions[a - 1] : NULL;
        bool continued = prev && prev->id == next->id && prev->epoch == next->epoch &&
                         next->ns - prev->ns <= CHECKER_LAPSE_NS;
        heal->to_leader_ns = continued ? 0 : next->ns - f->ns;
    }
    return 0;
}

int checker_analyze(const checker_history *h, const checker_opts *o, checker_result *r)
{
    *r = (checker_result){0};
    size_t n = h->n_events;
    checker_event *actions = malloc((n ? n : 1) * sizeof *actions);
    checker_event *leaders = malloc((n ? n : 1) * sizeof *leaders);
    checker_term *terms = NULL;
    int rc = -1;
    if (!actions || !leaders)
        goto out;
    size_t n_actions = 0, n_leaders = 0;
    for (size_t i = 0; i < n; i++) {
        const checker_event *e = &h->events[i];
        if (e->kind == CHECKER_ACTION)
            actions[n_actions++] = *e;
        if (e->kind == CHECKER_ACTION || e->kind == CHECKER_ELECTED)
            leaders[n_leaders++] = *e;
    }
    r->n_actions = n_actions;
    qsort(actions, n_actions, sizeof *actions, by_term);
    terms = collect_terms(actions, n_actions, &r->n_terms);
    if (!terms)
        goto out;
    qsort(actions, n_actions, sizeof *actions, by_time);
    qsort(leaders, n_leaders, sizeof *leaders, by_time);
    if (check_safety(h, o, terms, r->n_terms, r) != 0 ||
        check_heals(h, o, leaders, n_leaders, actions, n_actions, r) != 0)
        goto out;
    rc = 0;
out:
    free(actions);
    free(leaders);
    free(terms);
    if (rc != 0)
        checker_result_free(r);
    return rc;
}

int checker_verdict(const checker_result *r)
{
    return r->n_violations == 0 && r->n_misses == 0 ? 0 : 1;
}

void checker_result_free(checker_result *r)
{
    free(r->violations);
    free(r->tolerated);
    free(r->heals);
    *r = (checker_result){0};
}

/* ------------------------------------------------------------ the report */

/* Seconds since the start of the run, for reading. */
static double rel_s(const checker_history *h, uint64_t ns)
{
    return (double)(ns - h->start_ns) / 1e9;
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile p (0 < p <= 100) of n sorted values. */
static uint64_t percentile(const uint64_t *sorted, size_t n, unsigned p)
{
    size_t rank = (n * p + 99) / 100;
    return sorted[rank ? rank - 1 : 0];
}

/* The distinct fault types, in the order first seen (faults and heals). */
static size_t fault_types(const checker_history *h, const char **types, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < h->n_faults; i++) {
        size_t j = 0;
        while (j < n && strcmp(types[j], h->faults[i].type) != 0)
            j++;
        if (j == n && n < max)
            types[n++] = h->faults[i].type;
    }
    return n;
}

static void print_term(const checker_history *h, const checker_term *t, FILE *out)
{
    fprintf(out, "%s epoch %" PRIu64 " (%zu actions, %.3f..%.3f s)", h->ids[t->id], t->epoch,
            t->actions, rel_s(h, t->first_ns), rel_s(h, t->last_ns));
}

/* One violation (or tolerated overlap: what says which) on one line. */
static void print_violation(const checker_history *h, const checker_violation *v, const char *what,
                            FILE *out)
{
    fprintf(out, "  %s at %.3f s: ", what, rel_s(h, v->at_ns));
    print_term(h, &v->b, out);
    if (v->kind == CHECKER_OVERLAP) {
        fprintf(out, " acted while ");
        print_term(h, &v->a, out);
        fprintf(out, " still did, for %.1f ms", ms(v->overlap_ns));
    } else {
        fprintf(out, " followed ");
        print_term(h, &v->a, out);
        fprintf(out, " without a higher epoch");
    }
    if (v->fault >= 0) {
        const checker_fault *f = &h->faults[v->fault];
        fprintf(out, "; last fault before: %s%s%s at %.3f s\n", f->type, f->detail[0] ? " " : "",
                f->detail, rel_s(h, f->ns));
    } else {
        fprintf(out, "; no fault before it\n");
    }
}

/* Time to leader of one fault type's heals: heals, median / p90 / max. */
static void print_type_timing(const checker_history *h, const checker_result *r, const char *type,
                              uint64_t *scratch, FILE *out)
{
    size_t heals = 0, n = 0;
    for (size_t i = 0; i < r->n_heals; i++) {
        if (strcmp(h->faults[r->heals[i].fault].type, type) != 0)
            continue;
        heals++;
        if (r->heals[i].led)
            scratch[n++] = r->heals[i].to_leader_ns;
    }
    if (heals == 0)
        return;
    fprintf(out, "  %-14s %5zu", type, heals);
    if (n == 0) {
        fprintf(out, "   (no leader after any)\n");
        return;
    }
    qsort(scratch, n, sizeof *scratch, cmp_u64);
    fprintf(out, " %9.1f %9.1f %9.1f", ms(percentile(scratch, n, 50)),
            ms(percentile(scratch, n, 90)), ms(scratch[n - 1]));
    if (n < heals)
        fprintf(out, "   (%zu without a leader after)", heals - n);
    fputc('\n', out);
}

void checker_print(const checker_history *h, const checker_opts *o, const checker_result *r,
                   FILE *out)
{
    fprintf(out,
            "chaos_check: %zu probe logs (%zu ids ever led), %zu terms, %zu actions over "
            "%.3f s; lease %" PRIu64 " ms, retry %" PRIu64 " ms, liveness bound %" PRIu64 " ms\n",
            h->n_logs, h->n_ids, r->n_terms, r->n_actions, rel_s(h, h->end_ns), o->lease_ms,
            o->retry_ms, checker_liveness_bound_ms(o));

    const char *types[64];
    size_t n_types = fault_types(h, types, 64);
    size_t n_faults = 0;
    fprintf(out, "faults by type:");
    for (size_t t = 0; t < n_types; t++) {
        size_t count = 0;
        for (size_t i = 0; i < h->n_faults; i++)
            count += h->faults[i].kind == CHECKER_FAULT && strcmp(h->faults[i].type, types[t]) == 0;
        n_faults += count;
        if (count)
            fprintf(out, " %s %zu,", types[t], count);
    }
    fprintf(out, " total %zu\n", n_faults);

    fprintf(out, "violations: %zu\n", r->n_violations);
    for (size_t i = 0; i < r->n_violations; i++)
        print_violation(h, &r->violations[i], "violation", out);
    fprintf(out, "tolerated clock-step overlaps (bound %" PRIu64 " ms): %zu\n",
            o->clock_step_bound_ms, r->n_tolerated);
    for (size_t i = 0; i < r->n_tolerated; i++)
        print_violation(h, &r->tolerated[i], "tolerated", out);

    fprintf(out, "liveness misses: %zu (of %zu heals; %zu not judged: the log ended first)\n",
            r->n_misses, r->n_heals, r->n_unjudged);
    for (size_t i = 0; i < r->n_heals; i++) {
        const checker_heal *heal = &r->heals[i];
        if (heal->liveness != CHECKER_MISS)
            continue;
        const checker_fault *f = &h->faults[heal->fault];
        fprintf(out, "  miss: heal %s at %.3f s, no leader within %" PRIu64 " ms", f->type,
                rel_s(h, f->ns), checker_liveness_bound_ms(o));
        if (heal->led)
            fprintf(out, " (the next after %.1f ms)", ms(heal->to_leader_ns));
        fputc('\n', out);
    }

    uint64_t *scratch = malloc((r->n_heals ? r->n_heals : 1) * sizeof *scratch);
    fprintf(out, "time to leader after heal (ms):\n  %-14s %5s %9s %9s %9s\n", "type", "heals",
            "median", "p90", "max");
    for (size_t t = 0; scratch && t < n_types; t++)
        print_type_timing(h, r, types[t], scratch, out);
    free(scratch);
    fprintf(out, "result: %s\n", checker_verdict(r) == 0 ? "PASS" : "FAIL");
}

int checker_run(const checker_opts *o, const char *fault_log, const char *const *probe_logs,
                size_t n_probe_logs, FILE *out)
{
    checker_history h;
    char why[512];
    if (checker_load(&h, fault_log, probe_logs, n_probe_logs, why, sizeof why) != 0) {
        fprintf(out, "chaos_check: bad input: %s\n", why);
        return 2;
    }
    checker_result r;
    if (checker_analyze(&h, o, &r) != 0) {
        fprintf(out, "chaos_check: out of memory\n");
        checker_history_free(&h);
        return 2;
    }
    checker_print(&h, o, &r, out);
    int verdict = checker_verdict(&r);
    checker_result_free(&r);
    checker_history_free(&h);
    return verdict;
}
