#!/usr/bin/env python3
"""Writes two fixture trees of hosts with cgroups, in the kernel's formats
(Documentation/admin-guide/cgroup-v2.rst and cgroup-v1/*.rst, checked
against a 6.18 kernel's files):

- testdata/fixtures/cgroup-v2, "www1": a unified host (one cgroup2 mount with
  every controller) where Apache forks toward its unit's TasksMax=512
  (pids.max), pids.events max counts 37 refused forks, a docker container
  runs close to its memory.max with OOM kills in memory.events, and a
  user's delegated subtree holds cgroups with hostile names;
- testdata/fixtures/cgroup-hybrid, "mail1": systemd's hybrid layout (v1
  pids, memory, cpu,cpuacct and freezer hierarchies, name=systemd, and a
  cgroup2 mount at /sys/fs/cgroup/unified without controllers), where
  Postfix's unit is at its pids.max, its memory cgroup has a failcnt and an
  OOM kill, and a frozen cgroup.

Run it from the repository root; the trees are committed, this documents
them.
"""
import os, shutil, sys

sys.path.insert(0, os.path.dirname(__file__))
import moscow  # noqa: E402  (the /proc writers)

ID = "3b2f8c1ad6e54f0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f"
HOSTILE = ["\x1b[31mred.scope", "$(reboot).service"]


def w(path, text):
    moscow.w(path, text)


def common(host):
    w("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"
      "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
      "postfix:x:89:89::/var/spool/postfix:/usr/sbin/nologin\n"
      "alice:x:1000:1000:Alice:/home/alice:/bin/bash\n")
    w("proc/sys/kernel/hostname", host + "\n")
    w("proc/stat", "cpu  4445 0 3036 164937 124 0 88 0 0 0\nbtime 1795395064\nprocesses 4562\n")
    w("proc/sys/kernel/pid_max", "4194304\n")
    w("proc/sys/kernel/threads-max", "256939\n")


def proc(pid, ppid, comm, uid, cgroup, **kw):
    moscow.proc(pid, ppid, comm, uid, **kw)
    w(f"proc/{pid}/cgroup", cgroup)


def memory_stat_v2(anon, file, sock=0, shmem=0, inactive_file=None):
    if inactive_file is None:
        inactive_file = file // 2
    return (f"anon {anon}\nfile {file}\nkernel 8912896\nkernel_stack 1146880\npagetables 2613248\nsec_pagetables 0\n"
            f"percpu 0\nsock {sock}\nvmalloc 0\nshmem {shmem}\nzswap 0\nzswapped 0\nfile_mapped 1048576\nfile_dirty 0\n"
            f"file_writeback 0\nswapcached 0\nanon_thp 0\nfile_thp 0\nshmem_thp 0\ninactive_anon {anon // 4}\n"
            f"active_anon {anon - anon // 4}\ninactive_file {inactive_file}\nactive_file {file - inactive_file}\n"
            "unevictable 0\nslab_reclaimable 4194304\nslab_unreclaimable 2097152\nslab 6291456\n"
            "workingset_refault_anon 0\nworkingset_refault_file 1024\nworkingset_activate_anon 0\n"
            "workingset_activate_file 12\nworkingset_restore_anon 0\nworkingset_restore_file 0\n"
            "workingset_nodereclaim 0\npgscan 20417\npgsteal 18011\npgscan_kswapd 0\npgscan_direct 20417\n"
            "pgscan_khugepaged 0\npgsteal_kswapd 0\npgsteal_direct 18011\npgsteal_khugepaged 0\npgfault 4184871\n"
            "pgmajfault 2041\npgrefill 0\npgactivate 1120\npgdeactivate 0\npglazyfree 0\npglazyfreed 0\n"
            "thp_fault_alloc 0\nthp_collapse_alloc 0\n")


def psi(some10, full10, some_total, full_total):
    return (f"some avg10={some10:.2f} avg60={some10 / 2:.2f} avg300={some10 / 4:.2f} total={some_total}\n"
            f"full avg10={full10:.2f} avg60={full10 / 2:.2f} avg300={full10 / 4:.2f} total={full_total}\n")


def v2_cgroup(rel, procs=(), pids=None, pids_max="max", pids_events=0, mem=None, mem_max="max", mem_high="max",
              events=(0, 0, 0, 0, 0), stat=None, cpu_max="max 100000", throttled=(0, 0, 0), pressure=(0.0, 0.0),
              frozen=0):
    d = "sys/fs/cgroup/" + rel
    w(f"{d}/cgroup.procs", "".join(f"{p}\n" for p in procs))
    w(f"{d}/cgroup.type", "domain\n")
    w(f"{d}/cgroup.freeze", f"{frozen}\n")
    w(f"{d}/cgroup.events", f"populated {1 if pids else 0}\nfrozen {frozen}\n")
    w(f"{d}/cgroup.kill", "")
    w(f"{d}/pids.current", f"{pids or 0}\n")
    w(f"{d}/pids.max", f"{pids_max}\n")
    w(f"{d}/pids.peak", f"{pids or 0}\n")
    w(f"{d}/pids.events", f"max {pids_events}\n")
    mem = mem or 0
    w(f"{d}/memory.current", f"{mem}\n")
    w(f"{d}/memory.min", "0\n")
    w(f"{d}/memory.low", "0\n")
    w(f"{d}/memory.high", f"{mem_high}\n")
    w(f"{d}/memory.max", f"{mem_max}\n")
    w(f"{d}/memory.peak", f"{mem}\n")
    low, high, mx, oom, kill = events
    w(f"{d}/memory.events", f"low {low}\nhigh {high}\nmax {mx}\noom {oom}\noom_kill {kill}\noom_group_kill 0\n")
    w(f"{d}/memory.events.local", f"low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n")
    w(f"{d}/memory.stat", stat or memory_stat_v2(mem * 3 // 4, mem // 4))
    w(f"{d}/memory.swap.current", "0\n")
    w(f"{d}/memory.swap.max", "max\n")
    w(f"{d}/cpu.max", f"{cpu_max}\n")
    periods, nthr, thr_us = throttled
    w(f"{d}/cpu.stat", f"usage_usec 81733919\nuser_usec 60032510\nsystem_usec 21701409\nnice_usec 0\n"
      f"core_sched.force_idle_usec 0\nnr_periods {periods}\nnr_throttled {nthr}\nthrottled_usec {thr_us}\n"
      "nr_bursts 0\nburst_usec 0\n")
    w(f"{d}/cpu.weight", "100\n")
    some, full = pressure
    w(f"{d}/memory.pressure", psi(some, full, 4102311, 3102311))
    w(f"{d}/cpu.pressure", psi(some / 2, 0, 1102311, 0))
    w(f"{d}/io.pressure", psi(some / 4, full / 4, 802311, 502311))


def cgroup_v2():
    moscow.ROOT = "testdata/fixtures/cgroup-v2"
    if os.path.exists(moscow.ROOT):
        shutil.rmtree(moscow.ROOT)
    common("www1")
    w("proc/self/mountinfo",
      "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
      "23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
      "24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
      "26 24 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
      "27 22 0:25 / /run rw,nosuid,nodev,noexec,relatime shared:13 - tmpfs tmpfs rw,size=1631112k,mode=755\n")
    root = "sys/fs/cgroup"
    w(f"{root}/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
    w(f"{root}/cgroup.subtree_control", "cpu io memory pids\n")
    w(f"{root}/cgroup.procs", "1\n2\n")
    w(f"{root}/cpu.stat", "usage_usec 3288936000\nuser_usec 2057644000\nsystem_usec 1231292000\nnice_usec 12348000\n")
    w(f"{root}/memory.stat", memory_stat_v2(3 << 30, 5 << 30))
    w(f"{root}/memory.pressure", psi(12.5, 4.2, 9102311, 6102311))
    w(f"{root}/cpu.pressure", psi(1.0, 0, 2102311, 0))
    w(f"{root}/io.pressure", psi(2.0, 1.0, 1102311, 802311))

    apache = list(range(1000, 1020))
    v2_cgroup("init.scope", procs=[1], pids=1, mem=12 << 20)
    v2_cgroup("system.slice", pids=540, mem=(7 << 30) + (600 << 20), pressure=(30.0, 12.0))
    v2_cgroup("system.slice/apache2.service", procs=apache, pids=498, pids_max=512, pids_events=37,
              mem=(7 << 30) + (512 << 20), mem_max=8 << 30, events=(0, 0, 1204, 3, 3),
              stat=memory_stat_v2(7 << 30, 512 << 20, sock=8 << 20, shmem=64 << 20, inactive_file=128 << 20),
              throttled=(12040, 3010, 90210331), pressure=(41.2, 18.9))
    v2_cgroup("system.slice/cron.service", procs=[900], pids=1, mem=4 << 20)
    v2_cgroup("system.slice/docker.service", procs=[700], pids=40, mem=80 << 20)
    v2_cgroup(f"system.slice/docker-{ID}.scope", procs=[710, 711], pids=9, pids_max=100, mem=250 << 20,
              mem_max=256 << 20, mem_high=240 << 20, events=(0, 912, 55, 2, 2), cpu_max="50000 100000",
              stat=memory_stat_v2(240 << 20, 10 << 20, inactive_file=2 << 20))
    v2_cgroup("user.slice", pids=3, mem=60 << 20)
    v2_cgroup("user.slice/user-1000.slice", pids=3, pids_max=10813, mem=60 << 20)
    v2_cgroup("user.slice/user-1000.slice/session-3.scope", procs=[1500], pids=1, mem=8 << 20)
    v2_cgroup("user.slice/user-1000.slice/user@1000.service", procs=[1600], pids=2, mem=40 << 20)
    v2_cgroup("user.slice/user-1000.slice/user@1000.service/app.slice", pids=1, mem=20 << 20)
    for i, name in enumerate(HOSTILE):
        v2_cgroup(f"user.slice/user-1000.slice/user@1000.service/app.slice/{name}",
                  procs=[1610 + i], pids=1, pids_max=2, pids_events=5, mem=1 << 20)

    v2 = lambda p: f"0::{p}\n"
    proc(1, 0, "systemd", 0, v2("/init.scope"), rss_pages=3000, start=1)
    proc(2, 0, "kthreadd", 0, v2("/"), kthread=True, start=1)
    proc(700, 1, "dockerd", 0, v2("/system.slice/docker.service"), threads=40, rss_pages=20000, start=900)
    proc(710, 700, "nginx", 0, v2(f"/system.slice/docker-{ID}.scope"), rss_pages=5000, start=1200)
    proc(711, 710, "nginx", 33, v2(f"/system.slice/docker-{ID}.scope"), threads=8, rss_pages=60000, start=1201)
    proc(900, 1, "cron", 0, v2("/system.slice/cron.service"), rss_pages=500, start=800)
    proc(1000, 1, "apache2", 0, v2("/system.slice/apache2.service"), rss_pages=5000, start=1000)
    for pid in apache[1:]:
        proc(pid, 1000, "apache2", 33, v2("/system.slice/apache2.service"), threads=1, rss_pages=90000,
             start=5000 + pid)
    proc(1500, 1, "bash", 1000, v2("/user.slice/user-1000.slice/session-3.scope"), start=9000)
    proc(1600, 1, "systemd", 1000, v2("/user.slice/user-1000.slice/user@1000.service"), start=8900)
    for i, name in enumerate(HOSTILE):
        proc(1610 + i, 1600, "sleep", 1000,
             v2(f"/user.slice/user-1000.slice/user@1000.service/app.slice/{name}"), start=9100 + i)


def v1(ctl, rel, files):
    d = f"sys/fs/cgroup/{ctl}/{rel}".rstrip("/")
    for name, text in files.items():
        w(f"{d}/{name}", text)


def memory_stat_v1(rss, cache, shmem=0):
    return (f"cache {cache}\nrss {rss}\nrss_huge 0\nshmem {shmem}\nmapped_file 0\ndirty 0\nwriteback 0\n"
            "workingset_refault_anon 0\nworkingset_refault_file 0\nswap 0\nswapcached 0\npgpgin 0\npgpgout 0\n"
            "pgfault 0\npgmajfault 0\ninactive_anon 0\nactive_anon 0\ninactive_file 0\nactive_file 0\nunevictable 0\n"
            "hierarchical_memory_limit 9223372036854771712\nhierarchical_memsw_limit 9223372036854771712\n"
            f"total_cache {cache}\ntotal_rss {rss}\ntotal_rss_huge 0\ntotal_shmem {shmem}\ntotal_mapped_file 0\n"
            "total_dirty 0\ntotal_writeback 0\ntotal_workingset_refault_anon 0\ntotal_workingset_refault_file 0\n"
            f"total_swap 0\ntotal_swapcached 0\ntotal_pgpgin 0\ntotal_pgpgout 0\ntotal_pgfault 0\ntotal_pgmajfault 0\n"
            f"total_inactive_anon 0\ntotal_active_anon 0\ntotal_inactive_file {cache // 2}\ntotal_active_file 0\n"
            "total_unevictable 0\n")


UNLIMITED_V1 = "9223372036854771712\n"


def cgroup_hybrid():
    moscow.ROOT = "testdata/fixtures/cgroup-hybrid"
    if os.path.exists(moscow.ROOT):
        shutil.rmtree(moscow.ROOT)
    common("mail1")
    # No mountinfo here: the hierarchies are read from /proc/mounts.
    w("proc/mounts",
      "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n"
      "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n"
      "tmpfs /sys/fs/cgroup tmpfs ro,nosuid,nodev,noexec,mode=755 0 0\n"
      "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n"
      "cgroup /sys/fs/cgroup/systemd cgroup rw,nosuid,nodev,noexec,relatime,xattr,name=systemd 0 0\n"
      "cgroup /sys/fs/cgroup/pids cgroup rw,nosuid,nodev,noexec,relatime,pids 0 0\n"
      "cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0\n"
      "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0\n"
      "cgroup /sys/fs/cgroup/freezer cgroup rw,nosuid,nodev,noexec,relatime,freezer 0 0\n"
      "cgroup /sys/fs/cgroup/blkio cgroup rw,nosuid,nodev,noexec,relatime,blkio 0 0\n")
    w("sys/fs/cgroup/unified/cgroup.controllers", "")
    w("sys/fs/cgroup/unified/cgroup.procs", "1\n")
    w("sys/fs/cgroup/unified/memory.pressure", psi(3.0, 1.0, 402311, 302311))
    w("sys/fs/cgroup/unified/system.slice/postfix.service/cgroup.procs", "300\n301\n302\n")
    w("sys/fs/cgroup/unified/system.slice/postfix.service/memory.pressure", psi(22.0, 9.5, 302311, 202311))
    w("sys/fs/cgroup/unified/system.slice/postfix.service/cgroup.freeze", "0\n")
    w("sys/fs/cgroup/unified/system.slice/postfix.service/cgroup.events", "populated 1\nfrozen 0\n")
    w("sys/fs/cgroup/systemd/cgroup.procs", "1\n")
    w("sys/fs/cgroup/systemd/system.slice/postfix.service/cgroup.procs", "300\n301\n302\n")
    w("sys/fs/cgroup/blkio/cgroup.procs", "1\n")

    for ctl in ("pids", "memory", "cpu,cpuacct", "freezer"):
        v1(ctl, "", {"cgroup.procs": "1\n2\n", "tasks": "1\n2\n"})
    v1("pids", "system.slice", {"cgroup.procs": "", "pids.current": "104\n", "pids.max": "max\n", "pids.events": "max 0\n"})
    v1("pids", "system.slice/postfix.service", {"cgroup.procs": "300\n301\n302\n", "pids.current": "100\n",
                                                "pids.max": "100\n", "pids.events": "max 212\n", "pids.peak": "100\n"})
    v1("pids", "system.slice/cron.service", {"cgroup.procs": "400\n", "pids.current": "1\n", "pids.max": "max\n",
                                             "pids.events": "max 0\n"})
    mem = {"cgroup.procs": "", "memory.usage_in_bytes": f"{900 << 20}\n", "memory.limit_in_bytes": UNLIMITED_V1,
           "memory.max_usage_in_bytes": f"{1 << 30}\n", "memory.failcnt": "0\n",
           "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
           "memory.stat": memory_stat_v1(600 << 20, 300 << 20),
           "memory.kmem.tcp.usage_in_bytes": "0\n", "memory.kmem.tcp.limit_in_bytes": UNLIMITED_V1,
           "memory.kmem.tcp.failcnt": "0\n", "memory.kmem.tcp.max_usage_in_bytes": "0\n"}
    v1("memory", "system.slice", mem)
    v1("memory", "system.slice/postfix.service", dict(mem, **{
        "cgroup.procs": "300\n301\n302\n", "memory.usage_in_bytes": f"{510 << 20}\n",
        "memory.limit_in_bytes": f"{512 << 20}\n", "memory.max_usage_in_bytes": f"{512 << 20}\n",
        "memory.failcnt": "4711\n", "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        "memory.stat": memory_stat_v1(400 << 20, 110 << 20, shmem=1 << 20),
        "memory.kmem.tcp.usage_in_bytes": f"{3 << 20}\n", "memory.kmem.tcp.max_usage_in_bytes": f"{4 << 20}\n"}))
    v1("cpu,cpuacct", "system.slice", {"cgroup.procs": "", "cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n",
                                       "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n"})
    v1("cpu,cpuacct", "system.slice/postfix.service", {
        "cgroup.procs": "300\n301\n302\n", "cpu.cfs_quota_us": "50000\n", "cpu.cfs_period_us": "100000\n",
        "cpu.stat": "nr_periods 5000\nnr_throttled 1200\nthrottled_time 48000000000\nnr_bursts 0\nburst_time 0\n"})
    v1("freezer", "system.slice/postfix.service", {"cgroup.procs": "300\n301\n302\n", "freezer.state": "THAWED\n"})
    v1("freezer", "quarantine", {"cgroup.procs": "500\n", "freezer.state": "FROZEN\n"})

    def cg(pidsp, memp, cpup, frz, named):
        return (f"12:blkio:/\n11:freezer:{frz}\n10:cpu,cpuacct:{cpup}\n9:memory:{memp}\n8:pids:{pidsp}\n"
                f"1:name=systemd:{named}\n0::{named}\n")
    pf = "/system.slice/postfix.service"
    proc(1, 0, "systemd", 0, cg("/", "/", "/", "/", "/init.scope"), start=1)
    proc(300, 1, "master", 0, cg(pf, pf, pf, pf, pf), rss_pages=1200, start=3200)
    proc(301, 300, "smtpd", 89, cg(pf, pf, pf, pf, pf), threads=1, rss_pages=1100, start=7000)
    proc(302, 300, "cleanup", 89, cg(pf, pf, pf, pf, pf), rss_pages=900, start=7001)
    proc(400, 1, "cron", 0, cg("/system.slice/cron.service", "/system.slice", "/system.slice", "/",
                               "/system.slice/cron.service"), start=800)
    proc(500, 1, "pkt-suspect", 1000, cg("/", "/", "/", "/quarantine", "/user.slice/user-1000.slice/session-2.scope"),
         start=9000)


if __name__ == "__main__":
    cgroup_v2()
    cgroup_hybrid()
