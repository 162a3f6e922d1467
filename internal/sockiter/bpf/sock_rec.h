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

#endif
