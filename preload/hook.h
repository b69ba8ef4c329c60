/*
 * hook.h — what every exported hook needs: init, then the fd's entry.
 */
#ifndef FLP_HOOK_H
#define FLP_HOOK_H

#include "../shim/flp.h"
#include "../shim/stat.h"

#define FLP_EXPORT __attribute__((visibility("default")))

/* Initialise if needed and return fd's entry (NULL: not ours). */
static inline struct flp_sock *flp_enter(int fd)
{
	if (__builtin_expect(!__atomic_load_n(&flp_ready, __ATOMIC_ACQUIRE), 0))
		flp_init();
	return fdt_get(fd);
}

static inline bool flp_is_fast(struct flp_sock *s)
{
	return s && sock_kind(s) == SK_FAST;
}

/* A final fast socket over rings: its data calls go to shm.c. */
static inline bool flp_is_shm(struct flp_sock *s)
{
	return s && sock_kind(s) == SK_FAST && flp_shm(s);
}

/* Count what a final fast socket moved, for `fastloop stat` (s->st is
 * NULL on anything else).  Returns r. */
static inline ssize_t flp_rx(struct flp_sock *s, ssize_t r, int flags)
{
	if (s && r > 0 && !(flags & MSG_PEEK))
		stat_add_rx(s->st, r);
	return r;
}

static inline ssize_t flp_tx(struct flp_sock *s, ssize_t r)
{
	if (s && r > 0)
		stat_add_tx(s->st, r);
	return r;
}

/* A data call on a final socket: if the switch left an edge to filter
 * (s->quiet), the app acts now, so stop filtering.  Read without the
 * lock: a stale non-zero only costs one locked look. */
static inline void flp_data_call(struct flp_sock *s)
{
	if (s && __builtin_expect(__atomic_load_n(&s->quiet, __ATOMIC_RELAXED) != 0, 0))
		conn_unquiet(s);
}

#endif
