/* Baseline: write argv[1] MiB into a child's stdin with blocking write(2),
 * no event loop. argv[2]: the chunk in KiB (64: into `cat > /dev/null`,
 * as the 64 KiB rows do; 1024: into `dd of=/dev/null bs=1M`); argv[3]:
 * "pipe" (a plain 64 KiB pipe, the default), "pipe256" (grown to 256 KiB
 * with F_SETPIPE_SZ, as lua-exec grows a bulk pipe) or "socket" (a Unix
 * socket pair, as libuv gives children). Prints bytes per second. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    long long mib = argc > 1 ? atoll(argv[1]) : 1024;
    size_t chunk = (argc > 2 ? atol(argv[2]) : 64) * 1024;
    const char *kind = argc > 3 ? argv[3] : "pipe";
    char *cat[] = {"/bin/sh", "-c", "cat > /dev/null", NULL};
    char *dd[] = {"dd", "of=/dev/null", "bs=1M", "status=none", NULL};
    char **args = chunk >= 1048576 ? dd : cat;
    int fds[2];
    if (strcmp(kind, "socket") == 0) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 1;
    } else {
        if (pipe2(fds, O_CLOEXEC) != 0) return 1;
        if (strcmp(kind, "pipe256") == 0) fcntl(fds[1], F_SETPIPE_SZ, 256 * 1024);
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    char *buf = malloc(chunk);
    memset(buf, 'x', chunk);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid;
    if (posix_spawnp(&pid, args[0], &fa, NULL, args, environ) != 0) return 1;
    close(fds[0]);
    long long total = mib * 1024 * 1024, done = 0;
    while (done < total) {
        ssize_t w = write(fds[1], buf + done % chunk, chunk - done % chunk);
        if (w <= 0) return 1;
        done += w;
    }
    close(fds[1]);
    int st;
    waitpid(pid, &st, 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    printf("%f\n", total / s);
    return 0;
}
