/*
 * fuse_uring_abi: the parts of the kernel's FUSE ABI that Debian 12's
 * <linux/fuse.h> (protocol 7.38) lacks, as include/uapi/linux/fuse.h of
 * Linux 6.14 and later and Documentation/filesystems/fuse-io-uring.rst
 * define them: FUSE over io_uring (protocol 7.42), FUSE_NOTIFY_RESEND (7.40)
 * and the INIT flags relocfs negotiates beyond bit 31.
 *
 * INIT flags 32..63 travel in fuse_init_in/out.flags2 (bit - 32); the kernel
 * reads flags2 of a reply only if the reply's flags carry FUSE_INIT_EXT.
 */
#ifndef RELOCFS_FUSE_URING_ABI_H
#define RELOCFS_FUSE_URING_ABI_H

#include <stdint.h>

#include <linux/fuse.h>

/* flags2 bits (INIT flag bit - 32) */
#define FUSE2_DIRECT_IO_ALLOW_MMAP	(1u << (36 - 32))	/* Linux 6.6 */
#define FUSE2_HAS_RESEND		(1u << (39 - 32))	/* Linux 6.9 */
#define FUSE2_OVER_IO_URING		(1u << (41 - 32))	/* Linux 6.14 */

#ifndef FUSE_NOTIFY_RESEND
#define FUSE_NOTIFY_RESEND	7
#endif
#ifndef FUSE_UNIQUE_RESEND
#define FUSE_UNIQUE_RESEND	(1ULL << 63)	/* set in the id of a resent request */
#endif

#define FUSE_URING_IN_OUT_HEADER_SZ	128
#define FUSE_URING_OP_IN_OUT_SZ		128

/* The last part of an entry's header buffer. */
struct fuse_uring_ent_in_out {
	uint64_t flags;
	/* set by the kernel when it hands a request over (the request's
	 * unique); given back in the command that commits the reply */
	uint64_t commit_id;
	/* bytes of payload in the payload buffer, in both directions */
	uint32_t payload_sz;
	uint32_t padding;
	uint64_t reserved;
};

/* iov[0] of every ring entry. */
struct fuse_uring_req_header {
	/* struct fuse_in_header of a request, struct fuse_out_header of a reply */
	char in_out[FUSE_URING_IN_OUT_HEADER_SZ];
	/* the opcode's own header (the request's first argument) */
	char op_in[FUSE_URING_OP_IN_OUT_SZ];
	struct fuse_uring_ent_in_out ring_ent_in_out;
};

/* sqe->cmd_op of an IORING_OP_URING_CMD on /dev/fuse */
enum fuse_uring_cmd {
	FUSE_IO_URING_CMD_INVALID = 0,
	/* register an entry's buffers (sqe->addr: struct iovec[2], sqe->len
	 * 2) and wait for a request */
	FUSE_IO_URING_CMD_REGISTER = 1,
	/* commit the reply in the entry's buffers, wait for the next request */
	FUSE_IO_URING_CMD_COMMIT_AND_FETCH = 2,
};

/* In the command area of a 128-byte SQE (sqe->cmd). */
struct fuse_uring_cmd_req {
	uint64_t flags;
	uint64_t commit_id;	/* COMMIT_AND_FETCH: the request's commit id */
	uint16_t qid;		/* queue: the CPU the requests come from */
	uint8_t padding[6];
};

_Static_assert(sizeof(struct fuse_uring_ent_in_out) == 32, "fuse_uring_ent_in_out");
_Static_assert(sizeof(struct fuse_uring_req_header) == 288, "fuse_uring_req_header");
_Static_assert(sizeof(struct fuse_uring_cmd_req) == 24, "fuse_uring_cmd_req");

#endif
