/*
 * eat: allocate and touch N MiB of memory, 1 MiB at a time, reporting each step.
 *
 * Used by the VM scenarios (tests/vm) to drive a guest into its cgroup's memory
 * limit: every page is written, so the memory is really charged to the cgroup
 * (malloc alone would only reserve address space). Each step is reported on its
 * own line and flushed at once, so the output shows how far it got before the OOM
 * killer's SIGKILL. Built static (gcc -static -O2) so it runs in any guest.
 *
 * Usage: eat MIB        exit 0 after "eat: done MIB MiB"; 2 on a bad argument;
 *                       3 when malloc itself fails (no OOM kill happened).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB (1024 * 1024)

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: eat MIB\n");
        return 2;
    }
    char *end;
    long n = strtol(argv[1], &end, 10);
    if (*end != '\0' || n < 0 || n > 1 << 20) {
        fprintf(stderr, "eat: bad size '%s'\n", argv[1]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("eat: pid %ld allocating %ld MiB\n", (long)getpid(), n);
    for (long i = 1; i <= n; i++) {
        char *p = malloc(MIB);
        if (p == NULL) {
            printf("eat: malloc failed after %ld MiB\n", i - 1);
            return 3;
        }
        /* Touch every byte (not only one per page): charged, and not a zero page. */
        memset(p, (int)(i & 0xff) | 1, MIB);
        printf("eat: %ld MiB\n", i);
    }
    printf("eat: done %ld MiB\n", n);
    return 0;
}
