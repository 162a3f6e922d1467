/* The kernel types task_file.bpf.c reads, as `bpftool btf dump file
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

struct task_struct {
	int pid;  /* pid_t: the thread's id in the initial pid namespace */
	int tgid; /* the thread group's: the pid of /proc/PID */
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

struct sock_common {
	unsigned short skc_family;
	volatile unsigned char skc_state;
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

#pragma clang attribute pop

#endif
