/*
 * stat.h — what a preloaded process publishes about itself for
 * `fastloop stat`, and the reader's side of that format.
 *
 * Each preloaded process that made at least one decision publishes one
 * file in the registry directory, named p-<pid>-<starttime> (starttime as
 * in /proc/<pid>/stat, clock ticks since boot), mode 0600, fixed size,
 * mapped MAP_SHARED by its owner:
 *
 *     struct stat_hdr (512 B)          struct stat_conn (128 B) x 4096
 *       magic "FLOOPSTA" (last)          sw   gen << 32 | state (seqlock)
 *       version, sizes, counts           tx, rx  bytes (relaxed atomics)
 *       pid, uid, start, netns, comm     since   CLOCK_BOOTTIME ns
 *       used (high-water mark)           local, peer as the app sees them
 *       unlisted, tr[], reason[]         server, transport
 *
 * Liveness is an exclusive flock the owner holds on the file for its whole
 * life (as for the handshake files): a reader whose LOCK_SH|LOCK_NB
 * succeeds has found a stale file.  The owner removes it at normal exit
 * (stat_at_exit); readers ignore and sweep stale ones.
 *
 * Writer: only the owning process.  An entry's fields are written while
 * its state is FREE, then the state LIVE with a new generation is stored
 * with release; closing stores FREE.  A reader loads the state with
 * acquire, copies the entry, fences (acquire) and re-loads the state: the
 * copy is good only if the word did not change (seqlock).
 *
 * Engine API (stat_*): everything returns a harmless value on failure and
 * publishes nothing; no threads, no exit(), safe with flp_mu held.
 * Reader API (stat_read_* / stat_parse*, in stat_read.c): used by
 * bin/fastloop-stat and the unit tests, never by the library.
 */
#ifndef FLP_STAT_H
#define FLP_STAT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "flp.h"

#define STAT_MAGIC 0x464c4f4f50535441ull /* "FLOOPSTA" */
#define STAT_VERSION 2
#define STAT_NCONN 4096
#define STAT_COMM 16

/* Transports counted (one decision per connection end). */
enum stat_tr { STAT_TR_UDS = 0, STAT_TR_SHM, STAT_TR_TCP, STAT_TR_OTHER, STAT_NTR };

/* Fallback reasons (README "Fallback reasons"); every error-* is ERROR,
 * a reason this build does not know is OTHER. */
enum stat_reason {
	STAT_R_NO_LISTENER = 0,
	STAT_R_PEER_NOT_PRELOADED,
	STAT_R_REVOKED,
	STAT_R_REVOKED_PEER_DATA,
	STAT_R_UID_MISMATCH,
	STAT_R_DISABLED,
	STAT_R_UNSUPPORTED,
	STAT_R_SERVER_DECLINED,
	STAT_R_SHORT_LIVED,
	STAT_R_ERROR,
	STAT_R_OTHER,
	STAT_NREASON
};

/* Entry states (low 32 bits of sw). */
enum { STAT_FREE = 0, STAT_LIVE = 1 };

/* An address as the app sees it: family AF_INET or AF_INET6; the address
 * is stored v4-mapped for AF_INET so that both ends' views compare. */
struct stat_addr {
	uint8_t addr[16];
	uint16_t port;          /* host order */
	uint8_t family;         /* AF_INET or AF_INET6 */
	uint8_t pad;
};

/* One live connection end.  Callers of the engine API touch only tx and
 * rx, through stat_add_tx/stat_add_rx. */
struct stat_conn {
	_Atomic uint64_t sw;    /* gen << 32 | STAT_FREE/STAT_LIVE */
	_Atomic uint64_t tx;    /* bytes the app sent on it */
	_Atomic uint64_t rx;    /* bytes the app received on it */
	uint64_t since;         /* CLOCK_BOOTTIME ns when it was opened */
	struct stat_addr local, peer;
	uint8_t server;         /* 1: accepted, 0: connected */
	uint8_t transport;      /* enum stat_tr */
	uint8_t pad[128 - 8 * 4 - 2 * 20 - 2];
};

struct stat_hdr {
	_Atomic uint64_t magic; /* written last (release) */
	uint32_t version;
	uint32_t hdr_size;      /* sizeof(struct stat_hdr) */
	uint32_t conn_size;     /* sizeof(struct stat_conn) */
	uint32_t nconn;         /* STAT_NCONN */
	uint32_t ntr;           /* STAT_NTR */
	uint32_t nreason;       /* STAT_NREASON */
	int32_t pid;
	uint32_t uid;           /* effective uid */
	uint64_t start;         /* starttime of pid (liveness, file name) */
	uint64_t netns;         /* inode of /proc/self/ns/net */
	uint64_t created;       /* CLOCK_BOOTTIME ns at publication */
	char comm[STAT_COMM];   /* program name, NUL-terminated */
	_Atomic uint32_t used;  /* entries [0, used) may be LIVE */
	uint32_t pad0;
	_Atomic uint64_t unlisted;              /* opens refused: table full */
	_Atomic uint64_t tr[STAT_NTR];          /* decisions by transport */
	_Atomic uint64_t reason[STAT_NREASON];  /* tcp decisions by reason */
	uint8_t pad[512 - 8 - 8 * 4 - 3 * 8 - STAT_COMM - 2 * 4 - 8 -
		    8 * STAT_NTR - 8 * STAT_NREASON];
};

#define STAT_FILE_SIZE (sizeof(struct stat_hdr) + \
			STAT_NCONN * sizeof(struct stat_conn))

static inline const char *stat_tr_name(unsigned i)
{
	static const char *const n[STAT_NTR] = { "uds", "shm", "tcp", "other" };

	return i < STAT_NTR ? n[i] : "?";
}

static inline const char *stat_reason_name(unsigned i)
{
	static const char *const n[STAT_NREASON] = {
		"no-listener", "peer-not-preloaded", "revoked",
		"revoked-peer-data", "uid-mismatch", "disabled", "unsupported",
		"server-declined", "short-lived", "error", "other",
	};

	return i < STAT_NREASON ? n[i] : "?";
}

/* ------------------------------------------------------------ engine */

/* Count one decision: transport "uds"/"shm"/"tcp"; reason NULL for a
 * fast connection, else the fallback reason as logged. */
void stat_count(const char *transport, const char *reason) FLP_HIDDEN;

/* List a live connection end; NULL when nothing could be published (the
 * table is full: counted as unlisted).  Every argument is copied. */
struct stat_conn *stat_conn_open(bool server, const struct sockaddr *local,
				 socklen_t llen, const struct sockaddr *peer,
				 socklen_t plen, const char *transport)
	FLP_HIDDEN;

/* Remove an entry from the list; NULL and entries not of this process's
 * current file are ignored. */
void stat_conn_close(struct stat_conn *c) FLP_HIDDEN;

/* The data hooks: count bytes moved by a successful call.  Relaxed:
 * readers want totals, not ordering. */
static inline void stat_add_tx(struct stat_conn *c, ssize_t n)
{
	if (c && n > 0)
		atomic_fetch_add_explicit(&c->tx, (uint64_t)n,
					  memory_order_relaxed);
}

static inline void stat_add_rx(struct stat_conn *c, ssize_t n)
{
	if (c && n > 0)
		atomic_fetch_add_explicit(&c->rx, (uint64_t)n,
					  memory_order_relaxed);
}

/* In a fork child (after flp_pid is updated).  See stat.c. */
void stat_after_fork_child(void) FLP_HIDDEN;

/* Normal exit: remove this process's file. */
void stat_at_exit(void) FLP_HIDDEN;

/* ------------------------------------------------------------ reader */

/* A validated copy of one process's file. */
struct stat_proc {
	struct stat_hdr hdr;            /* snapshot; comm is terminated */
	struct stat_conn *conns;        /* the live entries (malloc) */
	unsigned nconns;
	char name[64];                  /* file name in its directory */
	char dir[256];
};

/* A validated copy of one listener's handshake file (reg.c's format). */
struct stat_listener {
	struct reg_addr bound;
	bool v6only;
	int32_t pid;
	uint32_t uid;
	uint64_t start;
	uint64_t netns;
	char name[96];
	char dir[256];
};

int stat_parse(const void *map, size_t size, uid_t uid, struct stat_hdr *hdr,
	       struct stat_conn *out, unsigned cap, unsigned *n,
	       const char **why) FLP_HIDDEN;
int stat_parse_listener(const void *map, size_t size, uid_t uid,
			struct stat_listener *l, const char **why) FLP_HIDDEN;
int stat_read_proc(const char *dir, const char *name, bool sweep,
		   struct stat_proc *p, const char **why) FLP_HIDDEN;
int stat_read_listener(const char *dir, const char *name,
		       struct stat_listener *l, const char **why) FLP_HIDDEN;
void stat_proc_free(struct stat_proc *p) FLP_HIDDEN;
const char *stat_addr_str(const struct stat_addr *a, char *buf, size_t len)
	FLP_HIDDEN;
const char *stat_reg_addr_str(const struct reg_addr *a, char *buf, size_t len)
	FLP_HIDDEN;
bool stat_addr_eq(const struct stat_addr *a, const struct stat_addr *b)
	FLP_HIDDEN;

#endif /* FLP_STAT_H */
