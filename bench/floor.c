/*
 * The floor of `make bench`: the least a FastCGI responder can do for the hello app, so that
 * fcgi-rs's requests/s and CPU per request have something to be compared with that is not
 * another product. One thread, one epoll set, non-blocking Unix sockets, no library: it
 * accepts, reads records, and answers every request with the same bytes as
 * `fcgi serve --app hello` (`Content-Type: text/plain`, `Hello, world!`) in one write:
 * STDOUT, an empty STDOUT and END_REQUEST. It does not look at the params at all.
 *
 * It is honest about the protocol where it costs: records are framed from their headers
 * (content length and padding), wherever the reads happen to split them, several records or
 * requests may come in one read, and a request is answered once its params and its stdin
 * have both ended (their empty records). A request with FCGI_KEEP_CONN keeps the connection
 * for the next one; any other is answered and the connection closed. A second request on a
 * connection while one is open gets FCGI_CANT_MPX_CONN; FCGI_GET_VALUES gets an empty result;
 * unknown management records get FCGI_UNKNOWN_TYPE; a malformed stream closes the connection.
 *
 *   gcc -O2 -o floor bench/floor.c && ./floor /path/to/floor.sock
 *
 * bench/run.sh compiles it into its temporary directory and starts it like the other targets.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum {
    FCGI_BEGIN_REQUEST = 1,
    FCGI_ABORT_REQUEST = 2,
    FCGI_END_REQUEST = 3,
    FCGI_PARAMS = 4,
    FCGI_STDIN = 5,
    FCGI_STDOUT = 6,
    FCGI_DATA = 8,
    FCGI_GET_VALUES = 9,
    FCGI_GET_VALUES_RESULT = 10,
    FCGI_UNKNOWN_TYPE = 11,
};
#define FCGI_KEEP_CONN 1
#define FCGI_CANT_MPX_CONN 1
#define HEADER_LEN 8
/* What a connection's read buffer starts with: nginx's params for a request fit in it, and it
 * stays below glibc's mmap threshold, so that a connection costs a malloc, not an mmap. It grows
 * to hold a larger record whole: at most a header, 65,535 bytes of content and 255 of padding. */
#define READ_BUF 8192
#define MAX_RECORD (HEADER_LEN + 65535 + 255)
#define MAX_EVENTS 256

/* The answer, request id 1 (patched per request): STDOUT with the CGI response padded to a
 * multiple of 8 as libfcgi does, an empty STDOUT, END_REQUEST (app status 0, complete). */
static unsigned char answer[] = {
    1, FCGI_STDOUT, 0, 1, 0, 41, 7, 0,
    'C', 'o', 'n', 't', 'e', 'n', 't', '-', 'T', 'y', 'p', 'e', ':', ' ',
    't', 'e', 'x', 't', '/', 'p', 'l', 'a', 'i', 'n', '\r', '\n', '\r', '\n',
    'H', 'e', 'l', 'l', 'o', ',', ' ', 'w', 'o', 'r', 'l', 'd', '!',
    0, 0, 0, 0, 0, 0, 0,
    1, FCGI_STDOUT, 0, 1, 0, 0, 0, 0,
    1, FCGI_END_REQUEST, 0, 1, 0, 8, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
};
/* Where the request id sits in `answer`: each of its three headers. */
static const size_t answer_ids[] = {2, 8 + 48 + 2, 8 + 48 + 8 + 2};

/* One connection: what was read and not yet parsed, what is to be written, the request. */
struct conn {
    unsigned char *in;
    size_t in_len, in_cap;
    unsigned char *out;
    size_t out_len, out_cap;
    int request_id; /* 0: no request open */
    int keep_conn, params_done, stdin_done;
    int closing; /* close once `out` is written */
};

static int epfd;
static struct conn **conns; /* by fd */
static size_t conns_cap;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int queue(struct conn *c, const void *bytes, size_t len)
{
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap * 2 : 256;
        while (cap < c->out_len + len)
            cap *= 2;
        unsigned char *out = realloc(c->out, cap);
        if (!out)
            return -1;
        c->out = out;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, bytes, len);
    c->out_len += len;
    return 0;
}

static int queue_record(struct conn *c, int type, int id, const void *content, size_t len)
{
    unsigned char head[HEADER_LEN] = {1, type, id >> 8, id & 0xff, len >> 8, len & 0xff, 0, 0};
    return queue(c, head, HEADER_LEN) || queue(c, content, len);
}

static void close_conn(int fd)
{
    struct conn *c = conns[fd];
    epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    free(c->in);
    free(c->out);
    free(c);
    conns[fd] = NULL;
}

/* Writes what is queued; 0 when all of it went (or would block: then EPOLLOUT is on), -1 on
 * an error. */
static int flush_out(int fd, struct conn *c)
{
    size_t done = 0;
    while (done < c->out_len) {
        ssize_t n = write(fd, c->out + done, c->out_len - done);
        if (n > 0) {
            done += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            return -1;
        }
    }
    memmove(c->out, c->out + done, c->out_len - done);
    c->out_len -= done;
    struct epoll_event ev = {.events = EPOLLIN | (c->out_len ? EPOLLOUT : 0), .data.fd = fd};
    if (c->out_len && epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
        return -1;
    return 0;
}

static int answer_request(struct conn *c)
{
    for (size_t i = 0; i < sizeof answer_ids / sizeof answer_ids[0]; i++) {
        answer[answer_ids[i]] = c->request_id >> 8;
        answer[answer_ids[i] + 1] = c->request_id & 0xff;
    }
    if (queue(c, answer, sizeof answer))
        return -1;
    if (!c->keep_conn)
        c->closing = 1;
    c->request_id = 0;
    return 0;
}

/* One record of `type` for request `id`; -1: the stream is not FastCGI we can go on with. */
static int on_record(struct conn *c, int type, int id, const unsigned char *content, size_t len)
{
    if (id == 0) { /* management records */
        if (type == FCGI_GET_VALUES)
            return queue_record(c, FCGI_GET_VALUES_RESULT, 0, NULL, 0);
        unsigned char body[8] = {type};
        return queue_record(c, FCGI_UNKNOWN_TYPE, 0, body, sizeof body);
    }
    if (type == FCGI_BEGIN_REQUEST) {
        if (len != 8)
            return -1;
        if (c->request_id != 0) {
            unsigned char end[8] = {0, 0, 0, 0, FCGI_CANT_MPX_CONN};
            return queue_record(c, FCGI_END_REQUEST, id, end, sizeof end);
        }
        c->request_id = id;
        c->keep_conn = content[2] & FCGI_KEEP_CONN;
        c->params_done = c->stdin_done = 0;
        return 0;
    }
    if (id != c->request_id)
        return 0; /* a record of a request that is not open: ignored, as the spec says */
    switch (type) {
    case FCGI_PARAMS:
        c->params_done = len == 0;
        break;
    case FCGI_STDIN:
        c->stdin_done = len == 0;
        break;
    case FCGI_DATA:
        break;
    case FCGI_ABORT_REQUEST: {
        unsigned char end[8] = {0};
        c->request_id = 0;
        if (!c->keep_conn)
            c->closing = 1;
        return queue_record(c, FCGI_END_REQUEST, id, end, sizeof end);
    }
    default:
        return -1;
    }
    if (c->params_done && c->stdin_done)
        return answer_request(c);
    return 0;
}

static void on_readable(int fd)
{
    struct conn *c = conns[fd];
    ssize_t n = read(fd, c->in + c->in_len, c->in_cap - c->in_len);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        close_conn(fd);
        return;
    }
    if (n < 0)
        return;
    c->in_len += (size_t)n;

    size_t at = 0;
    while (!c->closing && c->in_len - at >= HEADER_LEN) {
        const unsigned char *h = c->in + at;
        size_t content = (size_t)h[4] << 8 | h[5];
        size_t total = HEADER_LEN + content + h[6];
        if (h[0] != 1) {
            close_conn(fd);
            return;
        }
        if (c->in_len - at < total) {
            /* The rest of this record is still to come: make room for all of it. */
            if (total > c->in_cap) {
                memmove(c->in, c->in + at, c->in_len - at);
                c->in_len -= at;
                at = 0;
                unsigned char *in = realloc(c->in, MAX_RECORD);
                if (!in) {
                    close_conn(fd);
                    return;
                }
                c->in = in;
                c->in_cap = MAX_RECORD;
            }
            break;
        }
        if (on_record(c, h[1], h[2] << 8 | h[3], h + HEADER_LEN, content) < 0) {
            close_conn(fd);
            return;
        }
        at += total;
    }
    memmove(c->in, c->in + at, c->in_len - at);
    c->in_len -= at;

    if (c->out_len && flush_out(fd, c) < 0) {
        close_conn(fd);
        return;
    }
    if (c->closing && c->out_len == 0)
        close_conn(fd);
}

static void on_writable(int fd)
{
    struct conn *c = conns[fd];
    if (flush_out(fd, c) < 0) {
        close_conn(fd);
        return;
    }
    if (c->out_len == 0) {
        if (c->closing) {
            close_conn(fd);
            return;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
    }
}

static void on_acceptable(int listener)
{
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                perror("floor: accept");
            return;
        }
        if ((size_t)fd >= conns_cap) {
            size_t cap = conns_cap * 2;
            while (cap <= (size_t)fd)
                cap *= 2;
            struct conn **grown = realloc(conns, cap * sizeof *conns);
            if (!grown)
                die("floor: realloc");
            memset(grown + conns_cap, 0, (cap - conns_cap) * sizeof *conns);
            conns = grown;
            conns_cap = cap;
        }
        struct conn *c = calloc(1, sizeof *c);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (c) {
            c->in = malloc(READ_BUF);
            c->in_cap = READ_BUF;
        }
        if (!c || !c->in || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            if (c)
                free(c->in);
            free(c);
            close(fd);
            continue;
        }
        conns[fd] = c;
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: floor SOCKET_PATH\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(argv[1]) >= sizeof addr.sun_path) {
        fprintf(stderr, "floor: socket path too long\n");
        return 2;
    }
    strcpy(addr.sun_path, argv[1]);
    unlink(argv[1]);
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(listener, 1024) < 0)
        die("floor: listen");

    conns_cap = 1024;
    conns = calloc(conns_cap, sizeof *conns);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
    if (!conns || epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &ev) < 0)
        die("floor: epoll");

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
        if (n < 0 && errno != EINTR)
            die("floor: epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener)
                on_acceptable(listener);
            else if (conns[fd] && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                on_readable(fd);
            else if (conns[fd] && (events[i].events & EPOLLOUT))
                on_writable(fd);
        }
    }
}
