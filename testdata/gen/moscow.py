#!/usr/bin/env python3
"""Writes testdata/fixtures/moscow: a /proc tree in the kernel's real formats
(copied from a 6.x kernel) carrying the numbers of docs/stories.md:

- the imapd storm: imapd processes per user on the mail server moscow;
- Out of socket memory: sockstat "TCP: inuse 35938 orphan 21564 tw 70529 alloc 35942 mem 1894",
  tcp_mem "3093984 4125312 6187968", tcp_max_orphans 65536;
- the frozen V-Server: an OpenVZ user_beancounters with numothersock at its barrier of
  400 and a failcnt of 17;
- the kernel's log (dev/kmsg) of those hours: "TCP: too many orphaned
  sockets" fourteen times, the last 8 minutes before the fixture's 03:00;
  two OOM kills (vmstat's oom_kill 2), an old one of mysqld and one of an
  imapd 20 minutes ago; a record written from userspace; and the counters
  behind them in /proc/net/netstat and /proc/net/stat/nf_conntrack.

Sockets are attributed through fd symlinks "socket:[INODE]" and the
/proc/net tables; pid 500 lives in another network namespace with its own
tables, pid 600 holds a socket in no table, pids 400/401 have hostile names.
Run it from the repository root; the tree is committed, this documents it.
"""
import sys

sys.dont_write_bytecode = True  # no __pycache__ in testdata/gen
from proctree import BEANCOUNTERS, BOOTLOG, TCPHDR, UNIXHDR, Tree, sockstat, tcp_line, udp_line


def oom(t, pid, comm, uid, cgroup):
    """The OOM killer's three lines of a host-wide kill at t µs."""
    return [
        (4, t, f"{comm} invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0"),
        (6, t + 100, f"oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,"
                     f"task_memcg={cgroup},task={comm},pid={pid},uid={uid}"),
        (3, t + 200, f"Out of memory: Killed process {pid} ({comm}) total-vm:2097152kB, anon-rss:1048576kB, file-rss:2048kB, "
                     f"shmem-rss:0kB, UID:{uid} pgtables:2100kB oom_score_adj:0"),
    ]


def unix_line(inode, path="", typ=1, st=1):
    return f"0000000000000000: 00000002 00000000 00010000 {typ:04X} {st:02X} {inode:5d} {path}".rstrip() + "\n"


def main():
    # uid 1003 (the leaky process) has no passwd line: shown as a number.
    t = Tree("testdata/fixtures/moscow", "moscow",
             "root:x:0:0:root:/root:/bin/bash\n"
             "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
             "mysql:x:27:27:MySQL Server:/var/lib/mysql:/bin/false\n"
             "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
             "postfix:x:89:89::/var/spool/postfix:/usr/sbin/nologin\n"
             "named:x:25:25:Named:/var/named:/sbin/nologin\n"
             "alice:x:1001:1001:Alice:/home/alice:/bin/bash\n"
             "bob:x:1002:1002:Bob:/home/bob:/bin/bash\n")
    t.kernel(sockstat(14565, (35938, 21564, 70529, 35942, 1894), (11, 3)), pid_max=32768, conntrack=(1200, 262144))
    t.w("proc/meminfo", "MemTotal:        4028504 kB\nMemFree:          143284 kB\nMemAvailable:     512340 kB\n"
        "Buffers:           20480 kB\nCached:           402112 kB\nSwapCached:        81920 kB\nActive:          2981234 kB\n"
        "Inactive:         612345 kB\nSwapTotal:       2097148 kB\nSwapFree:         262144 kB\nDirty:               120 kB\n"
        "CommitLimit:     4111400 kB\nCommitted_AS:    6123456 kB\n")
    t.vmstat(1523400, 2234500, 412345, oom_kill=2)
    t.psi(memory=(42.17, 31.05), cpu=(12.50, 0.00), io=(55.02, 40.12))
    t.w("proc/user_beancounters", BEANCOUNTERS)
    t.netstat(TCPAbortOnMemory=1412, TCPAbortOnTimeout=37)
    t.ctstat([{"entries": 1200, "early_drop": 4}, {"entries": 1200}])
    # Booted at 00:51:04; the fixture's look is at 03:00:00 (7736 s).
    t.kmsg(BOOTLOG + oom(1800000000, 290, "mysqld", 27, "/system.slice/mysql.service")
           + oom(6536000000, 1999, "imapd", 1001, "/user.slice/user-1001.slice")
           + [(6, (6996 + i * 20) * 1000000, "TCP: too many orphaned sockets") for i in range(14)]
           + [(5, 7300000000, "logger: picket was here", 1)])

    # Processes.
    t.proc(1, 0, "systemd", 0, rss_pages=3000, start=2, fds=["/proc/1/mountinfo"])
    t.proc(2, 0, "kthreadd", 0, start=2, kthread=True)
    for i in range(6):
        t.proc(100 + i, 302, "imapd", 1001, start=5000 + i, rss_pages=700)
    for i in range(3):
        t.proc(110 + i, 302, "imapd", 1002, start=6000 + i, rss_pages=650)
    t.proc(300, 1, "mysqld", 27, threads=28, rss_pages=90000, start=3000,
           fds=[2101, 2102, 2103, 3001, 3002, "/var/lib/mysql/ibdata1"], nofile=1024)
    t.proc(301, 1, "named", 25, threads=4, rss_pages=4000, start=3100, fds=[4001, 4002, 5001])
    t.proc(302, 1, "master", 0, rss_pages=1200, start=3200, fds=[2001, 2201])
    t.proc(303, 302, "smtpd", 89, rss_pages=1100, start=7000, fds=[2001, 3003])
    t.proc(400, 1, "$(touch /tmp/x)", 1001, rss_pages=100, start=8000)
    t.proc(401, 1, "\x1b[31mred\x1b[0m", 1001, rss_pages=100, start=8001)
    t.proc(500, 1, "nginx", 33, rss_pages=2000, start=9000, fds=[6001, 6002], netns=4026532999)
    t.proc(600, 1, "leaky", 1003, rss_pages=300, start=9500, fds=[7001, 4002], nofile=8)

    t.tables(
        tcp=tcp_line(0, "00000000:0CEA", "00000000:0000", 0x0A, 3001, 27)
        + tcp_line(1, "0100007F:0CEA", "0100007F:D2F0", 0x01, 3002, 27)
        + tcp_line(2, "0A000005:0019", "0A0000C8:E3A1", 0x01, 3003, 89)
        + tcp_line(3, "0A000005:0050", "0A0000C9:C350", 0x06, 0)
        + tcp_line(4, "0A000005:0050", "0A0000CA:C351", 0x04, 0),
        tcp6="   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3004 1 0000000000000000 100 0 0 10 0\n",
        udp=udp_line(0, "00000000:0035", 4001, 25) + udp_line(1, "0100007F:0035", 4002, 25),
        udp6="  100: 00000000000000000000000000000000:0222 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4003 2 0000000000000000 0\n",
        unix=unix_line(2001, "private/smtpd") + unix_line(2101, "/var/run/mysqld/mysqld.sock", st=1)
        + unix_line(2102, st=3) + unix_line(2103, st=3) + unix_line(2201, "@/org/kernel/udev", typ=2),
        netlink="0000000000000000 0   301        00000000 0        0        0     2        0        5001    \n"
        + "0000000000000000 0   0          00000000 0        0        0     2        0        5002    \n")
    # pid 500's own network namespace (a container): its tables.
    t.w("proc/500/net/tcp", TCPHDR + tcp_line(0, "00000000:0050", "00000000:0000", 0x0A, 6001, 33))
    t.w("proc/500/net/unix", UNIXHDR + unix_line(6002, "/run/nginx.sock"))


if __name__ == "__main__":
    main()
