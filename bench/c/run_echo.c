/* Baseline for the short-command rows: `sh -c 'echo hi'` N times, its
 * output taken whole, the child waited for; prints runs per second.
 *
 *   run_echo popen N   io.popen's system calls: one pipe, posix_spawn of
 *                      sh, blocking reads, waitpid (what glibc's popen +
 *                      fread + pclose do).
 *   run_echo model N   exec.run's system calls, written in C with nothing
 *                      else: stdin from /dev/null, CLOEXEC nonblocking pipes
 *                      for stdout and stderr, posix_spawn with default
 *                      signals, an empty mask and descriptors from 3 closed,
 *                      a pidfd, the three descriptors in an epoll set, both
 *                      outputs read to their end, the child reaped.
 *
 * The ratio model/popen is what lua-exec could reach on this machine with
 * no Lua and no Rust of its own: the floor set by what `run` gives (stderr
 * captured apart, an event loop that serves other processes meanwhile). */
#define _GNU_SOURCE
#include <errno.h>
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

static char *args[] = {"sh", "-c", "echo hi", NULL};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void run_popen(void) {
    FILE *f = popen("echo hi", "r");
    char buf[64];
    size_t n = fread(buf, 1, sizeof buf, f);
    if (pclose(f) != 0 || n != 3) exit(1);
}

static void run_model(int ep) {
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    int out[2], err[2];
    if (null < 0 || pipe2(out, O_CLOEXEC | O_NONBLOCK) || pipe2(err, O_CLOEXEC | O_NONBLOCK)) exit(1);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, null, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    pid_t pid;
    if (posix_spawn(&pid, "/bin/sh", &fa, &at, args, environ) != 0) exit(1);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(null);
    close(out[1]);
    close(err[1]);
    int pidfd = syscall(SYS_pidfd_open, pid, 0);
    int fds[3] = {pidfd, out[0], err[0]};
    for (int i = 0; i < 3; i++) {
        struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.u32 = i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e)) exit(1);
    }
    int open_outputs = 2, exited = 0;
    char buf[65536];
    size_t got = 0;
    for (;;) {
        /* Read what is there (edge-triggered: until EAGAIN or EOF). */
        for (int i = 1; i < 3; i++) {
            while (fds[i] >= 0) {
                ssize_t r = read(fds[i], buf, sizeof buf);
                if (r > 0) { got += r; continue; }
                if (r < 0 && errno == EAGAIN) break;
                close(fds[i]);
                fds[i] = -1;
                open_outputs--;
            }
        }
        if (!open_outputs) {
            siginfo_t si = {0};
            if (waitid(P_PID, pid, &si, WEXITED | WNOHANG) == 0 && si.si_pid == pid) exited = 1;
            if (exited) break;
        }
        struct epoll_event ev[4];
        epoll_wait(ep, ev, 4, -1);
    }
    close(pidfd);
    if (got != 3) exit(1);
}

int main(int argc, char **argv) {
    int model = argc > 1 && strcmp(argv[1], "model") == 0;
    int n = argc > 2 ? atoi(argv[2]) : 1000;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    double a = now();
    for (int i = 0; i < n; i++) {
        if (model) run_model(ep); else run_popen();
    }
    printf("%f\n", n / (now() - a));
    return 0;
}
