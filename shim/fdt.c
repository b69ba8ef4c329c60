/*
 * fdt.c — the fd table: fd number -> struct flp_sock, for sockets the
 * library must treat specially.  A NULL entry means "not ours: pass
 * through".  dup()ed fds share one entry.  Entries are never returned to
 * malloc: a thread racing a close() on the same fd (an app bug) may read a
 * recycled entry but never freed memory.
 *
 * Lookups are a relaxed atomic load, lock-free; changes take flp_mu.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "flp.h"

pthread_mutex_t flp_mu = PTHREAD_MUTEX_INITIALIZER;

static struct flp_sock *_Atomic *tab;
static _Atomic uint8_t *hints;
static int tab_len;
static struct flp_sock *free_list;
static uint64_t serial;         /* guarded by flp_mu, as sock_new */

/* Table size: the hard fd limit at start-up (programs raise their soft
 * limit later: nginx, redis), capped.  fds beyond it are passed through
 * untouched, and get no claim (documented).  calloc'd pages are only
 * touched where fds are used. */
int fdt_init(void)
{
	struct rlimit rl;
	long n = 1L << 20;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY)
		n = (long)rl.rlim_max;
	if (n > (1L << 20))
		n = 1L << 20;
	if (n < 1024)
		n = 1024;
	tab = calloc((size_t)n, sizeof(*tab));
	hints = calloc((size_t)n, sizeof(*hints));
	if (!tab || !hints) {
		free(tab);
		free((void *)hints);
		tab = NULL;
		hints = NULL;
		return -ENOMEM;
	}
	tab_len = (int)n;
	return 0;
}

int fdt_max(void)
{
	return tab_len;
}

struct flp_sock *fdt_get(int fd)
{
	if (fd < 0 || fd >= tab_len || !tab)
		return NULL;
	return atomic_load_explicit(&tab[fd], memory_order_acquire);
}

/* A fresh entry of the given kind.  Caller holds flp_mu. */
struct flp_sock *sock_new(int kind)
{
	struct flp_sock *s = free_list;

	if (s)
		free_list = s->free_next;
	else if (!(s = malloc(sizeof(*s))))
		return NULL;
	memset(s, 0, sizeof(*s));
	s->serial = ++serial;
	s->fds = s->fds_inline;
	s->fds_cap = SOCK_MAX_FDS;
	pthread_mutex_init(&s->mu, NULL);
	s->kind = kind;
	s->hidden_tcp = -1;
	s->fin_tcp = -1;
	s->slot = -1;
	return s;
}

void sock_free(struct flp_sock *s)
{
	if (s->fds != s->fds_inline)
		free(s->fds);
	s->fds = s->fds_inline;
	__atomic_store_n(&s->kind, SK_NONE, __ATOMIC_RELEASE);
	s->free_next = free_list;
	free_list = s;
}

/* Record that fd refers to s.  Caller holds flp_mu. */
void fdt_attach(int fd, struct flp_sock *s)
{
	if (fd < 0 || fd >= tab_len)
		return;
	if (s->nfds == s->fds_cap) {
		int cap = 2 * s->fds_cap;
		int *n = malloc((size_t)cap * sizeof(*n));
		if (!n)
			return;   /* the fd stays untracked: passed through */
		memcpy(n, s->fds, (size_t)s->nfds * sizeof(*n));
		if (s->fds != s->fds_inline)
			free(s->fds);
		s->fds = n;
		s->fds_cap = cap;
	}
	s->fds[s->nfds++] = fd;
	atomic_store_explicit(&tab[fd], s, memory_order_release);
}

/* Forget fd; returns the entry if fd was its last reference (the caller
 * tears it down), else NULL.  Caller holds flp_mu. */
struct flp_sock *fdt_detach(int fd)
{
	struct flp_sock *s = fdt_get(fd);

	if (!s)
		return NULL;
	atomic_store_explicit(&tab[fd], NULL, memory_order_release);
	for (int i = 0; i < s->nfds; i++)
		if (s->fds[i] == fd) {
			s->fds[i] = s->fds[--s->nfds];
			break;
		}
	return s->nfds == 0 ? s : NULL;
}

/*
 * Per-fd hints for sockets that have no entry: FDT_HINT_TCP (made by our
 * socket() hook as an IPv4/IPv6 stream socket: no need to ask the kernel
 * at connect) and FDT_HINT_DECIDED (its connect was already decided as
 * plain TCP: a second connect(), as hiredis does to poll completion, is
 * passed straight through and not logged twice).  Reset when the number
 * is handed out again by socket()/accept() or closed.
 */
int fdt_hint(int fd)
{
	if (fd < 0 || fd >= tab_len || !hints)
		return 0;
	return atomic_load_explicit(&hints[fd], memory_order_relaxed);
}

void fdt_set_hint(int fd, int h)
{
	if (fd >= 0 && fd < tab_len && hints)
		atomic_store_explicit(&hints[fd], (uint8_t)h, memory_order_relaxed);
}
