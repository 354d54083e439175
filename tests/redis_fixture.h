/* kvtier tests — a private redis-server for one test program.
 *
 * Started on a free loopback port (and a Unix socket) in its own temporary directory,
 * without persistence, and stopped by its PID, never by name. SIGSTOP/SIGCONT make it
 * hang and resume, SIGKILL crashes it, restart brings it back on the same port. */
#ifndef KVTIER_REDIS_FIXTURE_H
#define KVTIER_REDIS_FIXTURE_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

struct rf {
    pid_t pid;
    int port;
    char dir[PATH_MAX];
    char sock[PATH_MAX + 16];
    char password[64]; /* "" = none */
    bool stopped;
};

/* true when redis-server is on PATH (tests exit 77 otherwise). */
bool rf_available(void);
/* Starts a server; `password` may be NULL. 0 on success. */
int rf_start(struct rf *f, const char *password);
/* Kills it (SIGKILL, by PID), reaps it and removes its directory. */
void rf_stop(struct rf *f);
void rf_sigstop(struct rf *f);
void rf_sigcont(struct rf *f);
/* SIGKILL without cleanup: a crash. */
void rf_kill(struct rf *f);
/* Starts it again on the same port (after rf_kill). 0 on success. */
int rf_restart(struct rf *f);
/* redis://[:password@]127.0.0.1:port[/db] into buf. */
const char *rf_url(const struct rf *f, int db, char *buf, size_t cap);
/* A raw hiredis client (authenticated), for checking what is on the server. */
redisContext *rf_client(const struct rf *f);

#endif
