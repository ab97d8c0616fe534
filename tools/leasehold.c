/*
 * leasehold — leader election on a Redis key from the command line.
 *
 *   leasehold run [OPTION]... [--] CMD [ARG]...   CMD runs only while leader
 *   leasehold status [--json]                     who holds the key now
 *   leasehold watch [--json]                      every change of leader
 *   leasehold resign [--token T] [--wait]         ask the leader to step down
 *
 * `leasehold --help` and doc/leasehold.1 document the options and the exit
 * statuses; leasehold_cli.h lists the files the tool is made of.
 */
#include "leasehold_cli.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    cli_options o;
    int rc = cli_parse_options(argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    rc = cli_log_init("leasehold", true, o.log_level, o.log_format, o.key);
    if (rc != 0) {
        fprintf(stderr, "leasehold: cannot start the log writer thread: %s\n", strerror(rc));
        return EXIT_OSERR;
    }
    switch (o.command) {
    case CLI_RUN:
        rc = cli_run(&o);
        break;
    case CLI_STATUS:
        rc = cli_status(&o);
        break;
    case CLI_WATCH:
        rc = cli_watch(&o);
        break;
    case CLI_RESIGN:
        rc = cli_resign(&o);
        break;
    default:
        rc = EXIT_SOFTWARE;
    }
    cli_log_flush();
    return rc;
}
