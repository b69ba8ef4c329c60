/*
 * flp.h — the engine's internal interface.
 *
 * Everything here is hidden (-fvisibility=hidden); only the hooks in
 * preload/ are exported.  Engine functions return a value >= 0 on success
 * and -errno on failure; the hooks convert once with flp_ret().
 */
#ifndef FLP_H
#define FLP_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <poll.h>
#include <signal.h>
#include <netinet/in.h>

#define FLP_HIDDEN __attribute__((visibility("hidden")))
#define FLP_UNUSED __attribute__((unused))

struct stat_conn;
struct shm_conn;

/* ------------------------------------------------------------------ real */

/* The libc functions we interpose, resolved once with dlsym(RTLD_NEXT). */
struct flp_real {
	int (*socket)(int, int, int);
	int (*bind)(int, const struct sockaddr *, socklen_t);
	int (*listen)(int, int);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	int (*close)(int);
	int (*close_range)(unsigned, unsigned, int); /* optional */
	int (*shutdown)(int, int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	int (*ioctl)(int, unsigned long, ...);
	int (*getsockname)(int, struct sockaddr *, socklen_t *);
	int (*getpeername)(int, struct sockaddr *, socklen_t *);
	int (*getsockopt)(int, int, int, void *, socklen_t *);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*sendto)(int, const void *, size_t, int,
			  const struct sockaddr *, socklen_t);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	ssize_t (*recv)(int, void *, size_t, int);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *,
			    socklen_t *);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*readv)(int, const struct iovec *, int);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*sendfile)(int, int, off_t *, size_t);
	ssize_t (*splice)(int, loff_t *, int, loff_t *, size_t, unsigned);
	int (*sendmmsg)(int, struct mmsghdr *, unsigned, int);
	int (*recvmmsg)(int, struct mmsghdr *, unsigned, int, struct timespec *);
	int (*poll)(struct pollfd *, nfds_t, int);
	int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *,
		     const sigset_t *);
	int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
	int (*pselect)(int, fd_set *, fd_set *, fd_set *,
		       const struct timespec *, const sigset_t *);
	int (*epoll_ctl)(int, int, int, struct epoll_event *);
	int (*epoll_wait)(int, struct epoll_event *, int, int);
	int (*epoll_pwait)(int, struct epoll_event *, int, int,
			   const sigset_t *);
	int (*epoll_pwait2)(int, struct epoll_event *, int,
			    const struct timespec *, const sigset_t *); /* optional */
	pid_t (*fork)(void);
	int (*sigaction)(int, const struct sigaction *, struct sigaction *);
	int (*execve)(const char *, char *const[], char *const[]);
	int (*execveat)(int, const char *, char *const[], char *const[], int); /* optional */
	int (*fexecve)(int, char *const[], char *const[]);
	int (*execvpe)(const char *, char *const[], char *const[]);
};

extern struct flp_real flp_real FLP_HIDDEN;

void flp_real_resolve(void) FLP_HIDDEN;

/* Library init: once per process, from the constructor or the first hook. */
void flp_init(void) FLP_HIDDEN;
extern bool flp_ready FLP_HIDDEN;


static inline long flp_ret(long r)
{
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

/* ------------------------------------------------------------------ cfg */

enum flp_transport { FLP_TR_OFF = 0, FLP_TR_AUTO, FLP_TR_UDS, FLP_TR_SHM };

struct flp_cfg {
	int transport;          /* enum flp_transport */
	int log_level;          /* enum flp_log_level */
	char log_file[256];     /* "" = stderr */
	char dir[256];          /* registry directory */
	size_t retain;          /* bytes a PENDING client sends over TCP before
				 * it stops waiting for an adoption */
	int accept_wait_us;     /* how long accept waits for an unfilled claim */
	int decide_wait_us;     /* ... and the first data call, before TCP */
	int spin_us;            /* a pending client spins this long for TAKEN;
				 * a shm reader or writer this long before it sleeps */
	int switch_after;       /* a server adopts at its data call after this
				 * many that moved bytes (0: in accept) */
	size_t ring;            /* shm: ring bytes per direction (power of two) */
	bool setuid;            /* environment ignored */
};

extern struct flp_cfg flp_cfg FLP_HIDDEN;

void cfg_defaults(struct flp_cfg *c) FLP_HIDDEN;
int cfg_set(struct flp_cfg *c, const char *key, const char *val) FLP_HIDDEN;
int cfg_load_file(struct flp_cfg *c, const char *path) FLP_HIDDEN;
void cfg_load_env(struct flp_cfg *c) FLP_HIDDEN;
const char *cfg_transport_name(int t) FLP_HIDDEN;

/* ------------------------------------------------------------------ log */

enum flp_log_level { FLP_LOG_OFF = 0, FLP_LOG_ERR, FLP_LOG_WARN,
		     FLP_LOG_INFO, FLP_LOG_DBG };

void log_open(void) FLP_HIDDEN;
void log_write(int level, const char *func, const char *file, int line,
	       const char *fmt, ...) __attribute__((format(printf, 5, 6)))
	FLP_HIDDEN;

#define FLP_LOG(lvl, ...)                                                  \
	do {                                                               \
		if (flp_cfg.log_level >= (lvl))                            \
			log_write((lvl), __func__, __FILE__, __LINE__,     \
				  __VA_ARGS__);                            \
	} while (0)
#define FLP_ERR(...) FLP_LOG(FLP_LOG_ERR, __VA_ARGS__)
#define FLP_WARN(...) FLP_LOG(FLP_LOG_WARN, __VA_ARGS__)
#define FLP_INFO(...) FLP_LOG(FLP_LOG_INFO, __VA_ARGS__)
#define FLP_DBG(...) FLP_LOG(FLP_LOG_DBG, __VA_ARGS__)

/* Format an address as "1.2.3.4:80" or "[::1]:80" into buf. */
const char *flp_addr_str(const struct sockaddr *sa, char *buf, size_t len)
	FLP_HIDDEN;

/* ------------------------------------------------------------------ reg */

/* An address as stored in shared memory: IPv4 as v4-mapped IPv6. */
struct reg_addr {
	uint8_t addr[16];
	uint16_t port;          /* host order */
	uint16_t pad;
};

#define REG_MAGIC 0x464c4f4f50524547ull /* "FLOOPREG" */
#define REG_VERSION 2
#define REG_NSLOTS 256
#define REG_UDS_MAX 24

/* Claim slot states; the state and a generation share one 64-bit word so
 * that a CAS also proves the slot was not recycled meanwhile (ABA). */
enum reg_state {
	SLOT_FREE = 0,
	SLOT_BUSY,       /* a client owns it and is writing it */
	SLOT_ANNOUNCED,  /* client key written, source port not yet known */
	SLOT_OPEN,       /* full 4-tuple known: the server may adopt */
	SLOT_ADOPTING,   /* a server won the CAS and is building the channel */
	SLOT_TAKEN,      /* channel ready: the client must switch */
	SLOT_REVOKED,    /* the client gave up: stays TCP */
	SLOT_FAILED,     /* the server could not build the channel: TCP */
	SLOT_NSTATES
};

struct reg_slot {
	_Atomic uint64_t sw;    /* gen << 32 | state */
	int32_t client_pid;
	int32_t server_pid;     /* the adopter, checked against SO_PEERCRED */
	uint64_t client_start;  /* client's start time, for liveness */
	uint32_t client_uid;    /* a server of another uid does not adopt */
	struct reg_addr cli;    /* the client's end (port 0 while ANNOUNCED) */
	struct reg_addr srv;    /* the address the client connected to */
	uint8_t uds_len;        /* abstract UDS name of the client's rendezvous */
	char uds_name[REG_UDS_MAX];
	uint8_t flags;          /* CLAIM_WANT_SHM: the client can use a ring */
	uint8_t pad[128 - 8 - 4 - 4 - 8 - 4 - 20 - 20 - 1 - REG_UDS_MAX - 1];
};

struct reg_hdr {
	_Atomic uint64_t magic; /* written last: a reader sees a whole header */
	uint32_t version;
	uint32_t hdr_size;
	uint32_t slot_size;
	uint32_t nslots;
	int32_t owner_pid;
	uint32_t owner_uid;
	uint64_t owner_start;
	uint64_t netns;
	struct reg_addr bound;  /* the listener's address (:: = wildcard) */
	uint32_t v6only;
	uint32_t switch_after;  /* the owner adopts late (a hint for clients:
				 * 0 = in accept, so a client spins for it) */
	uint8_t pad[256 - 8 - 4 * 4 - 8 - 8 - 8 - 20 - 4 - 4];
};

#define REG_FILE_SIZE (sizeof(struct reg_hdr) + REG_NSLOTS * sizeof(struct reg_slot))

/* A mapped handshake file, shared by reference in this process. */
struct reg_map {
	struct reg_hdr *hdr;
	struct reg_slot *slots;
	int fd;                 /* the open file: holds the flock */
	uint64_t ino;
	char name[96];
	int refs;
	bool owner;             /* we created it (we remove it) */
	bool unpub;             /* owner: unpublished, remove with the last ref */
	struct reg_map *next;   /* client-side cache list */
};

int reg_dir_check(const char *dir, uid_t uid) FLP_HIDDEN;
int reg_dir_init(void) FLP_HIDDEN;
bool reg_enabled(void) FLP_HIDDEN;
int reg_publish(const struct reg_addr *bound, bool v6only,
		struct reg_map **out) FLP_HIDDEN;
void reg_unpublish(struct reg_map *m) FLP_HIDDEN;
int reg_validate(const struct reg_hdr *h, size_t size, uid_t uid)
	FLP_HIDDEN;
bool reg_dir_stat(struct stat *st) FLP_HIDDEN;
struct reg_map *reg_cached(const struct reg_addr *dst) FLP_HIDDEN;
bool reg_alive(struct reg_map *m) FLP_HIDDEN;
void reg_forget(struct reg_map *m) FLP_HIDDEN;
struct reg_map *reg_lookup(const struct reg_addr *dst, const struct stat *dir) FLP_HIDDEN;
void reg_put(struct reg_map *m) FLP_HIDDEN;
void reg_get(struct reg_map *m) FLP_HIDDEN;
uint64_t flp_proc_start(pid_t pid) FLP_HIDDEN;
int flp_high_fd(int fd) FLP_HIDDEN;
bool flp_pid_alive(pid_t pid, uint64_t start) FLP_HIDDEN;

extern pid_t flp_pid FLP_HIDDEN;
/* the effective uid at start-up, as the claim's hint of who the client is
 * (the registry directory is that user's too); what is trusted is the
 * peer's credentials on the rendezvous (SO_PEERCRED) */
extern uid_t flp_euid FLP_HIDDEN;
extern uint64_t flp_start FLP_HIDDEN;
extern uint64_t flp_netns FLP_HIDDEN;

/* ---------------------------------------------------------------- claim */

#define CLAIM_WANT_SHM 1

static inline uint32_t claim_state(uint64_t sw) { return (uint32_t)sw; }
static inline uint32_t claim_gen(uint64_t sw) { return (uint32_t)(sw >> 32); }
static inline uint64_t claim_sw(uint32_t gen, uint32_t st)
{
	return (uint64_t)gen << 32 | st;
}

int claim_announce(struct reg_map *m, const struct reg_addr *dst,
		   const char *uds, uint8_t uds_len, uint32_t *gen)
	FLP_HIDDEN;
void claim_fill(struct reg_map *m, int slot, uint32_t gen,
		const struct reg_addr *cli) FLP_HIDDEN;
int claim_find(struct reg_map *m, const struct reg_addr *cli,
	       const struct reg_addr *srv, uint64_t *sw, bool *pending)
	FLP_HIDDEN;
bool claim_begin_adopt(struct reg_map *m, int slot, uint64_t sw) FLP_HIDDEN;
bool claim_pending_alive(struct reg_map *m, const struct reg_addr *srv) FLP_HIDDEN;
bool claim_end_adopt(struct reg_map *m, int slot, uint32_t gen, bool ok)
	FLP_HIDDEN;
uint32_t claim_poll(struct reg_map *m, int slot, uint32_t gen) FLP_HIDDEN;
uint32_t claim_revoke(struct reg_map *m, int slot, uint32_t gen) FLP_HIDDEN;
void claim_release(struct reg_map *m, int slot, uint32_t gen) FLP_HIDDEN;

/* ---------------------------------------------------------------- fdt */

enum sock_kind {
	SK_NONE = 0,
	SK_LISTENER,     /* published listener */
	SK_PENDING,      /* client: claim open, data over TCP with retention */
	SK_UNDECIDED,    /* server: claim not yet filled at accept */
	SK_FAST,         /* fast channel: the fd is the UDS socket */
	SK_DRAIN,        /* server: the fd is the UDS, but the client's
			  * pre-switch bytes are still in the hidden TCP
			  * socket and are read first, up to its FIN */
	SK_HIDDEN,       /* an fd the library holds for another entry */
	SK_TRIAL,        /* server: plain TCP on trial; a preloaded client
			  * may be behind it: adopted at the data call
			  * after switch_after that moved bytes */
};

#define SOCK_MAX_FDS 8
#define SOCK_MAX_EPOLL 8
#define SOCK_MAX_OPTS 16

struct sock_epreg {
	int epfd;
	int fd;
	struct epoll_event ev;
	uint32_t seen;          /* events reported to the app since ADD/MOD */
	bool parked;            /* shm, level-triggered EPOLLOUT on a full
				 * ring: registered without it until the
				 * reader's bell (wait.c) */
	bool owed;              /* shm: epoll's spin found data it could not
				 * report (its bell was off): report it next */
	bool looking;           /* shm: epoll's spin has its bell off */
};

struct sock_opt {
	int level, name, val;
};

struct flp_sock {
	int kind;
	uint64_t serial;                /* which life of this (recycled) entry */
	bool server;
	pthread_mutex_t mu;             /* serialises state changes */
	int *fds;                       /* the app's fd numbers for this socket */
	int nfds, fds_cap;
	int fds_inline[SOCK_MAX_FDS];
	struct sockaddr_storage local, peer;
	socklen_t local_len, peer_len;
	/* claim (PENDING / UNDECIDED) */
	struct reg_map *map;
	int slot;
	uint32_t gen;
	uint64_t pend_sent;             /* bytes a PENDING client sent over TCP */
	uint64_t pend_t0;               /* when it connected (us) */
	uint32_t calls;                 /* TRIAL: data calls that moved bytes */
	int inflight;                   /* TRIAL, lazy PENDING: data calls now
					 * in the kernel on the TCP socket (a
					 * switch waits for none) */
	int sending;                    /* ... of them sends: a lazy client's
					 * switch does not wait for these */
	bool lazy;                      /* PENDING: the server adopts late (it
					 * may write on TCP first; no spin) */
	bool shut_wr_tcp;               /* lazy PENDING: the app shut down
					 * writing on TCP while a switch had to
					 * wait; its EOF goes on at the switch */
	/* FAST / DRAIN */
	int hidden_tcp;                 /* server: TCP until the client's FIN is read */
	int fin_tcp;                    /* a lazy client that switched with sends
					 * still in the kernel on TCP: that socket,
					 * whose FIN (the end of our TCP bytes)
					 * waits for the last of them; else -1 */
	struct stat_conn *st;           /* what `fastloop stat` shows (stat.c) */
	struct shm_conn *shm;           /* FAST/DRAIN over rings (shm.c), else NULL */
	pid_t cli_pid;                  /* server: the client process, and its */
	uint64_t cli_start;             /* start time (liveness at the drain's end) */
	struct sock_opt opts[SOCK_MAX_OPTS];
	int nopts;
	/* epoll registrations to carry over a switch (PENDING), to mirror
	 * on the hidden TCP (DRAIN), or whose next report must not repeat
	 * an edge the switch made (FAST with quiet set) */
	struct sock_epreg ep[SOCK_MAX_EPOLL];
	int nep;
	uint32_t quiet;                 /* FAST: edge-triggered events the app
					 * was told of before the switch: dropped
					 * from the next report, unless a data
					 * call came first */
	/* SK_HIDDEN: whose it is */
	struct flp_sock *owner;
	struct flp_sock *free_next;
	/* the watch list (conn.c): PENDING, DRAIN and quiet FAST sockets,
	 * whose epoll events need a look; local adopts find clients here */
	struct flp_sock *pend_next, *pend_prev;
	bool on_pend;
	bool connect_pending;   /* the app's connect() said EINPROGRESS */
	bool fresh;             /* inside accept(): acc_flags are the fd's flags */
	int acc_flags;
};

int fdt_init(void) FLP_HIDDEN;
struct flp_sock *fdt_get(int fd) FLP_HIDDEN;
struct flp_sock *sock_new(int kind) FLP_HIDDEN;
void fdt_attach(int fd, struct flp_sock *s) FLP_HIDDEN;
struct flp_sock *fdt_detach(int fd) FLP_HIDDEN;
void sock_free(struct flp_sock *s) FLP_HIDDEN;
int fdt_max(void) FLP_HIDDEN;
enum { FDT_HINT_TCP = 1, FDT_HINT_DECIDED = 2,
       FDT_HINT_RCVBUF = 4, FDT_HINT_SNDBUF = 8 /* the app sized a buffer */ };
int fdt_hint(int fd) FLP_HIDDEN;
void fdt_set_hint(int fd, int h) FLP_HIDDEN;
extern pthread_mutex_t flp_mu FLP_HIDDEN;

/* ---------------------------------------------------------------- engine */

int flp_hide_fd(int fd, struct flp_sock *owner) FLP_HIDDEN;
void flp_note_hidden(int fd, struct flp_sock *owner) FLP_HIDDEN;
void flp_close_hidden(struct flp_sock *s, int *fdp) FLP_HIDDEN;

int conn_listen(int fd, int backlog) FLP_HIDDEN;
int conn_tcp_hint(int domain, int type, int protocol) FLP_HIDDEN;
struct flp_sock *conn_pending_first(void) FLP_HIDDEN;
void conn_watch(struct flp_sock *s) FLP_HIDDEN;
void conn_unquiet(struct flp_sock *s) FLP_HIDDEN;
bool conn_spin_take(int epfd, int fd) FLP_HIDDEN;
int conn_connect(int fd, const struct sockaddr *sa, socklen_t len)
	FLP_HIDDEN;
int conn_accept(int lfd, struct sockaddr *sa, socklen_t *len, int flags)
	FLP_HIDDEN;
int conn_settle(int fd, struct flp_sock *s, bool block) FLP_HIDDEN;
int conn_close(int fd) FLP_HIDDEN;
void conn_forget_stale(int fd) FLP_HIDDEN;
int conn_close_range(unsigned first, unsigned last, int flags) FLP_HIDDEN;
int conn_shutdown(int fd, int how) FLP_HIDDEN;
enum { DUP_DUP, DUP_DUP2, DUP_DUP3, DUP_FCNTL, DUP_FCNTL_CLOEXEC };
int conn_dup(int oldfd, int newfd, int flags, int how) FLP_HIDDEN;
void conn_settle_fd(int fd, bool decide) FLP_HIDDEN;
void conn_forget_stale_locked(int fd) FLP_HIDDEN;
int conn_setsockopt(int fd, struct flp_sock *s, int level, int name,
		    const void *val, socklen_t len) FLP_HIDDEN;
void conn_before_fork(void) FLP_HIDDEN;
void conn_after_fork_parent(void) FLP_HIDDEN;
void conn_after_fork_child(void) FLP_HIDDEN;
void conn_settle_all(void) FLP_HIDDEN;
void conn_at_exit(void) FLP_HIDDEN;
char *conn_inherit_env(void) FLP_HIDDEN;
void conn_inherit_restore(const char *v) FLP_HIDDEN;

int conn_drain_check(struct flp_sock *s) FLP_HIDDEN;
void conn_copy_opts(int from, int to, int hint) FLP_HIDDEN;

/* Data operations on a not-yet-final socket (PENDING, UNDECIDED, DRAIN). */
ssize_t io_sendmsg(int fd, struct flp_sock *s, const struct msghdr *m,
		   int flags) FLP_HIDDEN;
ssize_t io_recvmsg(int fd, struct flp_sock *s, struct msghdr *m,
		   int flags) FLP_HIDDEN;
int io_ioctl(int fd, struct flp_sock *s, unsigned long req, void *arg)
	FLP_HIDDEN;

/* The shared-memory transport (shm.c): a FAST or DRAIN socket with
 * s->shm set moves its data through the rings; its fd (the UDS) carries
 * only doorbells, and EOF when the peer's last reference goes. */
static inline bool flp_want_shm(void)
{
	return flp_cfg.transport == FLP_TR_SHM || flp_cfg.transport == FLP_TR_AUTO;
}

static inline struct shm_conn *flp_shm(struct flp_sock *s)
{
	return s ? __atomic_load_n(&s->shm, __ATOMIC_ACQUIRE) : NULL;
}

int shm_offer(struct flp_sock *s, int u, bool wanted) FLP_HIDDEN;
int shm_take(struct flp_sock *s, int u) FLP_HIDDEN;
ssize_t shm_sendmsg(int fd, struct flp_sock *s, const struct msghdr *m,
		    int flags) FLP_HIDDEN;
ssize_t shm_recvmsg(int fd, struct flp_sock *s, struct msghdr *m,
		    int flags) FLP_HIDDEN;
ssize_t shm_sendfile(int fd, struct flp_sock *s, int in, off_t *off,
		     size_t count) FLP_HIDDEN;
int shm_shutdown(int fd, struct flp_sock *s, int how) FLP_HIDDEN;
void shm_last_close(int fd, struct flp_sock *s) FLP_HIDDEN;
void shm_release(struct flp_sock *s) FLP_HIDDEN;
int shm_ioctl(int fd, struct flp_sock *s, unsigned long req, void *arg)
	FLP_HIDDEN;
uint32_t shm_events(int fd, struct flp_sock *s, uint32_t kernel) FLP_HIDDEN;
uint32_t shm_prepare_wait(int fd, struct flp_sock *s, uint32_t want)
	FLP_HIDDEN;
void shm_note_et(struct flp_sock *s, bool et) FLP_HIDDEN;
void shm_room_told(struct flp_sock *s) FLP_HIDDEN;
bool shm_rx_look(struct flp_sock *s, bool looking) FLP_HIDDEN;
int shm_exec_fd(struct flp_sock *s) FLP_HIDDEN;
void shm_exec_lost(int fd) FLP_HIDDEN;
void shm_memfd_gone(struct flp_sock *s, int fd) FLP_HIDDEN;
int shm_adopt_memfd(struct flp_sock *s, int memfd) FLP_HIDDEN;
void shm_after_fork_child(void) FLP_HIDDEN;

/* Answer as the TCP socket would, for a FAST socket. */
int emu_getsockname(struct flp_sock *s, struct sockaddr *sa, socklen_t *len,
		    bool peer) FLP_HIDDEN;
int emu_getsockopt(int fd, struct flp_sock *s, int level, int name,
		   void *val, socklen_t *len) FLP_HIDDEN;
int emu_setsockopt(int fd, struct flp_sock *s, int level, int name,
		   const void *val, socklen_t len) FLP_HIDDEN;
void emu_capture(int tcpfd, struct flp_sock *s) FLP_HIDDEN;

/* Readiness. */
extern _Atomic int flp_ep_pending FLP_HIDDEN;
int wait_poll(struct pollfd *pfd, nfds_t n, int timeout_ms,
	      const sigset_t *mask) FLP_HIDDEN;
int wait_select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, int timeout_ms,
		const sigset_t *mask, bool *handled) FLP_HIDDEN;
int wait_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
	FLP_HIDDEN;
int wait_fix_epoll(int epfd, struct epoll_event *ev, int r) FLP_HIDDEN;
int wait_epoll(int epfd, struct epoll_event *ev, int max, long long timeout_ns,
	       const sigset_t *mask, bool pwait2) FLP_HIDDEN;
bool wait_needs_settle(int fd) FLP_HIDDEN;
void flp_nap_us(long us) FLP_HIDDEN;
uint32_t wait_kernel_events(const struct sock_epreg *reg) FLP_HIDDEN;
void wait_pre_forget(int fd) FLP_HIDDEN;
void wait_pre_adopt(int fd, struct flp_sock *s) FLP_HIDDEN;
void wait_drain_mirror(struct flp_sock *s) FLP_HIDDEN;

/* Addresses. */
int addr_to_reg(const struct sockaddr *sa, socklen_t len, struct reg_addr *r)
	FLP_HIDDEN;
bool addr_is_wild(const struct reg_addr *a) FLP_HIDDEN;
bool addr_is_local(const struct reg_addr *a) FLP_HIDDEN;
bool addr_eq(const struct reg_addr *a, const struct reg_addr *b) FLP_HIDDEN;

/* Quick test used by the data hooks: does this fd need the engine? */
/* The kind of an entry, read without flp_mu (the data hooks' fast path);
 * pairs with the release store in set_kind()/sock_free(). */
static inline int sock_kind(struct flp_sock *s)
{
	return __atomic_load_n(&s->kind, __ATOMIC_ACQUIRE);
}

static inline bool flp_slow(struct flp_sock *s)
{
	int k;

	if (!s)
		return false;
	k = sock_kind(s);
	return k == SK_PENDING || k == SK_UNDECIDED || k == SK_DRAIN ||
	       k == SK_TRIAL;
}

/* Is s (of kind k) plain TCP for now, with its data calls straight to the
 * kernel: a server on trial, or a client whose server adopts late?
 * Either may switch at a later call. */
static inline bool sock_tcp_for_now(struct flp_sock *s, int k)
{
	return k == SK_TRIAL || (k == SK_PENDING && s->lazy);
}

/* Is the app's fd a UDS that stands for a TCP socket (names emulated)? */
static inline bool flp_is_uds(struct flp_sock *s)
{
	int k;

	if (!s)
		return false;
	k = sock_kind(s);
	return k == SK_FAST || k == SK_DRAIN;
}

/* Signals delivered while a wait runs in user space (sig.c). */
int sig_action(int sig, const struct sigaction *act, struct sigaction *old)
	FLP_HIDDEN;
sighandler_t sig_signal(int sig, sighandler_t h) FLP_HIDDEN;
unsigned sig_count(void) FLP_HIDDEN;
bool sig_interrupts(unsigned seq, bool has_timeout) FLP_HIDDEN;

/* Monotonic microseconds. */
uint64_t flp_now_us(void) FLP_HIDDEN;

#endif /* FLP_H */
