/*
 * weave-tap: the sleeve's door into the kernel. Node cannot issue the TUNSETIFF ioctl, so this
 * helper creates (or attaches to) the TAP device <ifname> (IFF_TAP | IFF_NO_PI) in the network
 * namespace it runs in (the caller runs it under `ip netns exec <ns>` when it is not already
 * there), changes nothing else about the device (the caller sets MTU, master and up), and relays
 * Ethernet frames between the device and its standard streams:
 *
 *   stdout: every frame read from the TAP (what the bridge sends out of that port)
 *   stdin:  every frame to write to the TAP (what the bridge receives on that port)
 *
 * each frame as a 2-byte big-endian length followed by the frame. One line
 * "ready <ifname>\n" on stderr says the device exists. It exits 0 when stdin closes (the device,
 * not persistent, goes with it) or stdout is closed; 1 with a line naming /dev/net/tun, the call
 * and the errno when the device cannot be had; 2 on a usage error. Frames the kernel refuses
 * (device down, bad length) are dropped and counted; the count is printed at exit.
 *
 * Usage: weave-tap <ifname>. Built by `pnpm build` (scripts/build-tap.mjs) or by the package's
 * `buildWeaveTap()`; -Wall -Wextra -Werror clean.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define TUN_PATH "/dev/net/tun"
#define MAX_FRAME 65535
/* Frames read from the TAP are gathered into one write to stdout while more are waiting. */
#define OUT_CAP (256 * 1024)
#define IN_CAP (256 * 1024)

static const char *errno_name(int e) {
    switch (e) {
    case ENOENT: return "ENOENT";
    case ENODEV: return "ENODEV";
    case ENXIO: return "ENXIO";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EBUSY: return "EBUSY";
    case EINVAL: return "EINVAL";
    case EIO: return "EIO";
    case EEXIST: return "EEXIST";
    case EMFILE: return "EMFILE";
    default: return "errno";
    }
}

static void die_errno(const char *what, int e) {
    fprintf(stderr, "weave-tap: %s: %s (%d, %s)\n", what, errno_name(e), e, strerror(e));
    exit(1);
}

/* Writes all of p; 0, or -1 with errno set (EPIPE when the reader went away). */
static int write_all(int fd, const unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                struct pollfd pf = {.fd = fd, .events = POLLOUT, .revents = 0};
                (void)poll(&pf, 1, -1);
                continue;
            }
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2 || argv[1][0] == 0 || argv[1][0] == '-') {
        fprintf(stderr, "usage: weave-tap <ifname>: creates or attaches TAP device <ifname> and relays its frames over stdin/stdout (2-byte big-endian length per frame)\n");
        return 2;
    }
    const char *name = argv[1];
    if (strlen(name) >= IFNAMSIZ) {
        fprintf(stderr, "weave-tap: interface name \"%s\" is longer than %d characters\n", name, IFNAMSIZ - 1);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    int tap = open(TUN_PATH, O_RDWR | O_CLOEXEC);
    if (tap < 0) {
        int e = errno;
        char what[128];
        snprintf(what, sizeof what, "open %s (needs the tun module and CAP_NET_ADMIN)", TUN_PATH);
        die_errno(what, e);
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(tap, TUNSETIFF, &ifr) < 0) {
        int e = errno;
        char what[160];
        snprintf(what, sizeof what, "ioctl TUNSETIFF %s on %s (IFF_TAP|IFF_NO_PI; EBUSY: attached elsewhere, EINVAL: a non-TAP device has that name)", name, TUN_PATH);
        die_errno(what, e);
    }
    if (fcntl(tap, F_SETFL, fcntl(tap, F_GETFL) | O_NONBLOCK) < 0) die_errno("fcntl O_NONBLOCK on the TAP", errno);
    fprintf(stderr, "ready %s\n", ifr.ifr_name);
    fflush(stderr);

    static unsigned char out[OUT_CAP];
    static unsigned char in[IN_CAP];
    size_t in_len = 0;
    unsigned long refused = 0, frames_in = 0, frames_out = 0;
    int rc = 0;
    struct pollfd fds[2] = {{.fd = tap, .events = POLLIN, .revents = 0}, {.fd = 0, .events = POLLIN, .revents = 0}};

    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            die_errno("poll", errno);
        }
        if (fds[0].revents & (POLLERR | POLLNVAL)) {
            fprintf(stderr, "weave-tap: the TAP %s reported an error; exiting\n", ifr.ifr_name);
            rc = 1;
            break;
        }
        if (fds[0].revents & POLLIN) {
            /* Gather every waiting frame (up to OUT_CAP) into one write. */
            size_t out_len = 0;
            while (out_len + 2 + MAX_FRAME <= OUT_CAP) {
                ssize_t r = read(tap, out + out_len + 2, MAX_FRAME);
                if (r < 0) {
                    if (errno == EINTR) continue;
                    if (errno == EAGAIN) break;
                    die_errno("read from the TAP", errno);
                }
                if (r == 0) break;
                out[out_len] = (unsigned char)(r >> 8);
                out[out_len + 1] = (unsigned char)(r & 0xff);
                out_len += 2 + (size_t)r;
                frames_out++;
            }
            if (out_len > 0 && write_all(1, out, out_len) < 0) {
                if (errno != EPIPE) die_errno("write to stdout", errno);
                break; /* the relay went away: stop */
            }
        }
        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = read(0, in + in_len, IN_CAP - in_len);
            if (r < 0) {
                if (errno == EINTR || errno == EAGAIN) continue;
                die_errno("read from stdin", errno);
            }
            if (r == 0) break; /* stdin closed: the relay stopped us */
            in_len += (size_t)r;
            size_t off = 0;
            while (in_len - off >= 2) {
                size_t n = ((size_t)in[off] << 8) | in[off + 1];
                if (in_len - off < 2 + n) break;
                if (n > 0) {
                    ssize_t w;
                    do w = write(tap, in + off + 2, n);
                    while (w < 0 && errno == EINTR);
                    if (w < 0) refused++; /* device down, or a frame the kernel does not take */
                    else frames_in++;
                }
                off += 2 + n;
            }
            memmove(in, in + off, in_len - off);
            in_len -= off;
        }
    }
    fprintf(stderr, "weave-tap: %s closed: %lu frame(s) to the relay, %lu to the TAP, %lu refused by the kernel\n", ifr.ifr_name, frames_out, frames_in, refused);
    close(tap);
    return rc;
}
