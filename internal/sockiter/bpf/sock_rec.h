/* The record of one open fd, written by task_file.bpf.c and task_fds.bpf.c
 * alike. Keep in step with decodeSocket in sockiter.go (24 bytes, little or
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
	__u8 pad;
};

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
	}
}

#endif
