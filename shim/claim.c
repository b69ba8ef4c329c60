/*
 * claim.c — the claim slot state machine in a listener's handshake file.
 *
 *   client:  FREE -> BUSY -> ANNOUNCED -> OPEN          (announce, fill)
 *            OPEN -> REVOKED                            (give up, CAS)
 *            TAKEN|REVOKED|FAILED|BUSY.. -> FREE        (release)
 *   server:  OPEN -> ADOPTING                           (CAS: one winner)
 *            ADOPTING -> TAKEN | FAILED
 *
 * The state and a generation share one 64-bit word; every CAS compares the
 * whole word, so a slot that was released and reused meanwhile is never
 * taken by mistake.  The generation is bumped on FREE -> BUSY.  Fields
 * other than the word are written only by the slot's current owner (the
 * client until OPEN, the adopting server in ADOPTING) and published by the
 * release store of the next state; readers load the word with acquire.
 * Nothing read from a slot is trusted: the peer may be buggy or hostile.
 */
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "flp.h"

static uint64_t load(struct reg_slot *s)
{
	/* pairs with the release stores/CAS below */
	return atomic_load_explicit(&s->sw, memory_order_acquire);
}

static bool cas(struct reg_slot *s, uint64_t old, uint64_t new)
{
	return atomic_compare_exchange_strong_explicit(&s->sw, &old, new,
			memory_order_acq_rel, memory_order_acquire);
}


/* A slot whose client died without releasing it may be reused. */
static bool slot_dead(struct reg_slot *s, uint32_t st)
{
	if (st == SLOT_FREE)
		return true;
	/* ADOPTING: a server is mid-way; BUSY: a client owns the slot but its
	 * pid is not written yet (a client dying in that window of a few
	 * instructions leaks the slot — documented) */
	if (st == SLOT_ADOPTING || st == SLOT_BUSY)
		return false;
	return !flp_pid_alive(s->client_pid, s->client_start);
}

/*
 * Reserve a slot and announce a connection to dst with our rendezvous
 * name.  Returns the slot index (gen in *gen) or -EAGAIN if the table is
 * full.
 */
int claim_announce(struct reg_map *m, const struct reg_addr *dst,
		   const char *uds, uint8_t uds_len, uint32_t *gen)
{
	unsigned start = (unsigned)flp_pid * 7919u;

	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < REG_NSLOTS; i++) {
			unsigned idx = (start + i) % REG_NSLOTS;
			struct reg_slot *s = &m->slots[idx];
			uint64_t sw = load(s);
			uint32_t st = claim_state(sw), g;

			/* first pass: free slots only; second: reclaim dead ones */
			if (pass == 0 ? st != SLOT_FREE : !slot_dead(s, st))
				continue;
			g = claim_gen(sw) + 1;
			if (!cas(s, sw, claim_sw(g, SLOT_BUSY)))
				continue;
			s->client_pid = flp_pid;
			s->client_start = flp_start;
			s->client_uid = flp_euid;      /* a hint: see flp.h */
			s->server_pid = 0;
			memset(&s->cli, 0, sizeof(s->cli));
			s->srv = *dst;
			memcpy(s->uds_name, uds, uds_len);
			s->uds_len = uds_len;
			s->flags = flp_want_shm() ? CLAIM_WANT_SHM : 0;
			if (!cas(s, claim_sw(g, SLOT_BUSY), claim_sw(g, SLOT_ANNOUNCED)))
				continue;       /* never happens: BUSY is not reclaimed */
			*gen = g;
			return (int)idx;
		}
	}
	return -EAGAIN;
}

/* The source port is known: the server may now match and adopt. */
void claim_fill(struct reg_map *m, int slot, uint32_t gen,
		const struct reg_addr *cli)
{
	struct reg_slot *s = &m->slots[slot];
	uint64_t sw = claim_sw(gen, SLOT_ANNOUNCED);

	/* only the owner of this generation may write the key */
	if (load(s) != sw)
		return;
	s->cli = *cli;
	/* release: cli is visible before OPEN; pairs with load() in claim_find */
	cas(s, sw, claim_sw(gen, SLOT_OPEN));
}

/*
 * Server side: find an OPEN slot for this 4-tuple.  Returns the index with
 * the observed word in *sw, -ECANCELED if the claim was revoked, or
 * -ENOENT; *pending says whether an
 * announcement without a port is waiting for our address (worth a short
 * wait).
 */
/*
 * Is a client that announced a connection to srv (port not filled yet)
 * still alive?  A server waiting for it to fill its port stops waiting
 * for a dead one (killed between its connect() and the fill): its
 * connection then reads EOF at once instead of after the whole wait.
 * A BUSY slot (pid not written yet) counts as alive.
 */
bool claim_pending_alive(struct reg_map *m, const struct reg_addr *srv)
{
	for (int i = 0; i < REG_NSLOTS; i++) {
		struct reg_slot *s = &m->slots[i];
		uint32_t st = claim_state(load(s));
		struct reg_addr d;

		if (st != SLOT_ANNOUNCED && st != SLOT_BUSY)
			continue;
		memcpy(&d, &s->srv, sizeof(d));
		if (d.port != srv->port)
			continue;
		if (st == SLOT_BUSY || flp_pid_alive(s->client_pid, s->client_start))
			return true;
	}
	return false;
}

int claim_find(struct reg_map *m, const struct reg_addr *cli,
	       const struct reg_addr *srv, uint64_t *sw, bool *pending)
{
	bool revoked = false;

	*pending = false;
	for (int i = 0; i < REG_NSLOTS; i++) {
		struct reg_slot *s = &m->slots[i];
		uint64_t w = load(s);
		uint32_t st = claim_state(w);
		struct reg_addr c, d;

		if (st == SLOT_REVOKED) {
			/* our client gave up before we got here (a moment later
			 * its slot is free and this cannot be told) */
			memcpy(&c, &s->cli, sizeof(c));
			revoked |= addr_eq(&c, cli);
			continue;
		}
		if (st != SLOT_OPEN && st != SLOT_ANNOUNCED && st != SLOT_BUSY)
			continue;
		memcpy(&d, &s->srv, sizeof(d));
		if (d.port != srv->port)
			continue;
		if (st != SLOT_OPEN) {
			*pending = true;
			continue;
		}
		memcpy(&c, &s->cli, sizeof(c));
		/* the client may have connected to a wildcard-matching address
		 * that differs from our getsockname only in v4/v6 form; the
		 * kernel's view (ours) and the client's (slot) must agree */
		if (!addr_eq(&c, cli) || memcmp(d.addr, srv->addr, 16))
			continue;
		/* re-read: the fields we compared belong to word w */
		if (load(s) != w)
			continue;
		*sw = w;
		return i;
	}
	return revoked ? -ECANCELED : -ENOENT;
}

bool claim_begin_adopt(struct reg_map *m, int slot, uint64_t sw)
{
	struct reg_slot *s = &m->slots[slot];

	if (claim_state(sw) != SLOT_OPEN)
		return false;
	if (!cas(s, sw, claim_sw(claim_gen(sw), SLOT_ADOPTING)))
		return false;
	s->server_pid = flp_pid;
	return true;
}

/* Returns false if the client timed us out meanwhile (slot FAILED). */
bool claim_end_adopt(struct reg_map *m, int slot, uint32_t gen, bool ok)
{
	/* release: server_pid visible before TAKEN; pairs with claim_poll */
	return cas(&m->slots[slot], claim_sw(gen, SLOT_ADOPTING),
		   claim_sw(gen, ok ? SLOT_TAKEN : SLOT_FAILED));
}

/* Current state of our slot, or SLOT_FAILED if it is no longer ours. */
uint32_t claim_poll(struct reg_map *m, int slot, uint32_t gen)
{
	uint64_t w = load(&m->slots[slot]);
	uint32_t st = claim_state(w);

	if (claim_gen(w) != gen || st >= SLOT_NSTATES)
		return SLOT_FAILED;
	return st;
}

/*
 * Give up the claim.  Returns the state that holds afterwards: REVOKED
 * (we won), TAKEN or FAILED (the server was first).  While a server is
 * ADOPTING we wait for it: it is a handful of syscalls away from deciding,
 * and its death is noticed by pid.
 */
uint32_t claim_revoke(struct reg_map *m, int slot, uint32_t gen)
{
	struct reg_slot *s = &m->slots[slot];
	uint64_t t0 = flp_now_us();

	for (;;) {
		uint32_t st = claim_poll(m, slot, gen);

		if (st == SLOT_OPEN || st == SLOT_ANNOUNCED || st == SLOT_BUSY) {
			if (cas(s, claim_sw(gen, st), claim_sw(gen, SLOT_REVOKED)))
				return SLOT_REVOKED;
			continue;
		}
		if (st != SLOT_ADOPTING)
			return st;
		if (flp_now_us() - t0 > 1000000 ||
		    (flp_now_us() - t0 > 1000 && !flp_pid_alive(s->server_pid, 0))) {
			/* the adopter is gone or stuck: take the slot back */
			if (cas(s, claim_sw(gen, SLOT_ADOPTING), claim_sw(gen, SLOT_FAILED)))
				return SLOT_FAILED;
			continue;
		}
		sched_yield();
	}
}

void claim_release(struct reg_map *m, int slot, uint32_t gen)
{
	struct reg_slot *s = &m->slots[slot];
	uint64_t w = load(s);

	if (claim_gen(w) == gen && claim_state(w) != SLOT_ADOPTING)
		cas(s, w, claim_sw(gen, SLOT_FREE));
}
