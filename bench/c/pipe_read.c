/* Baseline: read a child's stdout through a plain pipe in 64 KiB reads.
 * argv[1]: bytes (MiB) for dd. Prints bytes per second. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    char count[64];
    snprintf(count, sizeof count, "count=%s", argc > 1 ? argv[1] : "1024");
    char *args[] = {"dd", "if=/dev/zero", "bs=1M", count, "status=none", NULL};
    int fds[2];
    if (pipe(fds) != 0) return 1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
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
