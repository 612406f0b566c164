/* Baseline: spawn and wait for /bin/true N times; prints spawns per second.
 *
 *   spawn_loop N        posix_spawn + waitpid, nothing else (no pipes).
 *   spawn_loop N model  what exec() + start() + wait() give a child, in C
 *                       with nothing else: three CLOEXEC pipes for stdin,
 *                       stdout and stderr (the parent's ends nonblocking),
 *                       posix_spawn with default signals, an empty mask and
 *                       descriptors from 3 closed, a pidfd, the pidfd and
 *                       both outputs in an epoll set, a wait in epoll for
 *                       the exit, the child reaped, every end closed.
 *
 * model/bare is the floor the standard streams and an exit that does not
 * block an event loop set on this machine, before any Lua or Rust. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int spawn_model(char **args, int ep) {
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) return -1;
    fcntl(in[1], F_SETFL, O_WRONLY | O_NONBLOCK);
    fcntl(out[0], F_SETFL, O_RDONLY | O_NONBLOCK);
    fcntl(err[0], F_SETFL, O_RDONLY | O_NONBLOCK);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    pid_t pid;
    int rc = posix_spawn(&pid, args[0], &fa, &at, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    if (rc) return -1;
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET};
    ev.data.fd = pidfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, pidfd, &ev);
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    ev.data.fd = out[0];
    epoll_ctl(ep, EPOLL_CTL_ADD, out[0], &ev);
    ev.data.fd = err[0];
    epoll_ctl(ep, EPOLL_CTL_ADD, err[0], &ev);
    for (;;) {
        siginfo_t si;
        si.si_pid = 0;
        if (waitid(P_PID, pid, &si, WEXITED | WNOHANG) == 0 && si.si_pid == pid) break;
        struct epoll_event got[4];
        epoll_wait(ep, got, 4, -1);
    }
    close(pidfd);
    close(in[1]);
    close(out[0]);
    close(err[0]);
    return 0;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    int model = argc > 2 && strcmp(argv[2], "model") == 0;
    char *args[] = {"/bin/true", NULL};
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++) {
        if (model) {
            if (spawn_model(args, ep) != 0) return 1;
            continue;
        }
        pid_t pid;
        if (posix_spawn(&pid, "/bin/true", NULL, NULL, args, environ) != 0) return 1;
        int st;
        waitpid(pid, &st, 0);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    printf("%f\n", n / s);
    return 0;
}
