/* Baseline: read a child's stdout (`dd if=/dev/zero bs=1M count=argv[1]`)
 * with blocking 64 KiB reads, no event loop. argv[2]: "pipe" (a plain
 * 64 KiB pipe, the default), "pipe256" (grown to 256 KiB with
 * F_SETPIPE_SZ, as lua-exec grows a bulk pipe) or "socket" (a Unix socket
 * pair, as libuv gives children). Prints bytes per second. */
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
    char count[64];
    snprintf(count, sizeof count, "count=%s", argc > 1 ? argv[1] : "1024");
    const char *kind = argc > 2 ? argv[2] : "pipe";
    char *args[] = {"dd", "if=/dev/zero", "bs=1M", count, "status=none", NULL};
    int fds[2];
    if (strcmp(kind, "socket") == 0) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 1;
    } else {
        if (pipe2(fds, O_CLOEXEC) != 0) return 1;
        if (strcmp(kind, "pipe256") == 0) fcntl(fds[0], F_SETPIPE_SZ, 256 * 1024);
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid;
    if (posix_spawnp(&pid, "dd", &fa, NULL, args, environ) != 0) return 1;
    close(fds[1]);
    static char buf[65536];
    long long total = 0;
    ssize_t r;
    while ((r = read(fds[0], buf, sizeof buf)) > 0) total += r;
    int st;
    waitpid(pid, &st, 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    printf("%f\n", total / s);
    return 0;
}
