// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/* One pass over every process, inside the kernel: for each thread-group
 * leader, one fixed-size record (struct task_rec) of what picket otherwise
 * reads from /proc/PID/stat, /proc/PID/status and /proc/PID/cgroup, three
 * files formatted as text by the kernel and parsed back by picket, about
 * 30 µs a process. The program only reads; its one loop (the task's
 * cgroups, one per hierarchy) is bounded by MAX_CGROUPS. Turning the raw
 * fields into what /proc prints (the state letter, start time in clock
 * ticks, cgroup paths) is left to picket (sockiter.go), where it is
 * tested. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* A host has one hierarchy per mounted v1 controller group, named ones
 * (name=systemd) and the unified one: CGROUP_SUBSYS_COUNT (at most 16
 * controllers today) bounds the controllers; 16 covers every real host.
 * A task in more hierarchies than that has cgroups left out, which
 * picket notices (ncgroups == MAX_CGROUPS) and reads from /proc. */
#define MAX_CGROUPS 16

/* Keep in step with taskRecord in task.go (232 bytes). */
struct task_rec {
	__u32 tgid;
	__u32 ppid;
	__u32 uid, euid, gid, egid;
	__u64 start_boottime; /* ns since boot, suspend included */
	__u64 rss_pages;      /* get_mm_rss: file + anon + shmem */
	__u64 total_vm;       /* pages */
	__u32 state;          /* __state */
	__u32 exit_state;
	__u32 flags; /* PF_* */
	__u32 nr_threads;
	__u32 netns; /* the inode of /proc/PID/ns/net */
	__u32 ncgroups;
	char comm[16];
	__u64 cgroup_id[MAX_CGROUPS]; /* kernfs id: the inode of the cgroup's directory */
	__u8 hierarchy[MAX_CGROUPS];
};

SEC("iter/task")
int task_info(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;

	if (!task)
		return 0;
	/* /proc lists thread-group leaders; their threads are in task/. */
	if (task->pid != task->tgid)
		return 0;

	struct task_rec r = {};
	r.tgid = task->tgid;
	/* do_task_stat (fs/proc/array.c): the parent's tgid, 0 for a task
	 * already unhashed (pid_alive) and for pid 1 and 2, whose parent is
	 * the idle task. */
	if (BPF_CORE_READ(task, thread_pid))
		r.ppid = BPF_CORE_READ(task, real_parent, tgid);
	const struct cred *cred = BPF_CORE_READ(task, real_cred);
	if (cred) {
		r.uid = BPF_CORE_READ(cred, uid.val);
		r.euid = BPF_CORE_READ(cred, euid.val);
		r.gid = BPF_CORE_READ(cred, gid.val);
		r.egid = BPF_CORE_READ(cred, egid.val);
	}
	r.start_boottime = BPF_CORE_READ(task, start_boottime);
	r.state = BPF_CORE_READ(task, __state);
	r.exit_state = BPF_CORE_READ(task, exit_state);
	r.flags = BPF_CORE_READ(task, flags);
	r.nr_threads = BPF_CORE_READ(task, signal, nr_threads);
	bpf_probe_read_kernel_str(r.comm, sizeof(r.comm), task->comm);

	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	if (mm) {
		r.total_vm = BPF_CORE_READ(mm, total_vm);
		__s64 rss = 0, v;
		/* get_mm_counter clamps each counter at 0
		 * (percpu_counter_read_positive). */
		v = BPF_CORE_READ(mm, rss_stat[0].count);
		rss += v > 0 ? v : 0;
		v = BPF_CORE_READ(mm, rss_stat[1].count);
		rss += v > 0 ? v : 0;
		v = BPF_CORE_READ(mm, rss_stat[3].count);
		rss += v > 0 ? v : 0;
		r.rss_pages = rss;
	}
	r.netns = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);

	struct css_set *cset = BPF_CORE_READ(task, cgroups);
	if (cset) {
		struct list_head *head = &cset->cgrp_links;
		struct list_head *pos = BPF_CORE_READ(head, next);
		__u32 off = bpf_core_field_offset(struct cgrp_cset_link, cgrp_link);
		for (int i = 0; i < MAX_CGROUPS; i++) {
			if (!pos || pos == head)
				break;
			struct cgrp_cset_link *l = (void *)pos - off;
			struct cgroup *cg = BPF_CORE_READ(l, cgrp);
			r.cgroup_id[i] = BPF_CORE_READ(cg, kn, id);
			r.hierarchy[i] = BPF_CORE_READ(cg, root, hierarchy_id);
			r.ncgroups = i + 1;
			pos = BPF_CORE_READ(pos, next);
		}
	}
	bpf_seq_write(seq, &r, sizeof(r));
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
