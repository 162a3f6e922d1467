#!/usr/bin/env python3
"""Writes testdata/doctor/<case>: /proc trees in the kernel's real formats
(the same formats as testdata/gen/moscow.py, copied from a 6.x kernel), one
per story that `picket doctor` must name:

- tcp-orphans: sockstat "TCP: inuse 35938 orphan 21564 tw 70529 alloc
  35942 mem 1894", tcp_mem "3093984 4125312 6187968", tcp_max_orphans 65536
  (case 1 of Out of socket memory: tcp-orphans warning, tcp-memory ok);
- tcp-memory: the same host with TCP's pages above tcp_mem[2]
  (case 2: tcp-memory critical);
- numothersock: an OpenVZ container whose numothersock is held at
  its barrier of 400 with failcnt 17, the sockets held by Postfix, Apache,
  MySQL and named (beancounters critical);
- imapd-storm: the mail server moscow with 64 imapd of one user forked by
  inetd, the user near its RLIMIT_NPROC (process-storm warning);
- apache-thrashing/{before,after}: a 2 GiB web server one second apart,
  Apache going from 20 to 60 children of 25 MiB resident each, swap moving
  both ways, PSI memory climbing (memory-thrashing critical);
- healthy: a quiet web server (every check ok, exit 0);
- kernel-said: a gateway whose numbers look fine now, but whose kernel log
  says otherwise within the hour: conntrack "table full, dropping packet"
  (the table has drained: conntrack critical), an OOM kill in a memory
  cgroup of a process with an escape sequence in its name (memory-thrashing
  warning naming it, escaped), a pids-controller refusal (process-storm
  warning) and a SYN flood (kernel-log warning); a record written from
  userspace in the kernel's words, which does not count.

The stories of Out of socket memory and the thrashing web server carry the
kernel's log lines of theirs in dev/kmsg, and the trees /proc/net/netstat
with the counters behind them.

Run it from the repository root; the trees are committed, this documents
them and rewrites them.
"""
import sys

sys.dont_write_bytecode = True  # no __pycache__ in testdata/gen
import proctree
from proctree import BEANCOUNTERS, BOOTLOG, sockstat

BASE = "testdata/doctor"

PASSWD = ("root:x:0:0:root:/root:/bin/bash\n"
          "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
          "named:x:25:25:Named:/var/named:/sbin/nologin\n"
          "mysql:x:27:27:MySQL Server:/var/lib/mysql:/bin/false\n"
          "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
          "postfix:x:89:89::/var/spool/postfix:/usr/sbin/nologin\n"
          "varnish:x:110:110::/var/lib/varnish:/usr/sbin/nologin\n"
          "postgres:x:112:112:PostgreSQL:/var/lib/postgresql:/bin/bash\n"
          "alice:x:1001:1001:Alice:/home/alice:/bin/bash\n"
          "bob:x:1002:1002:Bob:/home/bob:/bin/bash\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")


class Tree(proctree.Tree):
    """A tree of testdata/doctor whose sockets are made as processes need
    them: sockets() appends their lines to the host's tables and returns
    their inodes for the holder's fds; finish() writes the tables."""

    def __init__(self, name, host):
        super().__init__(f"{BASE}/{name}", host, PASSWD)
        self.tcp, self.udp, self.unix, self.netlink = [], [], [], []
        self.next_inode = 10000

    def inode(self):
        self.next_inode += 1
        return self.next_inode

    def sockets(self, unix=0, udp=0, tcp=0, netlink=0, uid=0):
        """Makes sockets in the host's tables; returns their inodes."""
        out = []
        for _ in range(unix):
            i = self.inode()
            self.unix.append(f"0000000000000000: 00000002 00000000 00000000 0001 03 {i:5d}\n")
            out.append(i)
        for _ in range(udp):
            i = self.inode()
            sl = len(self.udp)
            self.udp.append(proctree.udp_line(sl, f"0100007F:{1024 + sl:04X}", i, uid))
            out.append(i)
        for _ in range(tcp):
            i = self.inode()
            sl = len(self.tcp)
            self.tcp.append(proctree.tcp_line(sl, "0A000005:0050", f"0A0000C8:{2048 + sl:04X}", 0x01, i, uid))
            out.append(i)
        for _ in range(netlink):
            i = self.inode()
            self.netlink.append(f"0000000000000000 0   0          00000000 0        0        0     2        0        {i}    \n")
            out.append(i)
        return out

    def memory(self, total_kb, avail_kb, swap_total_kb=0, swap_free_kb=0):
        free = avail_kb // 3
        self.w("proc/meminfo", f"MemTotal:       {total_kb:8d} kB\nMemFree:        {free:8d} kB\nMemAvailable:   {avail_kb:8d} kB\n"
               f"Buffers:           20480 kB\nCached:         {avail_kb // 2:8d} kB\nSwapCached:            0 kB\n"
               f"Active:         {total_kb // 2:8d} kB\nInactive:       {total_kb // 4:8d} kB\n"
               f"SwapTotal:      {swap_total_kb:8d} kB\nSwapFree:       {swap_free_kb:8d} kB\nDirty:               120 kB\n"
               f"CommitLimit:    {total_kb // 2 + swap_total_kb:8d} kB\nCommitted_AS:   {total_kb // 3:8d} kB\n")

    def finish(self):
        self.tables(tcp="".join(self.tcp), udp="".join(self.udp), unix="".join(self.unix), netlink="".join(self.netlink))


def base_procs(t, init="systemd"):
    t.proc(1, 0, init, 0, rss_pages=3000, start=2, fds=t.sockets(unix=4, netlink=2))
    t.proc(2, 0, "kthreadd", 0, start=2, kthread=True)
    t.proc(3, 2, "kworker/0:0", 0, state="I", start=3, kthread=True)
    t.proc(50, 1, "sshd", 0, rss_pages=2000, start=500, fds=t.sockets(tcp=1, unix=1))


def orphans_host(name, host, counts, said, aborts):
    t = Tree(name, host)
    t.kernel(counts)
    # The kernel's line every few tens of seconds (net_ratelimit), the
    # last 284 s before the look; TCPAbortOnMemory counts every reset.
    t.kmsg(BOOTLOG + [(6, (300 + i * 32) * 1000000, said) for i in range(14)])
    t.netstat(TCPAbortOnMemory=aborts, TCPAbortOnTimeout=12)
    t.memory(32871236, 20000000)
    t.vmstat(0, 0, 41234)
    t.psi(memory=(0.0, 0.0))
    base_procs(t)
    t.proc(400, 1, "varnishd", 0, rss_pages=20000, start=800, fds=t.sockets(tcp=1, unix=1))
    t.proc(401, 400, "cache-main", 110, threads=500, rss_pages=2000000, start=900,
           fds=t.sockets(tcp=60, unix=2, uid=110), nofile=131072)
    t.finish()


def beancounters():
    t = Tree("numothersock", "vserver")
    t.kernel(sockstat(412, (12, 0, 4, 12, 3), (40, 2)), tcp_mem="22113\t29486\t44226", max_orphans=4096,
             file_nr="1126\t0\t9312", pid_max=32768, threads_max=15623)
    t.memory(1048576, 412000, 0, 0)
    t.vmstat(0, 0, 1234)
    # No /proc/pressure: OpenVZ's 2.6.32 kernels predate PSI.
    t.w("proc/user_beancounters", BEANCOUNTERS)
    t.proc(1, 0, "init", 0, rss_pages=300, start=2, fds=t.sockets(unix=6))
    t.proc(50, 1, "sshd", 0, rss_pages=800, start=500, fds=t.sockets(tcp=1, unix=1))
    t.proc(302, 1, "master", 0, rss_pages=1200, start=3200, fds=t.sockets(unix=120))
    t.proc(303, 302, "qmgr", 89, rss_pages=900, start=3210, fds=t.sockets(unix=10))
    t.proc(304, 302, "pickup", 89, rss_pages=900, start=3220, fds=t.sockets(unix=4))
    for i in range(10):
        t.proc(310 + i, 302, "smtpd", 89, rss_pages=1100, start=7000 + i, fds=t.sockets(unix=8, tcp=1 if i < 4 else 0, uid=89))
    for i in range(4):
        t.proc(330 + i, 302, "cleanup", 89, rss_pages=1000, start=7100 + i, fds=t.sockets(unix=6))
    t.proc(400, 1, "mysqld", 27, threads=12, rss_pages=30000, start=3000, fds=t.sockets(unix=40, tcp=1, uid=27))
    t.proc(410, 1, "named", 25, threads=4, rss_pages=4000, start=3100, fds=t.sockets(udp=40, netlink=4, uid=25))
    t.proc(500, 1, "apache2", 0, rss_pages=3000, start=3300, fds=t.sockets(tcp=2, unix=1))
    for i in range(12):
        t.proc(501 + i, 500, "apache2", 33, rss_pages=6000, start=8000 + i, fds=t.sockets(unix=6))
    t.finish()


def storm():
    t = Tree("imapd-storm", "moscow")
    t.kernel(sockstat(240, (80, 3, 40, 82, 25), (4, 1)), tcp_mem="46368\t61824\t92736", max_orphans=8192,
             file_nr="3120\t0\t98304", pid_max=32768, threads_max=15623)
    t.memory(2097152, 800000, 1048576, 1000000)
    t.vmstat(120, 300, 9000)
    t.psi(memory=(1.5, 0.2))
    base_procs(t, init="init")
    t.proc(300, 1, "inetd", 0, rss_pages=400, start=600, fds=t.sockets(tcp=2))
    t.proc(310, 1, "ypserv", 0, rss_pages=500, start=700, fds=t.sockets(udp=2))
    for i in range(4):
        t.proc(320 + i, 1, "sendmail", 0, rss_pages=900, start=800 + i, fds=t.sockets(tcp=1))
    # alice's imapd storm: 64 children of inetd, one every 1.5 s from 900 s
    # of uptime (at 1000 s, the newest 37 are less than a minute old);
    # alice's RLIMIT_NPROC is 70.
    for i in range(64):
        t.proc(1000 + i, 300, "imapd", 1001, rss_pages=700, start=90000 + i * 150,
               fds=t.sockets(tcp=1, uid=1001), nproc=70)
    for i in range(3):
        t.proc(1100 + i, 300, "imapd", 1002, rss_pages=650, start=60000 + i, fds=t.sockets(tcp=1, uid=1002), nproc=70)
    t.finish()


def thrashing():
    for phase in ("before", "after"):
        t = Tree(f"apache-thrashing/{phase}", "perian")
        t.kernel(sockstat(300, (150, 12, 80, 152, 90), (2, 1)), tcp_mem="46368\t61824\t92736", max_orphans=8192,
                 file_nr="4100\t0\t200000", pid_max=32768, threads_max=15623)
        if phase == "before":
            t.memory(2097152, 600000, 2097148, 1900000)
            t.vmstat(pswpin=100000, pswpout=200000, pgmajfault=500000, oom_kill=0)
            t.psi(memory=(4.10, 1.20), io=(8.0, 3.0))
            children = 20
        else:
            t.memory(2097152, 30000, 2097148, 230000)
            # One second later: 4200 pages swapped in and 6100 out, 15000
            # major faults.
            t.vmstat(pswpin=104200, pswpout=206100, pgmajfault=515000, oom_kill=0)
            t.psi(memory=(71.32, 48.77), io=(88.0, 61.0))
            children = 60
        log = list(BOOTLOG)
        if phase == "after":
            # Minutes of swapping before the look: mysqld stuck in D, then
            # the OOM killer taking an Apache child.
            log += [
                (3, 700000000, "INFO: task mysqld:400 blocked for more than 122 seconds."),
                (3, 700000010, "      Not tainted 6.1.0-27-amd64 #1 Debian 6.1.115-1"),
                (3, 700000020, "\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message."),
                (4, 940000000, "apache2 invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0"),
                (6, 940000100, "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,"
                               "task_memcg=/system.slice/apache2.service,task=apache2,pid=661,uid=33"),
                (3, 940000200, "Out of memory: Killed process 661 (apache2) total-vm:312400kB, anon-rss:25600kB, file-rss:1200kB, "
                               "shmem-rss:0kB, UID:33 pgtables:220kB oom_score_adj:0"),
            ]
        t.kmsg(log)
        t.netstat()
        base_procs(t)
        t.proc(400, 1, "mysqld", 27, threads=20, rss_pages=30000, start=3000, fds=t.sockets(unix=2, tcp=1, uid=27))
        t.proc(500, 1, "apache2", 0, rss_pages=4000, start=3300, fds=t.sockets(tcp=2))
        for i in range(children):
            t.proc(600 + i, 500, "apache2", 33, rss_pages=6500, start=5000 + i)
        t.finish()


def healthy():
    t = Tree("healthy", "web1")
    t.kernel(sockstat(120, (40, 2, 60, 45, 12), (3, 1)), tcp_mem="191616\t255489\t383232", max_orphans=32768,
             file_nr="2400\t0\t813957", pid_max=4194304, threads_max=63707, conntrack=(1200, 262144))
    t.memory(8147216, 6100000, 2097148, 2097148)
    t.vmstat(0, 0, 5123)
    t.psi(memory=(0.0, 0.0))
    t.kmsg(BOOTLOG)
    t.netstat(TCPAbortOnTimeout=3)
    t.ctstat([{"entries": 1200}, {"entries": 1200}])
    base_procs(t)
    t.proc(60, 1, "rsyslogd", 0, threads=4, rss_pages=1500, start=450, fds=t.sockets(unix=2, udp=1))
    t.proc(61, 1, "cron", 0, rss_pages=700, start=460)
    t.proc(100, 1, "nginx", 0, rss_pages=1500, start=600, fds=t.sockets(tcp=2))
    for i in range(4):
        t.proc(101 + i, 100, "nginx", 33, rss_pages=2500, start=610 + i, fds=t.sockets(tcp=6, unix=1, uid=33))
    t.proc(200, 1, "postgres", 112, rss_pages=9000, start=700, fds=t.sockets(tcp=1, unix=1, udp=1, uid=112))
    for i in range(7):
        t.proc(201 + i, 200, "postgres", 112, rss_pages=4000, start=710 + i, fds=t.sockets(unix=1, uid=112))
    t.finish()


def kernel_said():
    t = Tree("kernel-said", "gw1")
    t.kernel(sockstat(120, (40, 2, 60, 45, 12), (3, 1)), tcp_mem="191616\t255489\t383232", max_orphans=32768,
             file_nr="2400\t0\t813957", pid_max=4194304, threads_max=63707, conntrack=(1200, 262144))
    t.memory(8147216, 6100000, 2097148, 2097148)
    t.vmstat(0, 0, 5123, oom_kill=1)
    t.psi(memory=(0.0, 0.0))
    evil = "\x1b[31mworker"
    t.kmsg(BOOTLOG + [None] + [
        (4, (200 + i * 10) * 1000000, "nf_conntrack: nf_conntrack: table full, dropping packet") for i in range(30)
    ] + [
        (6, 600000000, "TCP: request_sock_TCP: Possible SYN flooding on port 0.0.0.0:443. Sending cookies."),
        (6, 650000000, "cgroup: fork rejected by pids controller in /user.slice/user-1001.slice"),
        (4, 800000000, f"{evil} invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"),
        (6, 800000100, f"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/app,"
                       f"task_memcg=/app/worker,task={evil},pid=1234,uid=1001"),
        (3, 800000200, f"Memory cgroup out of memory: Killed process 1234 ({evil}) total-vm:1048576kB, anon-rss:524288kB, "
                       "file-rss:2048kB, shmem-rss:0kB, UID:1001 pgtables:1100kB oom_score_adj:0"),
        # Written from userspace, in the kernel's words: not counted.
        (3, 900000000, "Out of memory: Killed process 1 (systemd) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, "
                       "UID:0 pgtables:4kB oom_score_adj:0", 1),
    ], first_seq=40)
    t.netstat(TCPAbortOnTimeout=3, ListenOverflows=212, ListenDrops=212, TCPReqQFullDoCookies=5000)
    t.ctstat([{"entries": 1200, "drop": 0x2f1, "early_drop": 0x1a0}, {"entries": 1200, "drop": 0x301, "early_drop": 0x190}])
    base_procs(t)
    t.proc(100, 1, "nginx", 0, rss_pages=1500, start=600, fds=t.sockets(tcp=2))
    for i in range(4):
        t.proc(101 + i, 100, "nginx", 33, rss_pages=2500, start=610 + i, fds=t.sockets(tcp=6, unix=1, uid=33))
    t.finish()


def main():
    orphans_host("tcp-orphans", "varnish1",
            sockstat(14565, (35938, 21564, 70529, 35942, 1894), (11, 3)), "TCP: too many orphaned sockets", 1412)
    orphans_host("tcp-memory", "varnish2",
            sockstat(14565, (35938, 4100, 70529, 35942, 6250000), (11, 3)), "TCP: out of memory -- consider tuning tcp_mem", 380)
    beancounters()
    storm()
    thrashing()
    healthy()
    kernel_said()


if __name__ == "__main__":
    main()
