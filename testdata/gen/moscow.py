#!/usr/bin/env python3
"""Writes testdata/fixtures/moscow: a /proc tree in the kernel's real formats
(copied from a 6.x kernel) carrying the numbers of docs/stories.md:

- the imapd storm: imapd processes per user on the mail server moscow;
- Out of socket memory: sockstat "TCP: inuse 35938 orphan 21564 tw 70529 alloc 35942 mem 1894",
  tcp_mem "3093984 4125312 6187968", tcp_max_orphans 65536;
- the frozen V-Server: an OpenVZ user_beancounters with numothersock at its barrier of
  400 and a failcnt of 17.

Sockets are attributed through fd symlinks "socket:[INODE]" and the
/proc/net tables; pid 500 lives in another network namespace with its own
tables, pid 600 holds a socket in no table, pids 400/401 have hostile names.
Run it from the repository root; the tree is committed, this documents it.
"""
import os, shutil

ROOT = "testdata/fixtures/moscow"
P = os.path.join(ROOT, "proc")
HOSTNS = 4026531840

def w(path, text, mode="w"):
    full = os.path.join(ROOT, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, mode) as f:
        f.write(text)

def link(path, target):
    full = os.path.join(ROOT, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    os.symlink(target, full)

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

def proc(pid, ppid, comm, uid, state="S", threads=1, rss_pages=500, start=1000,
         fds=(), kthread=False, netns=HOSTNS, nofile=1024, nproc=96365):
    flags = 0x208040 if kthread else 0x400100
    rss = 0 if kthread else rss_pages
    stat = (f"{pid} ({comm}) {state} {ppid} {pid} {pid} 0 -1 {flags} 99 0 1 0 0 0 0 0 20 0 "
            f"{threads} 0 {start} {0 if kthread else 9277440} {rss} 18446744073709551615 "
            + ("0 0 0 0 0 0 0 2147483647 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0" if kthread else
               "94731493871616 94731493891497 140732958476416 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 "
               "94731493907504 94731493909120 94731844124672 140732958484990 140732958485010 "
               "140732958485010 140732958486507 0") + "\n")
    d = f"proc/{pid}"
    w(f"{d}/stat", stat, "wb" if isinstance(stat, bytes) else "w")
    w(f"{d}/status", STATUS.format(name=comm.replace("\n", "\\n"), statel=STATES[state], pid=pid, ppid=ppid,
                                   uid=uid, kthread=int(kthread), rsskb=rss * 4, threads=threads))
    w(f"{d}/comm", comm + "\n")
    w(f"{d}/limits", LIMITS.format(nproc=nproc, nofile=nofile, nofileh=max(nofile, 4096)))
    os.makedirs(os.path.join(ROOT, d, "fd"), exist_ok=True)
    link(f"{d}/ns/net", f"net:[{netns}]")
    if kthread:
        # A kernel thread's fd/ is empty; git keeps no empty directory, so
        # a dot-file holds it (the collector skips names starting with '.').
        open(os.path.join(ROOT, d, "fd", ".keep"), "w").close()
        return
    for i, target in enumerate(["/dev/null", "/dev/null", "/dev/null"] + list(fds)):
        link(f"{d}/fd/{i}", target if isinstance(target, str) else f"socket:[{target}]")

def tcp_line(sl, local, rem, st, inode, uid=0):
    return (f"{sl:4d}: {local} {rem} {st:02X} 00000000:00000000 00:00000000 00000000 "
            f"{uid:5d}        0 {inode} 1 0000000000000000 100 0 0 10 0\n")

TCPHDR = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
UDPHDR = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            \n"
TCP6HDR = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
UNIXHDR = "Num       RefCount Protocol Flags    Type St Inode Path\n"
NLHDR = "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n"
PKTHDR = "sk       RefCnt Type Proto  Iface R Rmem   User   Inode\n"

def udp_line(sl, local, inode, uid=0):
    return (f"{sl:5d}: {local} 00000000:0000 07 00000000:00000000 00:00000000 00000000 "
            f"{uid:5d}        0 {inode} 2 0000000000000000 0        \n")

def unix_line(inode, path="", typ=1, st=1):
    return f"0000000000000000: 00000002 00000000 00010000 {typ:04X} {st:02X} {inode:5d} {path}".rstrip() + "\n"

def main():
    if os.path.exists(ROOT):
        shutil.rmtree(ROOT)
    w("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"
      "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
      "mysql:x:27:27:MySQL Server:/var/lib/mysql:/bin/false\n"
      "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
      "postfix:x:89:89::/var/spool/postfix:/usr/sbin/nologin\n"
      "named:x:25:25:Named:/var/named:/sbin/nologin\n"
      "alice:x:1001:1001:Alice:/home/alice:/bin/bash\n"
      "bob:x:1002:1002:Bob:/home/bob:/bin/bash\n")
    # uid 1003 (the leaky process) has no passwd line: shown as a number.
    w("proc/sys/kernel/hostname", "moscow\n")
    w("proc/stat", "cpu  4445 0 3036 164937 124 0 88 0 0 0\ncpu0 2116 0 1502 82617 18 0 41 0 0 0\n"
      "cpu1 2328 0 1534 82319 105 0 46 0 0 0\nintr 158915 0 0 0\nctxt 301899\nbtime 1795395064\n"
      "processes 4562\nprocs_running 3\nprocs_blocked 0\nsoftirq 82151 0 14755 5 1125 9987 0 26 33135 0 23118\n")
    w("proc/net/sockstat", "sockets: used 14565\nTCP: inuse 35938 orphan 21564 tw 70529 alloc 35942 mem 1894\n"
      "UDP: inuse 11 mem 3\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n")
    w("proc/net/sockstat6", "TCP6: inuse 2\nUDP6: inuse 1\nUDPLITE6: inuse 0\nRAW6: inuse 0\nFRAG6: inuse 0 memory 0\n")
    w("proc/sys/net/ipv4/tcp_mem", "3093984\t4125312\t6187968\n")
    w("proc/sys/net/ipv4/tcp_max_orphans", "65536\n")
    w("proc/sys/fs/file-nr", "14880\t0\t3247617\n")
    w("proc/sys/fs/nr_open", "1048576\n")
    w("proc/sys/kernel/pid_max", "32768\n")
    w("proc/sys/kernel/threads-max", "256939\n")
    w("proc/sys/net/netfilter/nf_conntrack_count", "1200\n")
    w("proc/sys/net/netfilter/nf_conntrack_max", "262144\n")
    w("proc/meminfo", "MemTotal:        4028504 kB\nMemFree:          143284 kB\nMemAvailable:     512340 kB\n"
      "Buffers:           20480 kB\nCached:           402112 kB\nSwapCached:        81920 kB\nActive:          2981234 kB\n"
      "Inactive:         612345 kB\nSwapTotal:       2097148 kB\nSwapFree:         262144 kB\nDirty:               120 kB\n"
      "CommitLimit:     4111400 kB\nCommitted_AS:    6123456 kB\n")
    w("proc/vmstat", "nr_free_pages 35821\nnr_zone_inactive_anon 12034\npgpgin 7212345\npgpgout 3212345\n"
      "pswpin 1523400\npswpout 2234500\npgfault 982734234\npgmajfault 412345\npgscan_direct 123456\n"
      "pgsteal_direct 100234\nallocstall_normal 3412\noom_kill 2\n")
    for res, (s10, f10) in {"memory": (42.17, 31.05), "cpu": (12.50, 0.00), "io": (55.02, 40.12)}.items():
        w(f"proc/pressure/{res}", f"some avg10={s10:.2f} avg60={s10/2:.2f} avg300={s10/4:.2f} total=912345678\n"
          f"full avg10={f10:.2f} avg60={f10/2:.2f} avg300={f10/4:.2f} total=612345678\n")
    w("proc/user_beancounters", """Version: 2.5
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

    # Processes.
    link("proc/self", "1")
    proc(1, 0, "systemd", 0, rss_pages=3000, start=2, fds=["/proc/1/mountinfo"])
    proc(2, 0, "kthreadd", 0, start=2, kthread=True)
    for i in range(6):
        proc(100 + i, 302, "imapd", 1001, start=5000 + i, rss_pages=700)
    for i in range(3):
        proc(110 + i, 302, "imapd", 1002, start=6000 + i, rss_pages=650)
    proc(300, 1, "mysqld", 27, threads=28, rss_pages=90000, start=3000,
         fds=[2101, 2102, 2103, 3001, 3002, "/var/lib/mysql/ibdata1"], nofile=1024)
    proc(301, 1, "named", 25, threads=4, rss_pages=4000, start=3100, fds=[4001, 4002, 5001])
    proc(302, 1, "master", 0, rss_pages=1200, start=3200, fds=[2001, 2201])
    proc(303, 302, "smtpd", 89, rss_pages=1100, start=7000, fds=[2001, 3003])
    proc(400, 1, "$(touch /tmp/x)", 1001, rss_pages=100, start=8000)
    proc(401, 1, "\x1b[31mred\x1b[0m", 1001, rss_pages=100, start=8001)
    proc(500, 1, "nginx", 33, rss_pages=2000, start=9000, fds=[6001, 6002], netns=4026532999)
    proc(600, 1, "leaky", 1003, rss_pages=300, start=9500, fds=[7001, 4002], nofile=8)

    w("proc/net/tcp", TCPHDR
      + tcp_line(0, "00000000:0CEA", "00000000:0000", 0x0A, 3001, 27)
      + tcp_line(1, "0100007F:0CEA", "0100007F:D2F0", 0x01, 3002, 27)
      + tcp_line(2, "0A000005:0019", "0A0000C8:E3A1", 0x01, 3003, 89)
      + tcp_line(3, "0A000005:0050", "0A0000C9:C350", 0x06, 0)
      + tcp_line(4, "0A000005:0050", "0A0000CA:C351", 0x04, 0))
    w("proc/net/tcp6", TCP6HDR
      + "   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3004 1 0000000000000000 100 0 0 10 0\n")
    w("proc/net/udp", UDPHDR + udp_line(0, "00000000:0035", 4001, 25) + udp_line(1, "0100007F:0035", 4002, 25))
    w("proc/net/udp6", UDPHDR.replace("local_address", "local_address                        ")
      + "  100: 00000000000000000000000000000000:0222 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4003 2 0000000000000000 0\n")
    w("proc/net/unix", UNIXHDR + unix_line(2001, "private/smtpd") + unix_line(2101, "/var/run/mysqld/mysqld.sock", st=1)
      + unix_line(2102, st=3) + unix_line(2103, st=3) + unix_line(2201, "@/org/kernel/udev", typ=2))
    w("proc/net/netlink", NLHDR + "0000000000000000 0   301        00000000 0        0        0     2        0        5001    \n"
      + "0000000000000000 0   0          00000000 0        0        0     2        0        5002    \n")
    w("proc/net/packet", PKTHDR)
    w("proc/net/raw", TCPHDR.replace("inode", "inode ref pointer drops"))
    # pid 500's own network namespace (a container): its tables.
    w("proc/500/net/tcp", TCPHDR + tcp_line(0, "00000000:0050", "00000000:0000", 0x0A, 6001, 33))
    w("proc/500/net/unix", UNIXHDR + unix_line(6002, "/run/nginx.sock"))

main()
