/* Baseline: write argv[1] MiB into `cat > /dev/null` through a plain pipe,
 * 64 KiB at a time. Prints bytes per second. */
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    long long mib = argc > 1 ? atoll(argv[1]) : 1024;
    char *args[] = {"/bin/sh", "-c", "cat > /dev/null", NULL};
    int fds[2];
    if (pipe(fds) != 0) return 1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    static char buf[65536];
    memset(buf, 'x', sizeof buf);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid;
    if (posix_spawn(&pid, "/bin/sh", &fa, NULL, args, environ) != 0) return 1;
    close(fds[0]);
    long long total = mib * 1024 * 1024, done = 0;
    while (done < total) {
        ssize_t w = write(fds[1], buf, sizeof buf);
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
