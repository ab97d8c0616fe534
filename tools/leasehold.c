/*
 * leasehold — leader election on a Redis key from the command line.
 *
 *   leasehold run [OPTION]... [--] CMD [ARG]...   CMD runs only while leader
 *   leasehold status [--json]                     who holds the key now
 *   leasehold watch [--json]                      every change of leader
 *
 * `leasehold --help` and doc/leasehold.1 document the options and the exit
 * statuses; leasehold_cli.h lists the files the tool is made of.
 */
#include "leasehold_cli.h"

int main(int argc, char **argv)
{
    cli_options o;
    int rc = cli_parse_options(argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    cli_log_init(o.log_level, o.log_format, o.key);
    switch (o.command) {
    case CLI_RUN:
        return cli_run(&o);
    case CLI_STATUS:
        return cli_status(&o);
    case CLI_WATCH:
        return cli_watch(&o);
    }
    return EXIT_SOFTWARE;
}
