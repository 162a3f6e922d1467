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
 * not trust the pass. picket zeroes both (and sets host_netns) before
 * each pass, and after it maps the array (BPF_F_MMAPABLE, set at load) as
 * far as next to read it.
 *
 * Told the host's network namespace (host_netns, which picket sets before
 * each pass; 0 lists every fd), the walk writes a record only for what
 * picket needs one of: a socket the host's sock_diag dumps do not list
 * (unbound, another namespace's, netlink, raw, packet...). The rest, the
 * fds that are no socket and the TCP, UDP and unix sockets hashed in the
 * host's tables, it counts, and writes the counts as one struct count_rec
 * after the task's records: at 31,000 sockets those were nine records in
 * ten, a MiB of fresh pages for picket's heap every pass.
 *
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

/* include/linux/socket.h, include/linux/net.h, include/uapi/linux/in.h */
#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

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
/* The inode of the host's network namespace (0: count nothing). */
__u32 host_netns;

/* What the task at hand has had counted rather than written: fds in all,
 * then sockets by kind (struct count_rec). Here, not in struct walk on
 * the stack: the verifier tracks a counter there as a constant, and
 * walking the callback as a loop (kernel/bpf/verifier.c, callbacks
 * verified as called any number of times) it found each count a state of
 * its own, a load of ~110 ms instead of ~27; a global's value it reads as
 * unknown. */
struct {
	__u32 fds;
	__u32 tcp;
	__u32 udp;
	__u32 unix_;
} counts;

struct walk {
	__u64 fds;      /* fdt->fd: struct file ** */
	__u64 open_fds; /* fdt->open_fds: unsigned long * */
	__u64 bits;     /* the open fds of the word at hand not yet seen */
	__u32 base;     /* its first fd */
	__u32 tgid;
	__u32 netns;    /* host_netns */
};

/* put writes one record at the end of the array, or counts it dropped. */
static __always_inline void put(const struct sock_rec *r)
{
	__u32 at = __sync_fetch_and_add(&next, 1);
	struct sock_rec *slot = bpf_map_lookup_elem(&records, &at);
	if (!slot) {
		__sync_fetch_and_add(&dropped, 1);
		return;
	}
	*slot = *r;
}

/* counted says whether r is one the walk counts instead of writing, and
 * counts it. The kinds are picket's (kindOfSocket in internal/collect)
 * for the tables it dumps (dumpTable): any unix socket; TCP and UDP by
 * family, type and protocol, so that MPTCP, UDP-Lite and ping sockets,
 * which those dumps do not list, keep their records. */
static __always_inline int counted(struct walk *w, const struct sock_rec *r)
{
	if (!w->netns)
		return 0;
	if (!r->ino) {
		counts.fds++;
		return 1;
	}
	if (!(r->flags & SOCK_REC_HASHED) || r->netns != w->netns)
		return 0;
	if (r->family == AF_UNIX) {
		counts.unix_++;
	} else if (r->family != AF_INET && r->family != AF_INET6) {
		return 0;
	} else if (r->type == SOCK_STREAM && r->protocol == IPPROTO_TCP) {
		counts.tcp++;
	} else if (r->type == SOCK_DGRAM && r->protocol == IPPROTO_UDP) {
		counts.udp++;
	} else {
		return 0;
	}
	counts.fds++;
	return 1;
}

/* The lowest bit set in x (not 0), without a table: BPF has no ctz. */
static __always_inline __u32 lowest(__u64 x)
{
	__u64 low = x & -x;
	__u32 i = 0;
	if (low & 0xFFFFFFFF00000000ULL)
		i += 32;
	if (low & 0xFFFF0000FFFF0000ULL)
		i += 16;
	if (low & 0xFF00FF00FF00FF00ULL)
		i += 8;
	if (low & 0xF0F0F0F0F0F0F0F0ULL)
		i += 4;
	if (low & 0xCCCCCCCCCCCCCCCCULL)
		i += 2;
	if (low & 0xAAAAAAAAAAAAAAAAULL)
		i += 1;
	return i;
}

/* One open fd: the lowest bit of w->bits. A callback of bpf_loop rather
 * than a loop of 64 the verifier would follow bit by bit (16,000
 * instructions, ~15 ms of every load). */
static long one(__u64 unused, void *data)
{
	struct walk *w = data;

	if (!w->bits)
		return 1;
	__u32 fd = w->base + lowest(w->bits);
	w->bits &= w->bits - 1;
	__u64 fp = 0;
	if (bpf_probe_read_kernel(&fp, sizeof(fp), (void *)(w->fds + (__u64)fd * sizeof(fp))))
		return 1;
	if (!fp)
		return 0; /* reserved by an open not yet installed */
	struct file *file = cast(fp, struct file);
	struct sock_rec r = {};
	r.tgid = w->tgid;
	r.fd = fd;
	struct inode *inode = file->f_inode;
	if (inode && inode->i_sb->s_magic == SOCKFS_MAGIC) {
		r.ino = inode->i_ino;
		sock_fields(&r, cast(file->private_data, struct socket));
	}
	if (!counted(w, &r))
		put(&r);
	return 0;
}

/* One word of open_fds: its 64 fds. */
static long word(__u64 i, void *data)
{
	struct walk *w = data;
	unsigned long bits = 0;

	if (bpf_probe_read_kernel(&bits, sizeof(bits), (void *)(w->open_fds + i * sizeof(bits))))
		return 1;
	w->bits = bits;
	w->base = i * 64;
	if (bits)
		bpf_loop(__builtin_popcountll(bits), one, w, 0);
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
		.netns = host_netns,
	};
	counts.fds = counts.tcp = counts.udp = counts.unix_ = 0;
	bpf_loop((fdt->max_fds + 63) / 64, word, &w, 0);
	if (counts.fds) {
		struct count_rec c = {
			.tgid = w.tgid,
			.fds = counts.fds,
			.tcp = counts.tcp,
			.udp = counts.udp,
			.unix_ = counts.unix_,
			.flags = SOCK_REC_COUNTS,
		};
		put((const struct sock_rec *)&c);
	}
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
