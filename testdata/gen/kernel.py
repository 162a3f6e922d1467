"""The kernel's log and counters in their real formats, for the fixture
generators: /dev/kmsg records, /proc/net/netstat, /proc/net/stat/nf_conntrack
(as Linux 6.18 prints them)."""

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


def kmsg_text(records, first_seq=0):
    """/dev/kmsg's records one after another: (level, microseconds since
    boot, text[, facility]) each, from sequence number first_seq, escaped as
    msg_add_ext_text() does; a None record is a gap (records the kernel
    overwrote)."""
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
    return "".join(out)


def netstat_text(**counters):
    names = TCPEXT.split()
    vals = ["TcpExt:"] + [str(counters.get(n, 0)) for n in names[1:]]
    ip = IPEXT.split()
    return (TCPEXT + "\n" + " ".join(vals) + "\n" + IPEXT + "\n" +
            " ".join(["IpExt:"] + ["0"] * (len(ip) - 1)) + "\n")


def ctstat_text(cpus):
    """One dict of counters per CPU."""
    cols = CTSTAT.split()
    lines = [CTSTAT]
    for c in cpus:
        v = ["%08x" % c.get(n, 0) for n in cols]
        lines.append(v[0] + "  " + " ".join(v[1:13]) + "  " + " ".join(v[13:]))
    return "\n".join(lines) + "\n"
