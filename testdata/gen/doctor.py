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
- healthy: a quiet web server (every check ok, exit 0).

Run it from the repository root; the trees are committed, this documents
them and rewrites them.
"""
import os, shutil

BASE = "testdata/doctor"
HOSTNS = 4026531840
BTIME = 1795395064

STATUS = """Name:\t{name}
Umask:\t0022
State:\t{statel}
Tgid:\t{pid}
Ngid:\t0
Pid:\t{pid}
PPid:\t{ppid}
TracerPid:\t0
Uid:\t{uid}\t{uid}\t{uid}\t{uid}
Gid:\t{uid}\t{uid}\t{uid}\t{uid}
FDSize:\t64
Groups:\t 
NStgid:\t{pid}
NSpid:\t{pid}
NSpgid:\t{pid}
NSsid:\t{pid}
Kthread:\t{kthread}
VmPeak:\t    9060 kB
VmSize:\t    9060 kB
VmLck:\t       0 kB
VmPin:\t       0 kB
VmHWM:\t    {rsskb} kB
VmRSS:\t    {rsskb} kB
RssAnon:\t     112 kB
RssFile:\t    1572 kB
RssShmem:\t       0 kB
VmData:\t     360 kB
VmStk:\t     132 kB
VmExe:\t      20 kB
VmLib:\t    1528 kB
VmPTE:\t      44 kB
VmSwap:\t       0 kB
HugetlbPages:\t       0 kB
CoreDumping:\t0
THP_enabled:\t1
untag_mask:\t0xffffffffffffffff
Threads:\t{threads}
SigQ:\t0/96365
SigPnd:\t0000000000000000
ShdPnd:\t0000000000000000
SigBlk:\t0000000000000000
SigIgn:\t0000000000000000
SigCgt:\t0000000000000000
CapInh:\t0000000000000000
CapPrm:\t0000000000000000
CapEff:\t0000000000000000
CapBnd:\t000001ffffffffff
CapAmb:\t0000000000000000
NoNewPrivs:\t0
Seccomp:\t0
Seccomp_filters:\t0
Speculation_Store_Bypass:\tvulnerable
SpeculationIndirectBranch:\talways enabled
Cpus_allowed:\t3
Cpus_allowed_list:\t0-1
Mems_allowed:\t00000000,00000001
Mems_allowed_list:\t0
voluntary_ctxt_switches:\t12
nonvoluntary_ctxt_switches:\t3
"""

LIMITS = """Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max data size             unlimited            unlimited            bytes     
Max stack size            8388608              unlimited            bytes     
Max core file size        0                    unlimited            bytes     
Max resident set          unlimited            unlimited            bytes     
Max processes             {nproc:<20} {nproc:<20} processes 
Max open files            {nofile:<20} {nofileh:<20} files     
Max locked memory         8388608              8388608              bytes     
Max address space         unlimited            unlimited            bytes     
Max file locks            unlimited            unlimited            locks     
Max pending signals       96365                96365                signals   
Max msgqueue size         819200               819200               bytes     
Max nice priority         0                    0                    
Max realtime priority     0                    0                    
Max realtime timeout      unlimited            unlimited            us        
"""

STATES = {"S": "S (sleeping)", "R": "R (running)", "I": "I (idle)", "D": "D (disk sleep)"}

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

TCPHDR = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
UDPHDR = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            \n"
TCP6HDR = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
UNIXHDR = "Num       RefCount Protocol Flags    Type St Inode Path\n"
NLHDR = "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n"
PKTHDR = "sk       RefCnt Type Proto  Iface R Rmem   User   Inode\n"


class Tree:
    def __init__(self, name, host):
        self.root = os.path.join(BASE, name)
        if os.path.exists(self.root):
            shutil.rmtree(self.root)
        self.host = host
        self.tcp, self.udp, self.unix, self.netlink = [], [], [], []
        self.next_inode = 10000
        self.w("etc/passwd", PASSWD)
        self.w("proc/sys/kernel/hostname", host + "\n")
        self.w("proc/stat", "cpu  4445 0 3036 164937 124 0 88 0 0 0\ncpu0 2116 0 1502 82617 18 0 41 0 0 0\n"
               "cpu1 2328 0 1534 82319 105 0 46 0 0 0\nintr 158915 0 0 0\nctxt 301899\nbtime %d\n"
               "processes 4562\nprocs_running 3\nprocs_blocked 0\nsoftirq 82151 0 14755 5 1125 9987 0 26 33135 0 23118\n" % BTIME)
        self.link("proc/self", "1")

    def w(self, path, text):
        full = os.path.join(self.root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)

    def link(self, path, target):
        full = os.path.join(self.root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        os.symlink(target, full)

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
            self.udp.append(f"{sl:5d}: 0100007F:{1024 + sl:04X} 00000000:0000 07 00000000:00000000 00:00000000 00000000 "
                            f"{uid:5d}        0 {i} 2 0000000000000000 0        \n")
            out.append(i)
        for _ in range(tcp):
            i = self.inode()
            sl = len(self.tcp)
            self.tcp.append(f"{sl:4d}: 0A000005:0050 0A0000C8:{2048 + sl:04X} 01 00000000:00000000 00:00000000 00000000 "
                            f"{uid:5d}        0 {i} 1 0000000000000000 100 0 0 10 0\n")
            out.append(i)
        for _ in range(netlink):
            i = self.inode()
            self.netlink.append(f"0000000000000000 0   0          00000000 0        0        0     2        0        {i}    \n")
            out.append(i)
        return out

    def proc(self, pid, ppid, comm, uid, state="S", threads=1, rss_pages=500, start=1000,
             fds=(), kthread=False, nofile=1024, nproc=96365):
        flags = 0x208040 if kthread else 0x400100
        rss = 0 if kthread else rss_pages
        stat = (f"{pid} ({comm}) {state} {ppid} {pid} {pid} 0 -1 {flags} 99 0 1 0 0 0 0 0 20 0 "
                f"{threads} 0 {start} {0 if kthread else 9277440} {rss} 18446744073709551615 "
                + ("0 0 0 0 0 0 0 2147483647 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0" if kthread else
                   "94731493871616 94731493891497 140732958476416 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 "
                   "94731493907504 94731493909120 94731844124672 140732958484990 140732958485010 "
                   "140732958485010 140732958486507 0") + "\n")
        d = f"proc/{pid}"
        self.w(f"{d}/stat", stat)
        self.w(f"{d}/status", STATUS.format(name=comm, statel=STATES[state], pid=pid, ppid=ppid, uid=uid,
                                            kthread=int(kthread), rsskb=rss * 4, threads=threads))
        self.w(f"{d}/comm", comm + "\n")
        self.w(f"{d}/limits", LIMITS.format(nproc=nproc, nofile=nofile, nofileh=max(nofile, 4096)))
        os.makedirs(os.path.join(self.root, d, "fd"), exist_ok=True)
        self.link(f"{d}/ns/net", f"net:[{HOSTNS}]")
        if kthread:
            # Empty fd/ kept in git by a dot-file the collector skips.
            open(os.path.join(self.root, d, "fd", ".keep"), "w").close()
            return
        for i, target in enumerate(["/dev/null", "/dev/null", "/dev/null"] + list(fds)):
            self.link(f"{d}/fd/{i}", target if isinstance(target, str) else f"socket:[{target}]")

    def kernel(self, sockstat, tcp_mem="3093984\t4125312\t6187968", max_orphans=65536, file_nr="14880\t0\t3247617",
               pid_max=4194304, threads_max=256939, conntrack=None):
        self.w("proc/net/sockstat", sockstat)
        self.w("proc/net/sockstat6", "TCP6: inuse 2\nUDP6: inuse 1\nUDPLITE6: inuse 0\nRAW6: inuse 0\nFRAG6: inuse 0 memory 0\n")
        self.w("proc/sys/net/ipv4/tcp_mem", tcp_mem + "\n")
        self.w("proc/sys/net/ipv4/tcp_max_orphans", f"{max_orphans}\n")
        self.w("proc/sys/fs/file-nr", file_nr + "\n")
        self.w("proc/sys/fs/nr_open", "1048576\n")
        self.w("proc/sys/kernel/pid_max", f"{pid_max}\n")
        self.w("proc/sys/kernel/threads-max", f"{threads_max}\n")
        if conntrack:
            self.w("proc/sys/net/netfilter/nf_conntrack_count", f"{conntrack[0]}\n")
            self.w("proc/sys/net/netfilter/nf_conntrack_max", f"{conntrack[1]}\n")

    def memory(self, total_kb, avail_kb, swap_total_kb=0, swap_free_kb=0):
        free = avail_kb // 3
        self.w("proc/meminfo", f"MemTotal:       {total_kb:8d} kB\nMemFree:        {free:8d} kB\nMemAvailable:   {avail_kb:8d} kB\n"
               f"Buffers:           20480 kB\nCached:         {avail_kb // 2:8d} kB\nSwapCached:            0 kB\n"
               f"Active:         {total_kb // 2:8d} kB\nInactive:       {total_kb // 4:8d} kB\n"
               f"SwapTotal:      {swap_total_kb:8d} kB\nSwapFree:       {swap_free_kb:8d} kB\nDirty:               120 kB\n"
               f"CommitLimit:    {total_kb // 2 + swap_total_kb:8d} kB\nCommitted_AS:   {total_kb // 3:8d} kB\n")

    def vmstat(self, pswpin, pswpout, pgmajfault, oom_kill=0):
        self.w("proc/vmstat", f"nr_free_pages 35821\nnr_zone_inactive_anon 12034\npgpgin 7212345\npgpgout 3212345\n"
               f"pswpin {pswpin}\npswpout {pswpout}\npgfault 982734234\npgmajfault {pgmajfault}\npgscan_direct 123456\n"
               f"pgsteal_direct 100234\nallocstall_normal 3412\noom_kill {oom_kill}\n")

    def psi(self, memory=(0.0, 0.0), cpu=(0.5, 0.0), io=(0.2, 0.1)):
        for res, (s10, f10) in {"memory": memory, "cpu": cpu, "io": io}.items():
            self.w(f"proc/pressure/{res}", f"some avg10={s10:.2f} avg60={s10 / 2:.2f} avg300={s10 / 4:.2f} total=912345678\n"
                   f"full avg10={f10:.2f} avg60={f10 / 2:.2f} avg300={f10 / 4:.2f} total=612345678\n")

    def finish(self):
        self.w("proc/net/tcp", TCPHDR + "".join(self.tcp))
        self.w("proc/net/tcp6", TCP6HDR)
        self.w("proc/net/udp", UDPHDR + "".join(self.udp))
        self.w("proc/net/udp6", UDPHDR.replace("local_address", "local_address                        "))
        self.w("proc/net/unix", UNIXHDR + "".join(self.unix))
        self.w("proc/net/netlink", NLHDR + "".join(self.netlink))
        self.w("proc/net/packet", PKTHDR)
        self.w("proc/net/raw", TCPHDR.replace("inode", "inode ref pointer drops"))


def base_procs(t, init="systemd"):
    t.proc(1, 0, init, 0, rss_pages=3000, start=2, fds=t.sockets(unix=4, netlink=2))
    t.proc(2, 0, "kthreadd", 0, start=2, kthread=True)
    t.proc(3, 2, "kworker/0:0", 0, state="I", start=3, kthread=True)
    t.proc(50, 1, "sshd", 0, rss_pages=2000, start=500, fds=t.sockets(tcp=1, unix=1))


def orphans_host(name, host, sockstat):
    t = Tree(name, host)
    t.kernel(sockstat)
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
    t.kernel("sockets: used 412\nTCP: inuse 12 orphan 0 tw 4 alloc 12 mem 3\nUDP: inuse 40 mem 2\nUDPLITE: inuse 0\n"
             "RAW: inuse 0\nFRAG: inuse 0 memory 0\n", tcp_mem="22113\t29486\t44226", max_orphans=4096,
             file_nr="1126\t0\t9312", pid_max=32768, threads_max=15623)
    t.memory(1048576, 412000, 0, 0)
    t.vmstat(0, 0, 1234)
    # No /proc/pressure: OpenVZ's 2.6.32 kernels predate PSI.
    t.w("proc/user_beancounters", """Version: 2.5
       uid  resource                     held              maxheld              barrier                limit              failcnt
      101:  kmemsize                  2854282              3100866             11055923             11377049                    0
            lockedpages                     0                    0                  256                  256                    0
            privvmpages                 70873                76853               262144               292912                    0
            shmpages                      652                  668                21504                21504                    0
            dummy                           0                    0                    0                    0                    0
            numproc                        43                   49                  240                  240                    0
            physpages                   27427                29808                    0  9223372036854775807                    0
            vmguarpages                     0                    0                33792  9223372036854775807                    0
            oomguarpages                27427                29808                26112  9223372036854775807                    0
            numtcpsock                     12                   19                  360                  360                    0
            numflock                        6                    9                  188                  206                    0
            numpty                          1                    1                   16                   16                    0
            numsiginfo                      0                    3                  256                  256                    0
            tcpsndbuf                  107088               151624              1720320              2703360                    0
            tcprcvbuf                  196608               262144              1720320              2703360                    0
            othersockbuf                15616                47104              1126080              2097152                    0
            dgramrcvbuf                     0                 8464               262144               262144                    0
            numothersock                  400                  400                  400                  400                   17
            dcachesize                      0                    0              3409920              3624960                    0
            numfile                      1126                 1307                 9312                 9312                    0
            dummy                           0                    0                    0                    0                    0
            numiptent                      10                   10                  128                  128                    0
""")
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
    t.kernel("sockets: used 240\nTCP: inuse 80 orphan 3 tw 40 alloc 82 mem 25\nUDP: inuse 4 mem 1\nUDPLITE: inuse 0\n"
             "RAW: inuse 0\nFRAG: inuse 0 memory 0\n", tcp_mem="46368\t61824\t92736", max_orphans=8192,
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
        t.kernel("sockets: used 300\nTCP: inuse 150 orphan 12 tw 80 alloc 152 mem 90\nUDP: inuse 2 mem 1\nUDPLITE: inuse 0\n"
                 "RAW: inuse 0\nFRAG: inuse 0 memory 0\n", tcp_mem="46368\t61824\t92736", max_orphans=8192,
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
        base_procs(t)
        t.proc(400, 1, "mysqld", 27, threads=20, rss_pages=30000, start=3000, fds=t.sockets(unix=2, tcp=1, uid=27))
        t.proc(500, 1, "apache2", 0, rss_pages=4000, start=3300, fds=t.sockets(tcp=2))
        for i in range(children):
            t.proc(600 + i, 500, "apache2", 33, rss_pages=6500, start=5000 + i)
        t.finish()


def healthy():
    t = Tree("healthy", "web1")
    t.kernel("sockets: used 120\nTCP: inuse 40 orphan 2 tw 60 alloc 45 mem 12\nUDP: inuse 3 mem 1\nUDPLITE: inuse 0\n"
             "RAW: inuse 0\nFRAG: inuse 0 memory 0\n", tcp_mem="191616\t255489\t383232", max_orphans=32768,
             file_nr="2400\t0\t813957", pid_max=4194304, threads_max=63707, conntrack=(1200, 262144))
    t.memory(8147216, 6100000, 2097148, 2097148)
    t.vmstat(0, 0, 5123)
    t.psi(memory=(0.0, 0.0))
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


def main():
    orphans_host("tcp-orphans", "varnish1",
            "sockets: used 14565\nTCP: inuse 35938 orphan 21564 tw 70529 alloc 35942 mem 1894\n"
            "UDP: inuse 11 mem 3\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n")
    orphans_host("tcp-memory", "varnish2",
            "sockets: used 14565\nTCP: inuse 35938 orphan 4100 tw 70529 alloc 35942 mem 6250000\n"
            "UDP: inuse 11 mem 3\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n")
    beancounters()
    storm()
    thrashing()
    healthy()


main()
