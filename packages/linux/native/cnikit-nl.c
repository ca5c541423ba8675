/*
 * cnikit-nl: a long-lived rtnetlink helper of @cnikit/linux's renderer. It sets up the container
 * side of new pod veths (lo up, addresses, link up, routes) in any network namespace without a
 * process per pod: the renderer keeps one running and writes requests to its stdin.
 *
 * Request (stdin), one line each:
 *   ns <path>                       enter this network namespace (setns) for the lines below
 *   <line>                          the subset of `ip` syntax podSideLines() writes:
 *                                     link set dev <if> up
 *                                     addr add <cidr> dev <if> [nodad] [noprefixroute]
 *                                     route replace <cidr> [via <gw>] dev <if> [scope link] [src <a>] [metric <n>]
 *   .                               end of the request
 * Answer (stdout), one line per request: `ok`, or `fail <n> <message>` where n is the 1-based
 * line of the request (after `ns`; 0 = the namespace) that failed; lines after it are not run.
 * Messages are iproute2's: the kernel's extended ack ("Error: <msg>.") or "RTNETLINK answers: <errno text>".
 * After each request it returns to its own namespace and closes the socket it opened. Exits on
 * end of input.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_TOKENS 24
#define ERR_LEN 512

static int nl = -1;
static unsigned int seq;

struct request {
  struct nlmsghdr n;
  union {
    struct ifinfomsg link;
    struct ifaddrmsg addr;
    struct rtmsg route;
  } body;
  char attrs[256];
};

static void add_attr(struct nlmsghdr *n, unsigned short type, const void *data, size_t len) {
  struct rtattr *rta = (struct rtattr *)((char *)n + NLMSG_ALIGN(n->nlmsg_len));
  rta->rta_type = type;
  rta->rta_len = RTA_LENGTH(len);
  memcpy(RTA_DATA(rta), data, len);
  n->nlmsg_len = NLMSG_ALIGN(n->nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

static int open_netlink(char *err) {
  int one = 1;
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (nl >= 0) close(nl);
  nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (nl < 0 || bind(nl, (struct sockaddr *)&sa, sizeof sa) < 0) {
    snprintf(err, ERR_LEN, "cannot open a netlink socket: %s", strerror(errno));
    return -1;
  }
  setsockopt(nl, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(nl, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  return 0;
}

/* Sends one request and waits for its ack; on error writes iproute2's message to err. */
static int talk(struct nlmsghdr *n, char *err) {
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  char buf[8192];
  n->nlmsg_seq = ++seq;
  n->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  if (sendto(nl, n, n->nlmsg_len, 0, (struct sockaddr *)&sa, sizeof sa) < 0) {
    snprintf(err, ERR_LEN, "netlink send: %s", strerror(errno));
    return -1;
  }
  for (;;) {
    ssize_t got = recv(nl, buf, sizeof buf, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      snprintf(err, ERR_LEN, "netlink receive: %s", strerror(errno));
      return -1;
    }
    int len = (int)got;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq || h->nlmsg_type != NLMSG_ERROR) continue;
      struct nlmsgerr *e = NLMSG_DATA(h);
      if (e->error == 0) return 0;
      const char *msg = NULL;
      if (h->nlmsg_flags & NLM_F_ACK_TLVS) {
        size_t off = sizeof(*e);
        if (!(h->nlmsg_flags & NLM_F_CAPPED)) off += e->msg.nlmsg_len - sizeof(struct nlmsghdr);
        struct rtattr *a = (struct rtattr *)((char *)e + NLMSG_ALIGN(off));
        int alen = (int)h->nlmsg_len - (int)((char *)a - (char *)h);
        for (; RTA_OK(a, alen); a = RTA_NEXT(a, alen))
          if (a->rta_type == NLMSGERR_ATTR_MSG) msg = RTA_DATA(a);
      }
      if (msg != NULL && *msg != '\0') snprintf(err, ERR_LEN, "Error: %s.", msg);
      else snprintf(err, ERR_LEN, "RTNETLINK answers: %s", strerror(-e->error));
      return -1;
    }
  }
}

struct addr {
  int family;
  int len;
  unsigned char bytes[16];
  int prefix;
};

static int parse_addr(const char *text, struct addr *a, char *err) {
  char copy[64];
  snprintf(copy, sizeof copy, "%s", text);
  char *slash = strchr(copy, '/');
  if (slash) *slash = '\0';
  if (inet_pton(AF_INET, copy, a->bytes) == 1) {
    a->family = AF_INET;
    a->len = 4;
  } else if (inet_pton(AF_INET6, copy, a->bytes) == 1) {
    a->family = AF_INET6;
    a->len = 16;
  } else {
    snprintf(err, ERR_LEN, "Error: any valid prefix is expected rather than \"%s\".", text);
    return -1;
  }
  a->prefix = a->len * 8;
  if (slash) {
    char *end;
    long p = strtol(slash + 1, &end, 10);
    if (*end != '\0' || p < 0 || p > a->len * 8) {
      snprintf(err, ERR_LEN, "Error: any valid prefix is expected rather than \"%s\".", text);
      return -1;
    }
    a->prefix = (int)p;
  }
  return 0;
}

static int ifindex(const char *name, char *err) {
  unsigned int i = if_nametoindex(name);
  if (i == 0) snprintf(err, ERR_LEN, "Cannot find device \"%s\"", name);
  return (int)i;
}

/* iproute2's default address scope: host for loopback addresses, link for IPv6 link-local. */
static unsigned char default_scope(const struct addr *a) {
  if (a->family == AF_INET && a->bytes[0] == 127) return RT_SCOPE_HOST;
  if (a->family == AF_INET6) {
    static const unsigned char loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (memcmp(a->bytes, loopback, 16) == 0) return RT_SCOPE_HOST;
    if (a->bytes[0] == 0xfe && (a->bytes[1] & 0xc0) == 0x80) return RT_SCOPE_LINK;
  }
  return RT_SCOPE_UNIVERSE;
}

static int unsupported(char **t, int n, char *err) {
  char line[256] = "";
  for (int i = 0; i < n; i++) {
    strncat(line, t[i], sizeof line - strlen(line) - 2);
    if (i + 1 < n) strncat(line, " ", sizeof line - strlen(line) - 1);
  }
  snprintf(err, ERR_LEN, "cnikit-nl: unsupported line \"%s\"", line);
  return -1;
}

static int link_up(char **t, int n, char *err) {
  if (n != 5 || strcmp(t[2], "dev") != 0 || strcmp(t[4], "up") != 0) return unsupported(t, n, err);
  struct request r;
  memset(&r, 0, sizeof r);
  r.n.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
  r.n.nlmsg_type = RTM_NEWLINK;
  r.body.link.ifi_family = AF_UNSPEC;
  if ((r.body.link.ifi_index = ifindex(t[3], err)) == 0) return -1;
  r.body.link.ifi_flags = IFF_UP;
  r.body.link.ifi_change = IFF_UP;
  return talk(&r.n, err);
}

static int addr_add(char **t, int n, char *err) {
  if (n < 5 || strcmp(t[3], "dev") != 0) return unsupported(t, n, err);
  struct addr a;
  if (parse_addr(t[2], &a, err) < 0) return -1;
  unsigned int flags = 0;
  for (int i = 5; i < n; i++) {
    if (strcmp(t[i], "nodad") == 0) flags |= IFA_F_NODAD;
    else if (strcmp(t[i], "noprefixroute") == 0) flags |= IFA_F_NOPREFIXROUTE;
    else return unsupported(t, n, err);
  }
  struct request r;
  memset(&r, 0, sizeof r);
  r.n.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
  r.n.nlmsg_type = RTM_NEWADDR;
  r.n.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  r.body.addr.ifa_family = (unsigned char)a.family;
  r.body.addr.ifa_prefixlen = (unsigned char)a.prefix;
  r.body.addr.ifa_flags = (unsigned char)(flags & 0xff);
  r.body.addr.ifa_scope = default_scope(&a);
  if ((r.body.addr.ifa_index = (unsigned int)ifindex(t[4], err)) == 0) return -1;
  add_attr(&r.n, IFA_LOCAL, a.bytes, (size_t)a.len);
  add_attr(&r.n, IFA_ADDRESS, a.bytes, (size_t)a.len);
  if (flags > 0xff) add_attr(&r.n, IFA_FLAGS, &flags, sizeof flags);
  return talk(&r.n, err);
}

static int route_replace(char **t, int n, char *err) {
  if (n < 3) return unsupported(t, n, err);
  struct addr dst, gw, src;
  int have_gw = 0, have_src = 0, oif = 0, scope_link = 0;
  unsigned int metric = 0;
  int have_metric = 0;
  if (parse_addr(t[2], &dst, err) < 0) return -1;
  for (int i = 3; i < n; i++) {
    if (strcmp(t[i], "via") == 0 && i + 1 < n) {
      if (parse_addr(t[++i], &gw, err) < 0) return -1;
      have_gw = 1;
    } else if (strcmp(t[i], "dev") == 0 && i + 1 < n) {
      if ((oif = ifindex(t[++i], err)) == 0) return -1;
    } else if (strcmp(t[i], "scope") == 0 && i + 1 < n && strcmp(t[i + 1], "link") == 0) {
      scope_link = 1;
      i++;
    } else if (strcmp(t[i], "src") == 0 && i + 1 < n) {
      if (parse_addr(t[++i], &src, err) < 0) return -1;
      have_src = 1;
    } else if (strcmp(t[i], "metric") == 0 && i + 1 < n) {
      char *end;
      unsigned long m = strtoul(t[++i], &end, 10);
      if (*end != '\0' || m > 0xffffffffUL) return unsupported(t, n, err);
      metric = (unsigned int)m;
      have_metric = 1;
    } else return unsupported(t, n, err);
  }
  struct request r;
  memset(&r, 0, sizeof r);
  r.n.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
  r.n.nlmsg_type = RTM_NEWROUTE;
  r.n.nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
  r.body.route.rtm_family = (unsigned char)dst.family;
  r.body.route.rtm_dst_len = (unsigned char)dst.prefix;
  r.body.route.rtm_table = RT_TABLE_MAIN;
  r.body.route.rtm_protocol = RTPROT_BOOT;
  r.body.route.rtm_type = RTN_UNICAST;
  /* iproute2: a unicast route without a gateway is scope link unless told otherwise. */
  r.body.route.rtm_scope = (scope_link || !have_gw) ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  add_attr(&r.n, RTA_DST, dst.bytes, (size_t)dst.len);
  if (have_gw) add_attr(&r.n, RTA_GATEWAY, gw.bytes, (size_t)gw.len);
  if (have_src) add_attr(&r.n, RTA_PREFSRC, src.bytes, (size_t)src.len);
  if (oif) {
    unsigned int o = (unsigned int)oif;
    add_attr(&r.n, RTA_OIF, &o, sizeof o);
  }
  if (have_metric) add_attr(&r.n, RTA_PRIORITY, &metric, sizeof metric);
  return talk(&r.n, err);
}

static int run_line(char *line, char *err) {
  char *t[MAX_TOKENS];
  int n = 0;
  for (char *s = strtok(line, " \t"); s != NULL; s = strtok(NULL, " \t")) {
    if (n == MAX_TOKENS) return unsupported(t, n, err);
    t[n++] = s;
  }
  if (n >= 2 && strcmp(t[0], "link") == 0 && strcmp(t[1], "set") == 0) return link_up(t, n, err);
  if (n >= 2 && strcmp(t[0], "addr") == 0 && strcmp(t[1], "add") == 0) return addr_add(t, n, err);
  if (n >= 2 && strcmp(t[0], "route") == 0 && strcmp(t[1], "replace") == 0) return route_replace(t, n, err);
  return unsupported(t, n, err);
}

int main(void) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  char err[ERR_LEN];
  int failed = 0, lineno = 0;
  int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  setvbuf(stdout, NULL, _IOLBF, 0);
  while ((len = getline(&line, &cap, stdin)) >= 0) {
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
    if (strcmp(line, ".") == 0) {
      /* Back home, with no socket left in the pod's namespace: holding either would keep that
         namespace (and the pod's veth pair) alive after the runtime removed it. */
      if (nl >= 0) close(nl);
      nl = -1;
      if (home >= 0 && setns(home, CLONE_NEWNET) < 0 && !failed) {
        printf("fail 0 cannot return to the helper's own network namespace: %s\n", strerror(errno));
        failed = 1;
      }
      if (!failed) printf("ok\n");
      failed = 0;
      lineno = 0;
      fflush(stdout);
      continue;
    }
    if (failed) continue;
    if (strncmp(line, "ns ", 3) == 0) {
      int fd = open(line + 3, O_RDONLY | O_CLOEXEC);
      if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
        printf("fail 0 cannot enter network namespace %s: %s\n", line + 3, strerror(errno));
        failed = 1;
      } else if (open_netlink(err) < 0) {
        printf("fail 0 %s\n", err);
        failed = 1;
      }
      if (fd >= 0) close(fd);
      continue;
    }
    lineno++;
    if (nl < 0) {
      printf("fail %d no network namespace given (ns <path>) before the line\n", lineno);
      failed = 1;
      continue;
    }
    if (run_line(line, err) < 0) {
      printf("fail %d %s\n", lineno, err);
      failed = 1;
    }
  }
  free(line);
  return 0;
}
