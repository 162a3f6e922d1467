#!/usr/bin/env python3
"""Writes testdata/doctor/kernel-<version>: /proc trees of hosts picket
meets on older kernels, in the formats those kernels print (read in each
version's sources: fs/proc/array.c do_task_stat and task_state,
fs/proc/meminfo.c, mm/vmstat.c, net/ipv4/proc.c, and OpenVZ's
kernel/bc/proc.c for /proc/user_beancounters):

- kernel-2.6.32: an OpenVZ 6 container (2.6.32-042stab): stat lines of 44
  fields (up to cguest_time), status with envID and VPid, a meminfo
  without MemAvailable (3.14) and no zoneinfo or min_free_kbytes to
  estimate it from (MemAvailable unknown), vmstat's single allocstall
  counter (split per zone in 4.8), no /proc/pressure (4.20),
  /proc/vz without /proc/bc, and user_beancounters "Version: 2.5" with
  numproc at 236 of 240;
- kernel-3.10: an OpenVZ 7 container (3.10.0 vz7): stat lines of 52
  fields, 3.10's status and meminfo (no MemAvailable: picket estimates it
  from zoneinfo's low watermarks), user_beancounters "Version: 2.5" as
  OpenVZ 7 prints it (LONG_MAX barriers and limits where nothing is set),
  numothersock refused 3 times;
- kernel-4.15/{before,after}: an Ubuntu 18.04 web server (4.15.0) one
  second apart, thrashing: 4.15's status (Umask, NStgid, CoreDumping),
  MemAvailable present, vmstat with allocstall_* and oom_kill, and no
  /proc/pressure: memory-thrashing grades on vmstat rates alone.

Run it from the repository root; the trees are committed, this documents
them and rewrites them. It reuses doctor.py's Tree (passwd, sockets,
limits, the net tables: /proc/net/tcp's line has kept its fields since
2.6.32, which padded each line to 150 columns with spaces, as the reader
ignores).
"""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in testdata/gen
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import doctor as d  # noqa: E402  (its main runs only as a script)
import proctree  # noqa: E402

STATUS_2632 = """Name:\t{name}
State:\t{statel}
Tgid:\t{pid}
Pid:\t{pid}
PPid:\t{ppid}
TracerPid:\t0
Uid:\t{uid}\t{uid}\t{uid}\t{uid}
Gid:\t{uid}\t{uid}\t{uid}\t{uid}
Utrace:\t0
FDSize:\t64
Groups:\t
envID:\t101
VPid:\t{pid}
VmPeak:\t   19060 kB
VmSize:\t   19060 kB
VmLck:\t       0 kB
VmHWM:\t    {rsskb} kB
VmRSS:\t    {rsskb} kB
VmData:\t     360 kB
VmStk:\t      88 kB
VmExe:\t      36 kB
VmLib:\t    1860 kB
VmPTE:\t      52 kB
VmSwap:\t       0 kB
Threads:\t{threads}
SigQ:\t0/30000
SigPnd:\t0000000000000000
ShdPnd:\t0000000000000000
SigBlk:\t0000000000000000
SigIgn:\t0000000000001000
SigCgt:\t0000000180000000
CapInh:\t0000000000000000
CapPrm:\t00000000fdecafff
CapEff:\t00000000fdecafff
CapBnd:\t00000000fdecafff
Cpus_allowed:\tff
Cpus_allowed_list:\t0-7
Mems_allowed:\t00000000,00000001
Mems_allowed_list:\t0
voluntary_ctxt_switches:\t112
nonvoluntary_ctxt_switches:\t3
"""

STATUS_310 = """Name:\t{name}
State:\t{statel}
Tgid:\t{pid}
Pid:\t{pid}
PPid:\t{ppid}
TracerPid:\t0
Uid:\t{uid}\t{uid}\t{uid}\t{uid}
Gid:\t{uid}\t{uid}\t{uid}\t{uid}
FDSize:\t64
Groups:\t
envID:\t2001
VPid:\t{pid}
VmPeak:\t   19060 kB
VmSize:\t   19060 kB
VmLck:\t       0 kB
VmPin:\t       0 kB
VmHWM:\t    {rsskb} kB
VmRSS:\t    {rsskb} kB
VmData:\t     360 kB
VmStk:\t     132 kB
VmExe:\t      36 kB
VmLib:\t    1860 kB
VmPTE:\t      52 kB
VmSwap:\t       0 kB
Threads:\t{threads}
SigQ:\t0/7184
SigPnd:\t0000000000000000
ShdPnd:\t0000000000000000
SigBlk:\t0000000000000000
SigIgn:\t0000000000001000
SigCgt:\t0000000180000000
CapInh:\t0000000000000000
CapPrm:\t00000000a80425fb
CapEff:\t00000000a80425fb
CapBnd:\t00000000a80425fb
Seccomp:\t0
Cpus_allowed:\tf
Cpus_allowed_list:\t0-3
Mems_allowed:\t00000000,00000001
Mems_allowed_list:\t0
voluntary_ctxt_switches:\t112
nonvoluntary_ctxt_switches:\t3
"""

STATUS_415 = """Name:\t{name}
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
VmPeak:\t   19060 kB
VmSize:\t   19060 kB
VmLck:\t       0 kB
VmPin:\t       0 kB
VmHWM:\t    {rsskb} kB
VmRSS:\t    {rsskb} kB
RssAnon:\t     312 kB
RssFile:\t    1572 kB
RssShmem:\t       0 kB
VmData:\t     360 kB
VmStk:\t     132 kB
VmExe:\t      36 kB
VmLib:\t    1860 kB
VmPTE:\t      52 kB
VmSwap:\t       0 kB
HugetlbPages:\t       0 kB
CoreDumping:\t0
Threads:\t{threads}
SigQ:\t0/7781
SigPnd:\t0000000000000000
ShdPnd:\t0000000000000000
SigBlk:\t0000000000000000
SigIgn:\t0000000000001000
SigCgt:\t0000000180000000
CapInh:\t0000000000000000
CapPrm:\t0000000000000000
CapEff:\t0000000000000000
CapBnd:\t0000003fffffffff
CapAmb:\t0000000000000000
NoNewPrivs:\t0
Seccomp:\t0
Cpus_allowed:\t3
Cpus_allowed_list:\t0-1
Mems_allowed:\t00000000,00000001
Mems_allowed_list:\t0
voluntary_ctxt_switches:\t112
nonvoluntary_ctxt_switches:\t3
"""


class OldTree(d.Tree):
    """A Tree whose process files are in the format of one older kernel."""

    def __init__(self, name, host, release, fields, status):
        super().__init__(name, host)
        self.fields, self.status = fields, status
        self.w("proc/sys/kernel/osrelease", release + "\n")
        # Red Hat's apache account (uid 48), for the 2.6.32 container.
        self.w("etc/passwd", d.PASSWD + "apache:x:48:48:Apache:/var/www:/sbin/nologin\n")

    def proc(self, pid, ppid, comm, uid, state="S", threads=1, rss_pages=500, start=1000,
             fds=(), kthread=False, nofile=1024, nproc=7781):
        super().proc(pid, ppid, comm, uid, state, threads, rss_pages, start, fds, kthread, nofile, nproc)
        dd = f"proc/{pid}"
        full = os.path.join(self.root, dd, "stat")
        with open(full) as f:
            stat = f.read().split()
        # do_task_stat of 2.6.32 ends at cguest_time (field 44); 3.3 added
        # start_data..start_brk, 3.5 arg_start..exit_code (52).
        self.w(f"{dd}/stat", " ".join(stat[:self.fields]) + "\n")
        rss = 0 if kthread else rss_pages
        self.w(f"{dd}/status", self.status.format(name=comm, statel=proctree.STATES[state], pid=pid, ppid=ppid, uid=uid,
                                                  rsskb=rss * 4, threads=threads))

    def meminfo(self, lines):
        self.w("proc/meminfo", "".join(f"{k + ':':<16}{v:>8} kB\n" if not k.startswith("HugePages_") else
                                       f"{k + ':':<16}{v:>8}\n" for k, v in lines))


def meminfo_old(total, free, buffers, cached, active_anon, inactive_anon, active_file, inactive_file,
                swap_total, swap_free, sreclaimable, sunreclaim, committed, avail=None, v310=False):
    """fs/proc/meminfo.c's order, 2.6.32 and 3.10 (MemAvailable only when
    avail is given: 3.14 put it after MemFree)."""
    out = [("MemTotal", total), ("MemFree", free)]
    if avail is not None:
        out.append(("MemAvailable", avail))
    out += [("Buffers", buffers), ("Cached", cached), ("SwapCached", 0),
            ("Active", active_anon + active_file), ("Inactive", inactive_anon + inactive_file),
            ("Active(anon)", active_anon), ("Inactive(anon)", inactive_anon),
            ("Active(file)", active_file), ("Inactive(file)", inactive_file),
            ("Unevictable", 0), ("Mlocked", 0), ("SwapTotal", swap_total), ("SwapFree", swap_free),
            ("Dirty", 120), ("Writeback", 0), ("AnonPages", active_anon + inactive_anon), ("Mapped", 40000),
            ("Shmem", 1000), ("Slab", sreclaimable + sunreclaim), ("SReclaimable", sreclaimable),
            ("SUnreclaim", sunreclaim), ("KernelStack", 1200), ("PageTables", 6000), ("NFS_Unstable", 0),
            ("Bounce", 0), ("WritebackTmp", 0), ("CommitLimit", total // 2 + swap_total), ("Committed_AS", committed),
            ("VmallocTotal", 34359738367), ("VmallocUsed", 12000), ("VmallocChunk", 34359700000)]
    if v310:
        out += [("HardwareCorrupted", 0), ("AnonHugePages", 0)]
    out += [("HugePages_Total", 0), ("HugePages_Free", 0), ("HugePages_Rsvd", 0), ("HugePages_Surp", 0),
            ("Hugepagesize", 2048), ("DirectMap4k", 10240), ("DirectMap2M", total - 10240)]
    return out


# kernel/bc/proc.c prints the ub_rnames table, "dummy" rows included, the
# same in OpenVZ 6 and 7; LONG_MAX is "unlimited".
BC_HEADER = ("Version: 2.5\n       uid  resource                     held              maxheld"
             "              barrier                limit              failcnt\n")
UNL = 9223372036854775807


def beancounters(veid, rows):
    out = BC_HEADER
    for i, (res, held, maxheld, barrier, limit, failcnt) in enumerate(rows):
        lead = f"{veid:>10}:  " if i == 0 else " " * 12
        out += f"{lead}{res:<12} {held:>20} {maxheld:>20} {barrier:>20} {limit:>20} {failcnt:>20}\n"
    return out


def kernel_2632():
    t = OldTree("kernel-2.6.32", "vz6", "2.6.32-042stab145.3", 44, STATUS_2632)
    # net/ipv4/proc.c of 2.6.32: TCP with mem, UDP with mem (2.6.25),
    # UDPLITE (2.6.20).
    t.kernel("sockets: used 96\nTCP: inuse 14 orphan 0 tw 6 alloc 14 mem 4\nUDP: inuse 3 mem 1\nUDPLITE: inuse 0\n"
             "RAW: inuse 0\nFRAG: inuse 0 memory 0\n", tcp_mem="22113\t29486\t44226", max_orphans=4096,
             file_nr="1440\t0\t9312", pid_max=32768, threads_max=15623)
    t.meminfo(meminfo_old(1048576, 212000, 0, 310000, 380000, 60000, 190000, 95000, 0, 0, 0, 0, 640000))
    # mm/vmstat.c of 2.6.32: one allocstall counter, no oom_kill (4.13).
    t.w("proc/vmstat", "nr_free_pages 53000\nnr_inactive_anon 15000\nnr_active_anon 95000\nnr_inactive_file 23750\n"
        "nr_active_file 47500\npgpgin 1212345\npgpgout 812345\npswpin 0\npswpout 0\npgfault 98273423\npgmajfault 4123\n"
        "pgscan_direct_normal 0\nallocstall 0\n")
    t.w("proc/vz/veinfo", "       101     0    48          10.0.0.101\n")
    t.w("proc/user_beancounters", beancounters(101, [
        ("kmemsize", 8854282, 9100866, 14372700, 14790164, 0), ("lockedpages", 0, 0, 256, 256, 0),
        ("privvmpages", 160873, 176853, 262144, 292912, 0), ("shmpages", 652, 668, 21504, 21504, 0),
        ("dummy", 0, 0, 0, 0, 0), ("numproc", 236, 240, 240, 240, 41),
        ("physpages", 127427, 129808, 0, UNL, 0), ("vmguarpages", 0, 0, 33792, UNL, 0),
        ("oomguarpages", 127427, 129808, 26112, UNL, 0), ("numtcpsock", 14, 19, 360, 360, 0),
        ("numflock", 6, 9, 188, 206, 0), ("numpty", 1, 1, 16, 16, 0), ("numsiginfo", 0, 3, 256, 256, 0),
        ("tcpsndbuf", 107088, 151624, 1720320, 2703360, 0), ("tcprcvbuf", 196608, 262144, 1720320, 2703360, 0),
        ("othersockbuf", 15616, 47104, 1126080, 2097152, 0), ("dgramrcvbuf", 0, 8464, 262144, 262144, 0),
        ("numothersock", 82, 96, 400, 400, 0), ("dcachesize", 0, 0, 3409920, 3624960, 0),
        ("numfile", 1440, 1507, 9312, 9312, 0), ("dummy", 0, 0, 0, 0, 0), ("dummy", 0, 0, 0, 0, 0),
        ("dummy", 0, 0, 0, 0, 0), ("numiptent", 10, 10, 128, 128, 0)]))
    # The container's init is its pid 1; no kernel threads are visible.
    t.proc(1, 0, "init", 0, rss_pages=300, start=2, fds=t.sockets(unix=2))
    t.proc(150, 1, "sshd", 0, rss_pages=800, start=500, fds=t.sockets(tcp=1, unix=1))
    t.proc(160, 1, "crond", 0, rss_pages=400, start=510)
    t.proc(300, 1, "httpd", 0, rss_pages=3000, start=3300, fds=t.sockets(tcp=2, unix=1))
    # A php fork storm under apache: 230 children against numproc 240.
    for i in range(230):
        t.proc(400 + i, 300, "php-cgi", 48, rss_pages=2500, start=80000 + i * 7, fds=t.sockets(unix=0), nproc=240)
    t.finish()


def kernel_310():
    t = OldTree("kernel-3.10", "vz7", "3.10.0-1160.80.1.vz7.191.4", 52, STATUS_310)
    t.kernel("sockets: used 430\nTCP: inuse 20 orphan 0 tw 11 alloc 22 mem 6\nUDP: inuse 44 mem 3\nUDPLITE: inuse 0\n"
             "RAW: inuse 0\nFRAG: inuse 0 memory 0\n", tcp_mem="44226\t58970\t88452", max_orphans=8192,
             file_nr="2112\t0\t98304", pid_max=32768, threads_max=31225)
    t.meminfo(meminfo_old(2097152, 402000, 32000, 810000, 610000, 60000, 520000, 250000, 1048572, 1048572,
                          61000, 30000, 1200000, v310=True))
    # zoneinfo_show_print of 3.10: "pages free", min, low, high,
    # scanned, spanned, present, managed (3.8), then the vm_stat items.
    zones = ""
    for zone, free, mn, low, high, spanned, present, managed in (
            ("DMA", 3975, 33, 41, 49, 4095, 3998, 3977), ("DMA32", 100500, 6736, 8420, 10104, 1044480, 520160, 503276)):
        zones += (f"Node 0, zone {zone:>8}\n  pages free     {free}\n        min      {mn}\n        low      {low}\n"
                  f"        high     {high}\n        scanned  0\n        spanned  {spanned}\n        present  {present}\n"
                  f"        managed  {managed}\n    nr_free_pages {free}\n    nr_inactive_anon 0\n")
    t.w("proc/zoneinfo", zones)
    t.w("proc/vmstat", "nr_free_pages 100500\nnr_inactive_anon 15000\nnr_active_anon 152500\nnr_inactive_file 62500\n"
        "nr_active_file 130000\npgpgin 7212345\npgpgout 3212345\npswpin 12\npswpout 40\npgfault 982734234\n"
        "pgmajfault 9123\npgscan_direct_dma32 1200\nallocstall 3\n")
    t.w("proc/vz/veinfo", "      2001     0    52       10.0.0.201\n")
    t.w("proc/user_beancounters", beancounters(2001, [
        ("kmemsize", 48854282, 52100866, UNL, UNL, 0), ("lockedpages", 0, 0, UNL, UNL, 0),
        ("privvmpages", 360873, 376853, UNL, UNL, 0), ("shmpages", 1652, 1668, UNL, UNL, 0),
        ("dummy", 0, 0, 0, 0, 0), ("numproc", 52, 60, 1100, 1100, 0),
        ("physpages", 327427, 329808, 0, 524288, 0), ("vmguarpages", 0, 0, 0, UNL, 0),
        ("oomguarpages", 327427, 329808, 0, 0, 0), ("numtcpsock", 0, 0, UNL, UNL, 0),
        ("numflock", 6, 9, UNL, UNL, 0), ("numpty", 1, 1, UNL, UNL, 0), ("numsiginfo", 0, 3, UNL, UNL, 0),
        ("tcpsndbuf", 0, 0, UNL, UNL, 0), ("tcprcvbuf", 0, 0, UNL, UNL, 0),
        ("othersockbuf", 0, 0, UNL, UNL, 0), ("dgramrcvbuf", 0, 0, UNL, UNL, 0),
        ("numothersock", 398, 400, 400, 400, 3), ("dcachesize", 9012334, 9312334, UNL, UNL, 0),
        ("numfile", 2112, 2207, UNL, UNL, 0), ("dummy", 0, 0, 0, 0, 0), ("dummy", 0, 0, 0, 0, 0),
        ("dummy", 0, 0, 0, 0, 0), ("numiptent", 20, 20, 2000, 2000, 0)]))
    t.proc(1, 0, "systemd", 0, rss_pages=1200, start=2, fds=t.sockets(unix=12, netlink=2))
    t.proc(140, 1, "systemd-journal", 0, rss_pages=900, start=300, fds=t.sockets(unix=8))
    t.proc(150, 1, "sshd", 0, rss_pages=800, start=500, fds=t.sockets(tcp=1, unix=1))
    t.proc(200, 1, "named", 25, threads=4, rss_pages=4000, start=3100, fds=t.sockets(udp=40, netlink=2, uid=25))
    t.proc(300, 1, "mysqld", 27, threads=20, rss_pages=60000, start=3000, fds=t.sockets(unix=1, tcp=1, uid=27))
    t.proc(400, 1, "master", 0, rss_pages=1200, start=3200, fds=t.sockets(unix=150))
    for i in range(8):
        t.proc(410 + i, 400, "smtpd", 89, rss_pages=1100, start=7000 + i, fds=t.sockets(unix=20, uid=89))
    t.finish()


def kernel_415():
    for phase in ("before", "after"):
        t = OldTree(f"kernel-4.15/{phase}", "bionic", "4.15.0-213-generic", 52, STATUS_415)
        t.kernel("sockets: used 300\nTCP: inuse 150 orphan 12 tw 80 alloc 152 mem 90\nUDP: inuse 2 mem 1\nUDPLITE: inuse 0\n"
                 "RAW: inuse 0\nFRAG: inuse 0 memory 0\n", tcp_mem="46368\t61824\t92736", max_orphans=8192,
                 file_nr="4100\t0\t200000", pid_max=32768, threads_max=15623)
        if phase == "before":
            t.memory(2097152, 600000, 2097148, 1900000)
            pswpin, pswpout, majflt, stall, children = 100000, 200000, 500000, 1000, 20
        else:
            t.memory(2097152, 30000, 2097148, 230000)
            pswpin, pswpout, majflt, stall, children = 104200, 206100, 515000, 1240, 60
        # mm/vmstat.c of 4.15: allocstall per zone (4.8), oom_kill (4.13).
        t.w("proc/vmstat", f"nr_free_pages 35821\nnr_zone_inactive_anon 12034\npgpgin 7212345\npgpgout 3212345\n"
            f"pswpin {pswpin}\npswpout {pswpout}\npgfault 982734234\npgmajfault {majflt}\nallocstall_dma 0\n"
            f"allocstall_dma32 0\nallocstall_normal {stall}\nallocstall_movable 0\npgscan_direct 123456\n"
            f"pgsteal_direct 100234\noom_kill 0\n")
        # No /proc/pressure: PSI came with 4.20.
        d.base_procs(t)
        t.proc(400, 1, "mysqld", 27, threads=20, rss_pages=30000, start=3000, fds=t.sockets(unix=2, tcp=1, uid=27))
        t.proc(500, 1, "apache2", 0, rss_pages=4000, start=3300, fds=t.sockets(tcp=2))
        for i in range(children):
            t.proc(600 + i, 500, "apache2", 33, rss_pages=6500, start=5000 + i)
        t.finish()


if __name__ == "__main__":
    kernel_2632()
    kernel_310()
    kernel_415()
