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
 * The records go to an array map, not to the iterator's seq_file: what one
 * task's call writes there must fit in the seq_file's buffer (8 pages,
 * bpf_seq_read says E2BIG otherwise), and a server holding 10,000 sockets
 * writes 240 KB. (A ring buffer would do too, but its reader maps all of
 * it, twice, into picket: megabytes of RSS.) next counts the records; a
 * record past the array's end is counted in dropped, and picket then does
 * not trust the pass. picket zeroes both before each pass, and after it
 * maps the array (BPF_F_MMAPABLE, set at load) as far as next to read it.
 * The program only reads the kernel; its loops are bpf_loop's over the
 * table's words (at most max_fds/64) and 64 bits. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "sock_rec.h"

/* include/uapi/linux/bpf.h */
#define BPF_MAP_TYPE_ARRAY 2

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
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << 16);
	__type(key, __u32);
	__type(value, struct sock_rec);
} records SEC(".maps");

/* The records this pass wrote (or would have), and those past the end. */
__u64 next;
__u64 dropped;

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
	for (int b = 0; b < 64; b++) {
		if (!(bits & (1UL << b)))
			continue;
		__u32 fd = i * 64 + b;
		__u64 fp = 0;
		if (bpf_probe_read_kernel(&fp, sizeof(fp), (void *)(w->fds + (__u64)fd * sizeof(fp))))
			break;
		if (!fp)
			continue; /* reserved by an open not yet installed */
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
		__u32 at = __sync_fetch_and_add(&next, 1);
		struct sock_rec *slot = bpf_map_lookup_elem(&records, &at);
		if (!slot) {
			__sync_fetch_and_add(&dropped, 1);
			continue;
		}
		*slot = r;
	}
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
