"""What the fixture generators share: a /proc tree in the kernel's real
formats (copied from a 6.x kernel), written file by file.

moscow.py and doctor.py import it (run them from the repository's root:
python3 testdata/gen/moscow.py); nothing else reads it.
"""
import os, shutil, uuid

HOSTNS = 4026531840  # the initial network namespace's inode (proc_ns)
BTIME = 1795395064   # boot time of every tree (/proc/stat "btime")

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

TCPHDR = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
UDPHDR = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            \n"
TCP6HDR = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
UDP6HDR = UDPHDR.replace("local_address", "local_address                        ")
UNIXHDR = "Num       RefCount Protocol Flags    Type St Inode Path\n"
NLHDR = "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n"
PKTHDR = "sk       RefCnt Type Proto  Iface R Rmem   User   Inode\n"
RAWHDR = TCPHDR.replace("inode", "inode ref pointer drops")

# An OpenVZ container (veid 101) whose numothersock is held at its barrier
# of 400, refused 17 times: the frozen V-Server.
BEANCOUNTERS = """Version: 2.5
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
"""


# /proc/net/netstat's names lines and /proc/net/stat/nf_conntrack's header,
# as Linux 6.18 prints them.
TCPEXT = "TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts PruneCalled RcvPruned OfoPruned OutOfWindowIcmps LockDroppedIcmps ArpFilter TW TWRecycled TWKilled PAWSActive PAWSEstab BeyondWindow TSEcrRejected PAWSOldAck PAWSTimewait DelayedACKs DelayedACKLocked DelayedACKLost ListenOverflows ListenDrops TCPHPHits TCPPureAcks TCPHPAcks TCPRenoRecovery TCPSackRecovery TCPSACKReneging TCPSACKReorder TCPRenoReorder TCPTSReorder TCPFullUndo TCPPartialUndo TCPDSACKUndo TCPLossUndo TCPLostRetransmit TCPRenoFailures TCPSackFailures TCPLossFailures TCPFastRetrans TCPSlowStartRetrans TCPTimeouts TCPLossProbes TCPLossProbeRecovery TCPRenoRecoveryFail TCPSackRecoveryFail TCPRcvCollapsed TCPBacklogCoalesce TCPDSACKOldSent TCPDSACKOfoSent TCPDSACKRecv TCPDSACKOfoRecv TCPAbortOnData TCPAbortOnClose TCPAbortOnMemory TCPAbortOnTimeout TCPAbortOnLinger TCPAbortFailed TCPMemoryPressures TCPMemoryPressuresChrono TCPSACKDiscard TCPDSACKIgnoredOld TCPDSACKIgnoredNoUndo TCPSpuriousRTOs TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure TCPSackShifted TCPSackMerged TCPSackShiftFallback TCPBacklogDrop PFMemallocDrop TCPMinTTLDrop TCPDeferAcceptDrop IPReversePathFilter TCPTimeWaitOverflow TCPReqQFullDoCookies TCPReqQFullDrop TCPRetransFail TCPRcvCoalesce TCPOFOQueue TCPOFODrop TCPOFOMerge TCPChallengeACK TCPSYNChallenge TCPFastOpenActive TCPFastOpenActiveFail TCPFastOpenPassive TCPFastOpenPassiveFail TCPFastOpenListenOverflow TCPFastOpenCookieReqd TCPFastOpenBlackhole TCPSpuriousRtxHostQueues BusyPollRxPackets TCPAutoCorking TCPFromZeroWindowAdv TCPToZeroWindowAdv TCPWantZeroWindowAdv TCPSynRetrans TCPOrigDataSent TCPHystartTrainDetect TCPHystartTrainCwnd TCPHystartDelayDetect TCPHystartDelayCwnd TCPACKSkippedSynRecv TCPACKSkippedPAWS TCPACKSkippedSeq TCPACKSkippedFinWait2 TCPACKSkippedTimeWait TCPACKSkippedChallenge TCPWinProbe TCPKeepAlive TCPMTUPFail TCPMTUPSuccess TCPDelivered TCPDeliveredCE TCPAckCompressed TCPZeroWindowDrop TCPRcvQDrop TCPWqueueTooBig TCPFastOpenPassiveAltKey TcpTimeoutRehash TcpDuplicateDataRehash TCPDSACKRecvSegs TCPDSACKIgnoredDubious TCPMigrateReqSuccess TCPMigrateReqFailure TCPPLBRehash TCPAORequired TCPAOBad TCPAOKeyNotFound TCPAOGood TCPAODroppedIcmps"
IPEXT = "IpExt: InNoRoutes InTruncatedPkts InMcastPkts OutMcastPkts InBcastPkts OutBcastPkts InOctets OutOctets InMcastOctets OutMcastOctets InBcastOctets OutBcastOctets InCsumErrors InNoECTPkts InECT1Pkts InECT0Pkts InCEPkts ReasmOverlaps"
CTSTAT = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart"
# The first lines a 6.x kernel logs at boot, as /dev/kmsg gives them.
BOOTLOG = [
    (5, 0, "Linux version 6.1.0-27-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.115-1 (2024-11-01)"),
    (6, 0, "Command line: BOOT_IMAGE=/boot/vmlinuz-6.1.0-27-amd64 root=UUID=3c1e9d7a ro quiet"),
    (6, 1200, "BIOS-provided physical RAM map:"),
    (6, 2400000, "EXT4-fs (vda1): mounted filesystem with ordered data mode. Quota mode: none."),
]


def sockstat(used, tcp, udp):
    """/proc/net/sockstat: tcp is (inuse, orphan, tw, alloc, mem pages),
    udp is (inuse, mem pages)."""
    return (f"sockets: used {used}\nTCP: inuse {tcp[0]} orphan {tcp[1]} tw {tcp[2]} alloc {tcp[3]} mem {tcp[4]}\n"
            f"UDP: inuse {udp[0]} mem {udp[1]}\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n")


def tcp_line(sl, local, rem, st, inode, uid=0):
    return (f"{sl:4d}: {local} {rem} {st:02X} 00000000:00000000 00:00000000 00000000 "
            f"{uid:5d}        0 {inode} 1 0000000000000000 100 0 0 10 0\n")


def udp_line(sl, local, inode, uid=0):
    return (f"{sl:5d}: {local} 00000000:0000 07 00000000:00000000 00:00000000 00000000 "
            f"{uid:5d}        0 {inode} 2 0000000000000000 0        \n")


class Tree:
    """A fixture tree under root, rewritten from scratch: a host named
    host with the accounts of passwd, booted at BTIME."""

    def __init__(self, root, host, passwd):
        self.root = root
        if os.path.exists(root):
            shutil.rmtree(root)
        self.w("etc/passwd", passwd)
        self.w("proc/sys/kernel/hostname", host + "\n")
        # Sequence numbers of the kernel's log start again at each boot:
        # picket keeps its position per boot id.
        self.w("proc/sys/kernel/random/boot_id", str(uuid.uuid5(uuid.NAMESPACE_DNS, host + ".boot")) + "\n")
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

    def proc(self, pid, ppid, comm, uid, state="S", threads=1, rss_pages=500, start=1000,
             fds=(), kthread=False, netns=HOSTNS, nofile=1024, nproc=96365):
        """/proc/PID: stat, status, comm, limits, ns/net and fd/, whose
        entries are /dev/null thrice and then fds (a path, or a socket's
        inode)."""
        # PF_KTHREAD|PF_NOFREEZE|PF_FORKNOEXEC, or PF_RANDOMIZE|PF_SUPERPRIV
        # (include/linux/sched.h).
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
        # status escapes a newline in the name (fs/proc/array.c, task_name).
        self.w(f"{d}/status", STATUS.format(name=comm.replace("\n", "\\n"), statel=STATES[state], pid=pid, ppid=ppid,
                                            uid=uid, kthread=int(kthread), rsskb=rss * 4, threads=threads))
        self.w(f"{d}/comm", comm + "\n")
        self.w(f"{d}/limits", LIMITS.format(nproc=nproc, nofile=nofile, nofileh=max(nofile, 4096)))
        os.makedirs(os.path.join(self.root, d, "fd"), exist_ok=True)
        self.link(f"{d}/ns/net", f"net:[{netns}]")
        if kthread:
            # A kernel thread's fd/ is empty; git keeps no empty directory, so
            # a dot-file holds it (the collector skips names starting with '.').
            open(os.path.join(self.root, d, "fd", ".keep"), "w").close()
            return
        for i, target in enumerate(["/dev/null", "/dev/null", "/dev/null"] + list(fds)):
            self.link(f"{d}/fd/{i}", target if isinstance(target, str) else f"socket:[{target}]")

    def kernel(self, sockstat, tcp_mem="3093984\t4125312\t6187968", max_orphans=65536, file_nr="14880\t0\t3247617",
               pid_max=4194304, threads_max=256939, conntrack=None):
        """The kernel's counters and limits: sockstat (sockstat6 fixed),
        tcp_mem, tcp_max_orphans, file-nr, nr_open, pid_max, threads-max
        and, for a host with nf_conntrack loaded, (count, max)."""
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

    def vmstat(self, pswpin, pswpout, pgmajfault, oom_kill=0):
        self.w("proc/vmstat", f"nr_free_pages 35821\nnr_zone_inactive_anon 12034\npgpgin 7212345\npgpgout 3212345\n"
               f"pswpin {pswpin}\npswpout {pswpout}\npgfault 982734234\npgmajfault {pgmajfault}\npgscan_direct 123456\n"
               f"pgsteal_direct 100234\nallocstall_normal 3412\noom_kill {oom_kill}\n")

    def psi(self, memory=(0.0, 0.0), cpu=(0.5, 0.0), io=(0.2, 0.1)):
        """/proc/pressure: each resource's (some, full) avg10; avg60 and
        avg300 fall off from it."""
        for res, (s10, f10) in {"memory": memory, "cpu": cpu, "io": io}.items():
            self.w(f"proc/pressure/{res}", f"some avg10={s10:.2f} avg60={s10 / 2:.2f} avg300={s10 / 4:.2f} total=912345678\n"
                   f"full avg10={f10:.2f} avg60={f10 / 2:.2f} avg300={f10 / 4:.2f} total=612345678\n")

    def tables(self, tcp="", tcp6="", udp="", udp6="", unix="", netlink="", under="proc/net"):
        """The socket tables under (proc/net, or proc/PID/net for another
        network namespace): each header, then the rows given."""
        self.w(f"{under}/tcp", TCPHDR + tcp)
        self.w(f"{under}/tcp6", TCP6HDR + tcp6)
        self.w(f"{under}/udp", UDPHDR + udp)
        self.w(f"{under}/udp6", UDP6HDR + udp6)
        self.w(f"{under}/unix", UNIXHDR + unix)
        self.w(f"{under}/netlink", NLHDR + netlink)
        self.w(f"{under}/packet", PKTHDR)
        self.w(f"{under}/raw", RAWHDR)

    def kmsg(self, records, first_seq=0):
        """dev/kmsg: /dev/kmsg's records one after another, (level,
        microseconds since boot, text[, facility]) each, from sequence
        number first_seq, escaped as msg_add_ext_text() does; a None record
        is a gap (records the kernel overwrote)."""
        out, seq = [], first_seq
        for r in records:
            if r is None:
                seq += 7
                continue
            level, ts, text = r[:3]
            fac = r[3] if len(r) > 3 else 0
            esc = "".join(c if 32 <= ord(c) < 127 and c != "\\" else "\\x%02x" % ord(c) for c in text)
            out.append(f"{fac * 8 + level},{seq},{ts},-;{esc}\n")
            seq += 1
        self.w("dev/kmsg", "".join(out))

    def netstat(self, **counters):
        """/proc/net/netstat with the TcpExt counters given, the rest 0."""
        names = TCPEXT.split()
        vals = ["TcpExt:"] + [str(counters.get(n, 0)) for n in names[1:]]
        ip = IPEXT.split()
        self.w("proc/net/netstat", TCPEXT + "\n" + " ".join(vals) + "\n" + IPEXT + "\n" +
               " ".join(["IpExt:"] + ["0"] * (len(ip) - 1)) + "\n")

    def ctstat(self, cpus):
        """/proc/net/stat/nf_conntrack: one dict of counters per CPU."""
        cols = CTSTAT.split()
        lines = [CTSTAT]
        for c in cpus:
            v = ["%08x" % c.get(n, 0) for n in cols]
            lines.append(v[0] + "  " + " ".join(v[1:13]) + "  " + " ".join(v[13:]))
        self.w("proc/net/stat/nf_conntrack", "\n".join(lines) + "\n")
