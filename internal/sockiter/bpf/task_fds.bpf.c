// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/* The records of task_file.bpf.c (struct sock_rec: one per open fd, with
 * the socket's inode, family, type, protocol and state when it is one),
 * from an iter/task program that walks each process's file table itself,
 * as /proc/PID/fd's readdir does under RCU (proc_readfd_common): the bits
 * of open_fds, then the file installed at each. The task_file iterator
 * instead takes and drops a reference on every file it hands over
 * (fget_task_next, kernel/bpf/task_iter.c), an atomic write to every
 * struct file and about half of its pass at 40,000 fds. No reference is
 * taken here: a file being closed meanwhile may still be read, each load
 * guarded by the kernel's exception table, and says what a racing
 * readlink of /proc/PID/fd would have said a moment earlier.
 *
 * The records go to a ring buffer, not to the iterator's seq_file: what
 * one task's call writes there must fit in the seq_file's buffer (8 pages,
 * bpf_seq_read says E2BIG otherwise), and a server holding 10,000 sockets
 * writes 240 KB. They are written 64 at a time (a word of open_fds), each
 * bpf_ringbuf_output taking the ring's lock with interrupts off. A record
 * that finds the ring full is counted in dropped, and picket then does not
 * trust the pass. The program only reads the kernel; its loops are
 * bpf_loop's over the table's words (at most max_fds/64) and 64 bits. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "sock_rec.h"

/* include/uapi/linux/bpf.h */
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_RINGBUF 27
#define BPF_RB_NO_WAKEUP 1

/* bpf_rdonly_cast (6.2): a typed pointer that may be read (each load
 * guarded by the exception table) but handed to no helper. */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define cast(ptr, type) ((type *)bpf_rdonly_cast((void *)(ptr), bpf_core_type_id_kernel(type)))

/* SOCKFS_MAGIC (include/uapi/linux/magic.h): a file on sockfs is a socket
 * (sock_alloc_file, whose private_data is the struct socket), what
 * /proc/PID/fd shows as "socket:[INODE]". An O_PATH fd of a socket's path
 * on disk is on that disk's filesystem, and no socket. */
#define SOCKFS_MAGIC 0x534F434B


/* Its size is set by picket at load (walk.go). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} records SEC(".maps");

/* Records that found the ring full since picket last zeroed it. */
__u64 dropped;

/* One word's records, built here and written to the ring at once; n is in
 * the map, not on the stack, so that the verifier does not follow every
 * count through the 64 bits. */
struct batch {
	struct sock_rec r[64];
	__u32 n;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct batch);
} scratch SEC(".maps");

struct walk {
	__u64 fds;      /* fdt->fd: struct file ** */
	__u64 open_fds; /* fdt->open_fds: unsigned long * */
	__u32 tgid;
};

static long word(__u64 i, void *data)
{
	struct walk *w = data;
	unsigned long bits = 0;

	if (bpf_probe_read_kernel(&bits, sizeof(bits), (void *)(w->open_fds + i * sizeof(bits))))
		return 1;
	if (!bits)
		return 0;
	__u32 zero = 0;
	struct batch *bt = bpf_map_lookup_elem(&scratch, &zero);
	if (!bt)
		return 1;
	bt->n = 0;
	for (int b = 0; b < 64; b++) {
		if (!(bits & (1UL << b)))
			continue;
		__u32 fd = i * 64 + b;
		__u64 fp = 0;
		if (bpf_probe_read_kernel(&fp, sizeof(fp), (void *)(w->fds + (__u64)fd * sizeof(fp))))
			break;
		if (!fp)
			continue; /* reserved by an open not yet installed */
		__u32 n = bt->n;
		if (n >= 64)
			break;
		struct file *file = cast(fp, struct file);
		struct sock_rec r = {};
		r.tgid = w->tgid;
		r.fd = fd;
		struct inode *inode = file->f_inode;
		if (inode && inode->i_sb->s_magic == SOCKFS_MAGIC) {
			r.ino = inode->i_ino;
			struct socket *sock = cast(file->private_data, struct socket);
			r.type = sock->type;
			struct sock *sk = sock->sk;
			if (sk) {
				r.family = sk->__sk_common.skc_family;
				r.state = sk->__sk_common.skc_state;
				r.protocol = sk->sk_protocol;
			}
		}
		bt->r[n] = r;
		bt->n = n + 1;
	}
	__u64 sz = (__u64)bt->n * sizeof(struct sock_rec);
	asm volatile("" : "+r"(sz)); /* bound the size itself, not n */
	if (sz == 0 || sz > sizeof(bt->r))
		return 0;
	if (bpf_ringbuf_output(&records, bt, sz, BPF_RB_NO_WAKEUP))
		__sync_fetch_and_add(&dropped, sz / sizeof(struct sock_rec));
	return 0;
}

SEC("iter/task")
int task_fds(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;

	/* /proc/PID/fd is the leader's table; a thread that unshared its
	 * own (unshare(CLONE_FILES)) is in neither. */
	if (!task || task->pid != task->tgid)
		return 0;
	struct files_struct *files = task->files;
	if (!files)
		return 0; /* exiting, or a kernel thread */
	struct fdtable *fdt = files->fdt;
	struct walk w = {
		.fds = (__u64)fdt->fd,
		.open_fds = (__u64)fdt->open_fds,
		.tgid = task->tgid,
	};
	bpf_loop((fdt->max_fds + 63) / 64, word, &w, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
