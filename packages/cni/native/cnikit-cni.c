/*
 * cnikit-cni, native shim: the same program as bin/cnikit-cni (plain JS), in C, because a CNI
 * plugin is a process per call and a Node process costs tens of milliseconds to start. It answers
 * VERSION and the no-command "about" text itself and forwards every other call (the CNI_*
 * environment and stdin) to cnikitd over a unix socket, then prints the daemon's answer and exits
 * with its status. The wire format is described in src/wire.ts:
 *
 *   request:  "CNIKIT/1\0" ("KEY=VALUE\0")* "\0" <stdin>           then shutdown(SHUT_WR)
 *   response: "CNIKIT/1 <status> <stdout bytes> <stderr bytes>\n" <stdout> <stderr>
 *
 * Socket: the network config's top-level "socketPath", else $CNIKITD_SOCKET, else
 * /run/cnikit/cnikitd.sock when it exists, else the one /run/cnikit/<node>/cnikitd.sock (cnikitd's
 * default). Daemon unreachable, or no whole answer within the netconf's "timeoutSeconds" (ADD,
 * DEL, CHECK, GC; default 60) / "statusTimeoutSeconds" (STATUS; default 10): error JSON on stdout
 * naming the socket (and the timeout) with code 11 (50 for STATUS), exit 1. Built by `pnpm build`
 * (scripts/build-shim.mjs) when a C compiler is present.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

static const char *VERSIONS[] = {"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
#define NVERSIONS (sizeof(VERSIONS) / sizeof(VERSIONS[0]))
#define RUN_DIR "/run/cnikit"
#define DEFAULT_SOCKET RUN_DIR "/cnikitd.sock"
#define DEFAULT_TIMEOUT 60.0
#define DEFAULT_STATUS_TIMEOUT 10.0
#define MAX_TIMEOUT 3600.0

struct buf {
    char *data;
    size_t len, cap;
};

static void put(struct buf *b, const void *data, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) {
            fputs("cnikit-cni: out of memory\n", stderr);
            exit(1);
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0;
}

static void puts_buf(struct buf *b, const char *s) { put(b, s, strlen(s)); }

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* JSON string escaping for the error messages we print ourselves. */
static void put_json_string(struct buf *b, const char *s) {
    put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(b, e, 2);
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            puts_buf(b, e);
        } else {
            put(b, s, 1);
        }
    }
    put(b, "\"", 1);
}

/* ---- a tiny JSON scanner: only top-level string members are read ---- */

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* Parses a JSON string at p (which points at '"'); decodes simple escapes into out (if given). */
static const char *scan_string(const char *p, const char *end, struct buf *out) {
    if (p >= end || *p != '"') return NULL;
    p++;
    while (p < end && *p != '"') {
        if (*p == '\\') {
            if (p + 1 >= end) return NULL;
            char c = p[1], d = c;
            if (c == 'n') d = '\n';
            else if (c == 't') d = '\t';
            else if (c == 'r') d = '\r';
            else if (c == 'b') d = '\b';
            else if (c == 'f') d = '\f';
            else if (c == 'u') {
                if (p + 5 >= end) return NULL;
                if (out) put(out, p, 6); /* kept as written: never in a socket path */
                p += 6;
                continue;
            }
            if (out) put(out, &d, 1);
            p += 2;
            continue;
        }
        if (out) put(out, p, 1);
        p++;
    }
    return p < end ? p + 1 : NULL;
}

static const char *skip_value(const char *p, const char *end, int depth) {
    p = skip_ws(p, end);
    if (p >= end || depth > 64) return NULL;
    if (*p == '"') return scan_string(p, end, NULL);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = skip_ws(p + 1, end);
        if (p < end && *p == close) return p + 1;
        for (;;) {
            if (close == '}') {
                p = scan_string(skip_ws(p, end), end, NULL);
                if (!p) return NULL;
                p = skip_ws(p, end);
                if (p >= end || *p != ':') return NULL;
                p++;
            }
            p = skip_value(p, end, depth + 1);
            if (!p) return NULL;
            p = skip_ws(p, end);
            if (p < end && *p == ',') {
                p++;
                continue;
            }
            if (p < end && *p == close) return p + 1;
            return NULL;
        }
    }
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r') p++;
    return p;
}

/* Reads the top-level string members "socketPath" and "cniVersion" (absent = left empty) and the
 * number member named timeout_key into *timeout (left as is when absent or not a valid number). */
static void scan_conf(const char *p, size_t n, struct buf *socket_path, struct buf *version, int *has_version, int *is_object, const char *timeout_key,
                      double *timeout) {
    const char *end = p + n;
    p = skip_ws(p, end);
    if (p >= end || *p != '{') return;
    *is_object = 1;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') return;
    for (;;) {
        struct buf key = {0};
        p = scan_string(skip_ws(p, end), end, &key);
        if (!p) goto out;
        p = skip_ws(p, end);
        if (p >= end || *p != ':') goto out;
        p = skip_ws(p + 1, end);
        struct buf *target = NULL;
        if (key.data && strcmp(key.data, "socketPath") == 0) target = socket_path;
        if (key.data && strcmp(key.data, "cniVersion") == 0) {
            target = version;
            *has_version = 1;
        }
        if (target && p < end && *p == '"') {
            target->len = 0;
            p = scan_string(p, end, target);
        } else if (key.data && strcmp(key.data, timeout_key) == 0 && p < end && (*p == '-' || (*p >= '0' && *p <= '9'))) {
            /* A bad value is the daemon's to report (code 7 naming the key): keep the default here. */
            char num[64];
            const char *q = skip_value(p, end, 1);
            if (q && (size_t)(q - p) < sizeof num) {
                memcpy(num, p, (size_t)(q - p));
                num[q - p] = 0;
                char *stop = NULL;
                double t = strtod(num, &stop);
                if (stop && *stop == 0 && t > 0 && t <= MAX_TIMEOUT) *timeout = t;
            }
            p = q;
        } else {
            p = skip_value(p, end, 1);
        }
        free(key.data);
        key.data = NULL;
        if (!p) return;
        p = skip_ws(p, end);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        return;
    out:
        free(key.data);
        return;
    }
}

static const char *errno_name(int e) {
    switch (e) {
    case ENOENT: return "ENOENT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EACCES: return "EACCES";
    case ENOTSOCK: return "ENOTSOCK";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EPERM: return "EPERM";
    default: return strerror(e);
    }
}

/* The error JSON the shim prints itself. */
static void error_json(struct buf *out, const char *command, const char *version, const char *msg, const char *details) {
    int code = strcmp(command, "STATUS") == 0 ? 50 : 11;
    char num[16];
    snprintf(num, sizeof num, "%d", code);
    puts_buf(out, "{\"cniVersion\":");
    put_json_string(out, version);
    puts_buf(out, ",\"code\":");
    puts_buf(out, num);
    puts_buf(out, ",\"msg\":");
    put_json_string(out, msg);
    puts_buf(out, ",\"details\":");
    put_json_string(out, details);
    puts_buf(out, "}\n");
}

static int fail(const char *command, const char *version, const char *msg, const char *details) {
    struct buf out = {0};
    error_json(&out, command, version, msg, details);
    write_all(1, out.data, out.len);
    return 1;
}

/* The timeout's answer, made before the clock starts: the SIGALRM handler only writes it and exits. */
static struct buf timeout_answer;

static void on_timeout(int sig) {
    (void)sig;
    (void)write_all(1, timeout_answer.data, timeout_answer.len);
    _exit(1);
}

/* /run/cnikit/cnikitd.sock when it exists, else the single /run/cnikit/<node>/cnikitd.sock; with
 * none or several, the first path (the connect error names it). */
static const char *default_socket(struct buf *found) {
    struct stat st;
    if (stat(DEFAULT_SOCKET, &st) == 0) return DEFAULT_SOCKET;
    DIR *d = opendir(RUN_DIR);
    if (!d) return DEFAULT_SOCKET;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        struct buf candidate = {0};
        puts_buf(&candidate, RUN_DIR "/");
        puts_buf(&candidate, e->d_name);
        puts_buf(&candidate, "/cnikitd.sock");
        if (stat(candidate.data, &st) == 0 && S_ISSOCK(st.st_mode)) {
            if (count++ == 0) {
                found->len = 0;
                puts_buf(found, candidate.data);
            }
        }
        free(candidate.data);
    }
    closedir(d);
    return count == 1 ? found->data : DEFAULT_SOCKET;
}

int main(void) {
    const char *command = getenv("CNI_COMMAND");
    if (!command) command = "";
    if (command[0] == 0) {
        struct buf b = {0};
        puts_buf(&b, "cnikit-cni: the cnikit CNI plugin. It forwards each call to the node's cnikitd daemon over a unix socket "
                     "(netconf key socketPath, else $CNIKITD_SOCKET, else /run/cnikit/cnikitd.sock).\n"
                     "CNI protocol versions supported: ");
        for (size_t i = 0; i < NVERSIONS; i++) {
            if (i) puts_buf(&b, ", ");
            puts_buf(&b, VERSIONS[i]);
        }
        puts_buf(&b, "\n");
        write_all(2, b.data, b.len);
        return 0;
    }
    if (strcmp(command, "VERSION") == 0) {
        struct buf b = {0};
        puts_buf(&b, "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[");
        for (size_t i = 0; i < NVERSIONS; i++) {
            if (i) puts_buf(&b, ",");
            put_json_string(&b, VERSIONS[i]);
        }
        puts_buf(&b, "]}\n");
        write_all(1, b.data, b.len);
        return 0;
    }

    struct buf in = {0};
    char stdin_error[256] = "";
    for (;;) {
        char chunk[65536];
        ssize_t r = read(0, chunk, sizeof chunk);
        if (r < 0) {
            if (errno == EINTR) continue;
            snprintf(stdin_error, sizeof stdin_error, "%s, read", errno_name(errno));
            break;
        }
        if (r == 0) break;
        put(&in, chunk, (size_t)r);
    }

    struct buf socket_path = {0}, conf_version = {0}, found = {0};
    int has_version = 0, is_object = 0;
    int is_status = strcmp(command, "STATUS") == 0;
    const char *timeout_key = is_status ? "statusTimeoutSeconds" : "timeoutSeconds";
    double timeout = is_status ? DEFAULT_STATUS_TIMEOUT : DEFAULT_TIMEOUT;
    if (!stdin_error[0] && in.len > 0) scan_conf(in.data, in.len, &socket_path, &conf_version, &has_version, &is_object, timeout_key, &timeout);
    /* The version errors are reported in: the config's when we support it ("" or absent = 0.1.0). */
    const char *version = "1.1.0";
    if (is_object && (!has_version || !conf_version.data || conf_version.data[0] == 0)) version = "0.1.0";
    else if (is_object) {
        for (size_t i = 0; i < NVERSIONS; i++)
            if (strcmp(conf_version.data, VERSIONS[i]) == 0) version = VERSIONS[i];
    }
    const char *path = socket_path.data && socket_path.data[0] ? socket_path.data : getenv("CNIKITD_SOCKET");
    if (!path || !path[0]) path = default_socket(&found);

    struct buf req = {0};
    put(&req, "CNIKIT/1", 9); /* with its NUL */
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "CNI_", 4) == 0) put(&req, *e, strlen(*e) + 1);
    }
    if (stdin_error[0]) {
        puts_buf(&req, "CNIKIT_STDIN_ERROR=");
        put(&req, stdin_error, strlen(stdin_error) + 1);
    }
    put(&req, "", 1);
    if (!stdin_error[0] && in.len > 0) put(&req, in.data, in.len);

    char msg[512];
    char details[512];
    snprintf(msg, sizeof msg, "cnikitd did not answer %s within %g s (socket %s)", command, timeout, path);
    snprintf(details, sizeof details,
             "the daemon accepted the call but is stuck or stopped; set the netconf's %s to wait longer, check cnikitd, then retry", timeout_key);
    error_json(&timeout_answer, command, version, msg, details);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_timeout;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval deadline;
    memset(&deadline, 0, sizeof deadline);
    deadline.it_value.tv_sec = (time_t)timeout;
    deadline.it_value.tv_usec = (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6);
    if (deadline.it_value.tv_sec == 0 && deadline.it_value.tv_usec == 0) deadline.it_value.tv_usec = 1;
    setitimer(ITIMER_REAL, &deadline, NULL);

    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) {
        snprintf(msg, sizeof msg, "cannot reach cnikitd (connect %s: ENAMETOOLONG)", path);
        return fail(command, version, msg, "the socket path is longer than a unix socket path may be");
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int e = errno;
        int down = e == ENOENT || e == ECONNREFUSED || e == ENOTSOCK;
        snprintf(msg, sizeof msg, "%s (connect %s: %s)", down ? "cnikitd is not running" : "cannot reach cnikitd", path, errno_name(e));
        return fail(command, version, msg, "start cnikitd on this node (or fix the socket path: netconf socketPath, $CNIKITD_SOCKET), then retry");
    }
    if (write_all(fd, req.data, req.len) < 0 || shutdown(fd, SHUT_WR) < 0) {
        snprintf(msg, sizeof msg, "cnikitd closed the connection without a complete answer (connect %s)", path);
        return fail(command, version, msg, "the daemon may have stopped or crashed; retry");
    }
    struct buf resp = {0};
    for (;;) {
        char chunk[65536];
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (r == 0) break;
        put(&resp, chunk, (size_t)r);
    }
    close(fd);
    struct itimerval off;
    memset(&off, 0, sizeof off);
    setitimer(ITIMER_REAL, &off, NULL); /* the answer is whole (or the daemon closed): print it, no timeout any more */
    int status = 0;
    size_t out_len = 0, err_len = 0;
    int consumed = 0;
    char *nl = resp.data ? memchr(resp.data, '\n', resp.len) : NULL;
    if (!nl || sscanf(resp.data, "CNIKIT/1 %d %zu %zu%n", &status, &out_len, &err_len, &consumed) != 3 || resp.data + consumed != nl ||
        resp.len != (size_t)(nl - resp.data) + 1 + out_len + err_len) {
        snprintf(msg, sizeof msg, "cnikitd closed the connection without a complete answer (connect %s)", path);
        return fail(command, version, msg, "the daemon may have stopped or crashed; retry");
    }
    if (err_len) write_all(2, nl + 1 + out_len, err_len);
    if (out_len) write_all(1, nl + 1, out_len);
    return status;
}
