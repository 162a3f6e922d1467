/* The kernel types task_file.bpf.c, task.bpf.c and task_fds.bpf.c read, as `bpftool btf dump file
 * /sys/kernel/btf/vmlinux format c` prints them, cut down to the fields
 * used. preserve_access_index makes every access a CO-RE relocation: the
 * loader (cilium/ebpf) moves each offset to where the running kernel's BTF
 * has the field, so one object runs on every kernel with BTF (≥ 5.8 for
 * the iterator). A full vmlinux.h is 2.8 MB of one kernel's layout; these
 * few structs are all the program needs, and reviewable. */
#ifndef PICKET_VMLINUX_H
#define PICKET_VMLINUX_H

typedef unsigned char __u8;
typedef short int __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
enum { false = 0, true = 1 };

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
	__u64 session_id;
	__u64 seq_num;
};

typedef struct {
	unsigned int val;
} kuid_t;

typedef struct {
	unsigned int val;
} kgid_t;

/* kuid_t and kgid_t are the ids of the initial user namespace: what
 * /proc/PID/status prints to a reader in it (from_kuid_munged). */
struct cred {
	kuid_t uid;
	kgid_t gid;
	kuid_t euid;
	kgid_t egid;
};

/* A u64 since 6.2 made the rss counters percpu_counters; count is the
 * approximate sum, what get_mm_counter reads (percpu_counter_read_positive). */
struct percpu_counter {
	__s64 count;
};

struct mm_struct {
	unsigned long total_vm;
	struct percpu_counter rss_stat[4]; /* MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES */
};

struct signal_struct {
	int nr_threads;
};

struct ns_common {
	unsigned int inum;
};

struct net {
	struct ns_common ns;
};

struct nsproxy {
	struct net *net_ns;
};

struct kernfs_node {
	__u64 id; /* the inode number of the cgroup's directory (kernfs_ino) */
};

struct cgroup_root {
	int hierarchy_id; /* the first field of a /proc/PID/cgroup line */
};

struct cgroup {
	struct kernfs_node *kn;
	struct cgroup_root *root;
};

struct list_head {
	struct list_head *next;
	struct list_head *prev;
};

/* One of a css_set's cgroups, one per hierarchy (kernel/cgroup/cgroup.c,
 * link_css_set): its cgrp_link is on the css_set's cgrp_links. */
struct cgrp_cset_link {
	struct cgroup *cgrp;
	struct list_head cgrp_link;
};

struct css_set {
	struct list_head cgrp_links;
};

/* The open file table (include/linux/fdtable.h): open_fds has a bit per
 * fd in use, fd the file installed there (NULL while an open is under
 * way). */
struct fdtable {
	unsigned int max_fds;
	struct file **fd;
	unsigned long *open_fds;
};

struct files_struct {
	struct fdtable *fdt;
};

struct task_struct {
	unsigned int __state;
	unsigned int flags;
	struct mm_struct *mm;
	int exit_state;
	int pid;  /* pid_t: the thread's id in the initial pid namespace */
	int tgid; /* the thread group's: the pid of /proc/PID */
	struct task_struct *real_parent;
	void *thread_pid;
	__u64 start_boottime;
	const struct cred *real_cred;
	char comm[16];
	struct nsproxy *nsproxy;
	struct signal_struct *signal;
	struct css_set *cgroups;
	struct files_struct *files;
};

struct super_block {
	unsigned long s_magic;
};

struct inode {
	struct super_block *i_sb;
	unsigned long i_ino;
};

struct file {
	struct inode *f_inode;
	void *private_data;
};

struct hlist_node {
	struct hlist_node *next, **pprev;
};

/* The kernel's skc_node shares an anonymous union with skc_nulls_node
 * (same layout: TCP's hashes are nulls lists, UDP's and unix's plain
 * ones); the loader finds a field of an anonymous member by its name. */
struct sock_common {
	unsigned short skc_family;
	volatile unsigned char skc_state;
	struct {
		struct net *net;
	} skc_net; /* possible_net_t */
	struct hlist_node skc_node;
};

struct sock {
	struct sock_common __sk_common;
	__u16 sk_protocol; /* a u16 since 5.6 (bpf_iter is 5.8) */
};

struct socket {
	short type;
	struct sock *sk;
};

/* The context of an iter/task_file program (kernel/bpf/task_iter.c). */
struct bpf_iter__task_file {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
	__u32 fd;
	struct file *file;
};

/* The context of an iter/task program (kernel/bpf/task_iter.c). */
struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
};

#pragma clang attribute pop

#endif
