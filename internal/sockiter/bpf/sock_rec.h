/* The record of one open fd, written by task_file.bpf.c and task_fds.bpf.c
 * alike (and task_fds.bpf.c's count of a task's other fds, struct
 * count_rec). Keep in step with decodeSocket in sockiter.go (32 bytes, little or
 * big endian as the kernel). An fd that is no socket has ino 0 (no socket
 * has inode 0: get_next_ino starts at 1). */
#ifndef PICKET_SOCK_REC_H
#define PICKET_SOCK_REC_H

struct sock_rec {
	__u32 tgid;
	__u32 fd;
	__u64 ino;
	__u16 family;
	__u16 type;
	__u16 protocol;
	__u8 state;
	__u8 flags; /* SOCK_REC_HASHED */
	__u32 netns; /* the inode of the socket's network namespace */
	__u32 pad;
};

/* The socket is in its protocol's lookup table (sk_hashed, in
 * include/net/sock.h): the very lists sock_diag dumps and /proc/net
 * prints. TCP listeners and connections (inet_hash, inet_ehash_insert),
 * bound or connected UDP sockets (udp_lib_get_port) and every unix socket
 * (unix_insert_unbound_socket) are linked through skc_node or the nulls
 * list that shares its place; an unbound or closed one is not. */
#define SOCK_REC_HASHED 1

/* The record is a struct count_rec (task_fds.bpf.c only). */
#define SOCK_REC_COUNTS 4

/* What the fd walk, told the host's network namespace, did not write one
 * record each for: a task's fds that are no socket, and its sockets that
 * the host's sock_diag dumps list (hashed there, TCP, UDP or unix), by
 * kind. picket reads nothing of those but their kind; counted here, a
 * pass of 40,000 fds writes about a tenth as many records. It follows the
 * task's records, in the same array, and shares struct sock_rec's size
 * and the place of its flags. Keep in step with appendRecord in
 * sockiter.go. */
struct count_rec {
	__u32 tgid;
	__u32 fds; /* the fds not written as a struct sock_rec */
	__u32 tcp;
	__u32 udp;
	__u32 unix_;
	__u8 pad[3];
	__u8 flags; /* SOCK_REC_COUNTS */
	__u64 pad2;
};

_Static_assert(sizeof(struct count_rec) == sizeof(struct sock_rec), "one size of record");
_Static_assert(__builtin_offsetof(struct count_rec, flags) == __builtin_offsetof(struct sock_rec, flags), "one place of flags");

/* The socket's own fields: what it is, and its state (TCP_* for TCP,
 * TCP_ESTABLISHED for a connected UDP or unix socket); all zero but the
 * type for a socket with no struct sock left (one being torn down). sock
 * is a typed pointer (BTF), so each load is one instruction guarded by
 * the kernel's exception table. */
static __always_inline void sock_fields(struct sock_rec *r, struct socket *sock)
{
	r->type = sock->type;
	struct sock *sk = sock->sk;
	if (sk) {
		r->family = sk->__sk_common.skc_family;
		r->state = sk->__sk_common.skc_state;
		r->protocol = sk->sk_protocol;
		if (sk->__sk_common.skc_node.pprev)
			r->flags |= SOCK_REC_HASHED;
		struct net *net = sk->__sk_common.skc_net.net;
		if (net)
			r->netns = net->ns.inum;
	}
}

#endif
