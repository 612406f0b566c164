/* Baseline: start argv[1] children of `sleep 1` back to back with
 * posix_spawnp (one stdout pipe each, as a minimal library would give),
 * then wait for all. Prints the wall time in seconds. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 500;
    char *args[] = {"sleep", "1", NULL};
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++) {
        int fds[2];
        if (pipe(fds) != 0) return 1;
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
        pid_t pid;
        if (posix_spawnp(&pid, "sleep", &fa, NULL, args, environ) != 0) return 1;
        posix_spawn_file_actions_destroy(&fa);
        close(fds[1]);
    }
    while (wait(NULL) > 0) {
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%f\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
    return 0;
}
