/* kvtier tests — a private redis-server (see redis_fixture.h). */
#include "redis_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

bool rf_available(void)
{
    return system("command -v redis-server >/dev/null 2>&1") == 0;
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int spawn(struct rf *f)
{
    char port[16], log[PATH_MAX + 16];
    snprintf(port, sizeof port, "%d", f->port);
    snprintf(log, sizeof log, "%s/redis.log", f->dir);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
        }
        const char *argv[32] = {"redis-server", "--port", port, "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", f->dir,
                                "--unixsocket", f->sock, "--unixsocketperm", "700",
                                "--enable-debug-command", "local", "--logfile", log,
                                "--daemonize", "no", "--proto-max-bulk-len", "1gb"};
        int n = 23;
        if (f->password[0]) {
            argv[n++] = "--requirepass";
            argv[n++] = f->password;
        }
        argv[n] = NULL;
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    f->pid = pid;
    f->stopped = false;
    for (int i = 0; i < 500; i++) { /* up to 5 s */
        redisContext *c = rf_client(f);
        if (c) {
            redisReply *r = redisCommand(c, "PING");
            bool ok = r && r->type == REDIS_REPLY_STATUS;
            if (r)
                freeReplyObject(r);
            redisFree(c);
            if (ok)
                return 0;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            f->pid = 0;
            return -1;
        }
        sleep_ms(10);
    }
    return -1;
}

int rf_start(struct rf *f, const char *password)
{
    memset(f, 0, sizeof *f);
    const char *tmp = getenv("KVT_TEST_TMP");
    snprintf(f->dir, sizeof f->dir, "%s/redis.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->sock, sizeof f->sock, "%s/redis.sock", f->dir);
    if (password)
        snprintf(f->password, sizeof f->password, "%s", password);
    for (int attempt = 0; attempt < 5; attempt++) { /* another process may take the port */
        if ((f->port = free_port()) > 0 && spawn(f) == 0)
            return 0;
        rf_kill(f);
    }
    return -1;
}

void rf_kill(struct rf *f)
{
    if (f->pid > 0) {
        kill(f->pid, SIGKILL);
        waitpid(f->pid, NULL, 0);
    }
    f->pid = 0;
    f->stopped = false;
}

int rf_restart(struct rf *f)
{
    rf_kill(f);
    for (int i = 0; i < 100; i++) { /* the port may linger a moment after the kill */
        if (spawn(f) == 0)
            return 0;
        sleep_ms(20);
    }
    return -1;
}

void rf_stop(struct rf *f)
{
    rf_kill(f);
    if (f->dir[0]) {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "redis fixture: cannot remove %s\n", f->dir);
        f->dir[0] = '\0';
    }
}

void rf_sigstop(struct rf *f)
{
    if (f->pid > 0 && kill(f->pid, SIGSTOP) == 0)
        f->stopped = true;
}

void rf_sigcont(struct rf *f)
{
    if (f->pid > 0 && kill(f->pid, SIGCONT) == 0)
        f->stopped = false;
}

const char *rf_url(const struct rf *f, int db, char *buf, size_t cap)
{
    char dbs[16] = "";
    if (db)
        snprintf(dbs, sizeof dbs, "/%d", db);
    if (f->password[0])
        snprintf(buf, cap, "redis://:%s@127.0.0.1:%d%s", f->password, f->port, dbs);
    else
        snprintf(buf, cap, "redis://127.0.0.1:%d%s", f->port, dbs);
    return buf;
}

redisContext *rf_client(const struct rf *f)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", f->port, tv);
    if (!c || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
        if (c)
            redisFree(c);
        return NULL;
    }
    if (f->password[0]) {
        redisReply *r = redisCommand(c, "AUTH %s", f->password);
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}
