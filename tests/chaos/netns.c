/* netns.c — the chaos suite's private network (see netns.h). */
#include "netns.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redis_server.h"

#define IP_MAX_MS 10000u

static chaos_net *live; /* removed at exit */

/* Runs `ip` with the NULL-terminated arguments, quietly unless it fails
 * and !quiet.  true when it exited 0. */
static bool ip_run(bool quiet, const char *first, ...)
{
    char *argv[24];
    int n = 0;
    argv[n++] = "ip";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && n < 23; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    pid_t pid = test_process_spawn_stdio(argv, -1, devnull, quiet ? devnull : -1);
    if (devnull >= 0)
        close(devnull);
    int st = 0;
    if (pid < 0 || !test_process_wait(pid, IP_MAX_MS, &st)) {
        if (pid > 0)
            test_process_kill(pid);
        return false;
    }
    bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!ok && !quiet) {
        fprintf(stderr, "chaos_net: ip");
        for (int i = 1; i < n; i++)
            fprintf(stderr, " %s", argv[i]);
        fprintf(stderr, " failed\n");
    }
    return ok;
}

/* Removes the namespaces and bridges that drivers no longer running left
 * behind (their names hold their pids). */
static void sweep_stale(void)
{
    DIR *d = opendir("/run/netns");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            int pid;
            if (sscanf(e->d_name, "lhc%dn", &pid) == 1 && pid > 0 && kill(pid, 0) != 0 &&
                errno == ESRCH)
                ip_run(true, "netns", "del", e->d_name, NULL);
        }
        closedir(d);
    }
    d = opendir("/sys/class/net");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            int pid;
            char tail = 0;
            if (sscanf(e->d_name, "lhc%d%c", &pid, &tail) == 2 && tail == 'b' && pid > 0 &&
                kill(pid, 0) != 0 && errno == ESRCH)
                ip_run(true, "link", "del", e->d_name, NULL);
        }
        closedir(d);
    }
}

/* True when some route of this machine already covers 10.231.<octet>.0/24
 * (another driver's bridge, or a real network). */
static bool subnet_taken(int octet)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd,
             "ip -4 route show to match 10.231.%d.1 | grep -v '^default' | grep -q .", octet);
    char *argv[] = {"sh", "-c", cmd, NULL};
    pid_t pid = test_process_spawn(argv, -1);
    int st = 0;
    if (pid < 0 || !test_process_wait(pid, IP_MAX_MS, &st))
        return true;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void destroy_at_exit(void)
{
    if (live)
        chaos_net_destroy(live);
}

bool chaos_net_create(chaos_net *net, int n)
{
    memset(net, 0, sizeof *net);
    if (n < 1 || n > CHAOS_NET_MAX)
        return false;
    sweep_stale();
    int pid = (int)getpid();
    int octet = -1;
    for (int k = 0; k < 250 && octet < 0; k++) {
        int o = 1 + (pid + k) % 250;
        if (!subnet_taken(o))
            octet = o;
    }
    if (octet < 0) {
        fprintf(stderr, "chaos_net: no free 10.231.x.0/24 subnet\n");
        return false;
    }
    snprintf(net->bridge, sizeof net->bridge, "lhc%db", pid);
    snprintf(net->gateway, sizeof net->gateway, "10.231.%d.1", octet);
    char cidr[32];
    snprintf(cidr, sizeof cidr, "%s/24", net->gateway);
    if (!ip_run(false, "link", "add", net->bridge, "type", "bridge", NULL))
        return false;
    live = net;
    static bool registered;
    if (!registered) {
        atexit(destroy_at_exit);
        registered = true;
    }
    if (!ip_run(false, "addr", "add", cidr, "dev", net->bridge, NULL) ||
        !ip_run(false, "link", "set", net->bridge, "up", NULL))
        goto fail;
    for (int i = 0; i < n; i++) {
        char veth[16], addr[32];
        snprintf(net->ns[i], sizeof net->ns[i], "lhc%dn%d", pid, i);
        snprintf(net->ip[i], sizeof net->ip[i], "10.231.%d.%d", octet, 10 + i);
        snprintf(veth, sizeof veth, "lhc%dv%d", pid, i);
        snprintf(addr, sizeof addr, "%s/24", net->ip[i]);
        net->n = i + 1;
        if (!ip_run(false, "netns", "add", net->ns[i], NULL) ||
            !ip_run(false, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns",
                    net->ns[i], NULL) ||
            !ip_run(false, "link", "set", veth, "master", net->bridge, "up", NULL) ||
            !ip_run(false, "-n", net->ns[i], "addr", "add", addr, "dev", "eth0", NULL) ||
            !ip_run(false, "-n", net->ns[i], "link", "set", "eth0", "up", NULL) ||
            !ip_run(false, "-n", net->ns[i], "link", "set", "lo", "up", NULL))
            goto fail;
    }
    return true;
fail:
    chaos_net_destroy(net);
    return false;
}

bool chaos_net_set_cut(chaos_net *net, int a, int b, bool cut)
{
    if (a == b || a < 0 || b < 0 || a >= net->n || b >= net->n || net->cut[a][b] == cut)
        return true;
    char to_b[24], to_a[24];
    snprintf(to_b, sizeof to_b, "%s/32", net->ip[b]);
    snprintf(to_a, sizeof to_a, "%s/32", net->ip[a]);
    const char *verb = cut ? "add" : "del";
    bool ok = ip_run(false, "-n", net->ns[a], "route", verb, "blackhole", to_b, NULL);
    ok = ip_run(false, "-n", net->ns[b], "route", verb, "blackhole", to_a, NULL) && ok;
    net->cut[a][b] = net->cut[b][a] = cut;
    return ok;
}

void chaos_net_heal_all(chaos_net *net)
{
    for (int a = 0; a < net->n; a++)
        for (int b = a + 1; b < net->n; b++)
            chaos_net_set_cut(net, a, b, false);
}

void chaos_net_destroy(chaos_net *net)
{
    for (int i = 0; i < net->n; i++)
        ip_run(true, "netns", "del", net->ns[i], NULL);
    if (net->bridge[0])
        ip_run(true, "link", "del", net->bridge, NULL);
    net->n = 0;
    net->bridge[0] = '\0';
    if (live == net)
        live = NULL;
}
